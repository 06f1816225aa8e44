"""The generic evaluation: probes, KL, swap ratio, retrieval, on a hand-made two-code model."""

import pytest
import torch

from dislib import evaluate
from dislib.data.base import ImageDataset
from tests.helpers import Pixels, pixel_data


def test_encode_dataset_returns_cpu_codes_in_order():
    data = pixel_data(30)
    codes = evaluate.encode_dataset(Pixels(), data, batch_size=7)
    assert torch.equal(codes.specified[:, 0], data.labels.float())
    assert codes.unspecified.shape == (30, 16) and codes.unspecified.device.type == "cpu"
    assert torch.equal(codes.unspecified_logvar, torch.zeros(30, 16)) and codes.specified_logvar is None


def test_probe_separates_informative_from_useless_features():
    train, test = pixel_data(400, 0), pixel_data(400, 1)
    informative = evaluate.probe(train.labels[:, None].float(), train.labels, test.labels[:, None].float(), test.labels)
    assert informative.test_error < 0.02
    noise = evaluate.probe(torch.rand(400, 3), train.labels, torch.rand(400, 3), test.labels)
    assert noise.test_error > 0.3
    majority = int(train.labels.bincount().argmax())
    assert noise.chance_error == pytest.approx(float((test.labels != majority).float().mean()))


def test_probe_codes_covers_label_and_factors_from_both_codes():
    results = evaluate.probe_codes(Pixels(), pixel_data(300, 0), pixel_data(300, 1))
    assert set(results) == {"s", "z"} and set(results["s"]) == {"label", "copy", "noise"}
    assert results["s"]["label"].test_error < 0.02
    assert results["s"]["noise"].test_error > 0.4
    mean = evaluate.mean_error(results["s"], ["label", "noise"])
    assert mean.test_error == pytest.approx((results["s"]["label"].test_error + results["s"]["noise"].test_error) / 2)
    with pytest.raises(KeyError, match="no categorical target named"):
        evaluate.probe_codes(Pixels(), pixel_data(300, 0), pixel_data(300, 1), names=("hair",))


def test_probe_rejects_mismatched_or_tiny_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        evaluate.probe(torch.rand(30, 2), torch.zeros(29, dtype=torch.long), torch.rand(5, 2), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 20"):
        evaluate.probe(torch.rand(5, 2), torch.zeros(5, dtype=torch.long), torch.rand(5, 2), torch.zeros(5, dtype=torch.long))


def test_kl_nats_matches_the_closed_form():
    data = pixel_data(50)
    expected = 0.5 * data.images.flatten(1).pow(2).sum(1).mean()
    assert evaluate.kl_nats(Pixels(), data, batch_size=16) == pytest.approx(float(expected), rel=1e-5)


def test_swap_ratio_is_one_when_z_is_ignored_and_large_when_it_is_used():
    data = pixel_data(200)
    assert evaluate.swap_ratio(Pixels(uses_z=False), data) == pytest.approx(1.0)
    assert evaluate.swap_ratio(Pixels(uses_z=True), data) > 5.0


def test_swap_ratio_needs_a_class_with_two_images():
    data = pixel_data(2)
    lonely = ImageDataset(data.images, torch.tensor([0, 1]), 2, "pixels")
    with pytest.raises(ValueError, match="two or more images"):
        evaluate.swap_ratio(Pixels(), lonely)


def test_quick_metrics_is_a_flat_dict_of_floats():
    metrics = evaluate.quick_metrics(Pixels(), pixel_data(200), size=100)
    assert set(metrics) == {"s_accuracy", "z_accuracy", "z_sample_accuracy", "chance_accuracy", "kl_nats", "swap_ratio"}
    assert metrics["s_accuracy"] > 0.95 and all(isinstance(v, float) for v in metrics.values())


def test_where_z_leaks_reads_the_mean_a_sample_and_the_active_and_collapsed_dimensions():
    from dislib.models import Mathieu

    g = torch.Generator().manual_seed(0)
    data = ImageDataset(torch.rand(120, 1, 28, 28, generator=g), torch.arange(120) % 3, 3, "toy")
    torch.manual_seed(0)
    model = Mathieu.for_dataset(data, widths=(4, 8, 8), discriminator_widths=(4, 8, 8), specified_dim=2, unspecified_dim=4).eval()
    per_dim = evaluate.kl_per_dimension(model, data)
    assert per_dim.shape == (4,) and (per_dim >= 0).all()
    assert torch.isclose(per_dim.sum(), torch.tensor(evaluate.kl_nats(model, data)), rtol=1e-4)
    out = evaluate.where_z_leaks(model, data.subset(slice(0, 80)), data.subset(slice(80, 120)), active_nats=float(per_dim.median()))
    assert 0 < out["active_dimensions"] < 4
    assert {"mean", "sample", "active", "collapsed"} <= set(out)
    assert all(0.0 <= out[k].test_error <= 1.0 for k in ("mean", "sample", "active", "collapsed"))


def test_linear_probe_reads_a_linear_label_and_refuses_unknown_kinds():
    train, test = pixel_data(400, 0), pixel_data(400, 1)
    onehot = lambda y: torch.nn.functional.one_hot(y, 10).float()  # noqa: E731
    linear = evaluate.probe(onehot(train.labels), train.labels, onehot(test.labels), test.labels, kind="linear")
    assert linear.test_error < 0.02
    with pytest.raises(ValueError, match="kind is one of"):
        evaluate.probe(onehot(train.labels), train.labels, onehot(test.labels), test.labels, kind="forest")


def test_leak_report_probes_each_reading_of_each_code():
    report = evaluate.leak_report(Pixels(), pixel_data(300, 0), pixel_data(300, 1))
    probes = {f"{c}_{k}_{v}" for c, v in (("s", "mean"), ("z", "mean"), ("z", "sample")) for k in ("mlp", "linear")}
    assert set(report) == probes | {"chance_accuracy", "z_kl_nats", "swap_ratio"}
    assert report["s_mlp_mean"] > 0.98 and report["s_linear_mean"] > 0.98  # s is the label itself
    assert report["z_linear_mean"] > 0.98 and 0.4 < report["chance_accuracy"] < 0.6  # z holds the label's pixel too
    assert report["z_kl_nats"] > 0 and report["swap_ratio"] > 1.0
