"""Zheng & Sun (2019): the Gaussian-mixture losses by hand, the two-stage step's order, the players,
the learning-rate drop, the semi-supervised step, checkpoints and errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models import Zheng, ZhengConfig
from dislib.models.base import Model
from dislib.models.zheng import autoencoder_objective
from dislib.nn import CodeClassifier
from tests.helpers import tiny_images

SMALL = dict(widths=(4, 4, 8, 8), hidden_width=8, discriminator_widths=(4, 8, 8), adversary_hidden=8,
             specified_dim=3, unspecified_dim=5)
PLAYERS = ("specified_encoder", "unspecified_encoder", "decoder", "class_means", "raw_precisions",
           "discriminator", "code_adversary")

# two Gaussians in 2-D: means (0, 0) and (1, 1), precisions (1, 4) and (2, 2)
MEANS = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
LOG_PRECISIONS = torch.tensor([[1.0, 4.0], [2.0, 2.0]]).log()
CODE = torch.tensor([[1.0, 2.0]])


def small_model(data: ImageDataset, **overrides) -> Zheng:
    torch.manual_seed(0)
    return Zheng.for_dataset(data, **{**SMALL, **overrides})


def batch_of(model: Zheng, data: ImageDataset, n: int = 8) -> dict[str, torch.Tensor]:
    return model.make_batch(data, torch.arange(n), torch.Generator().manual_seed(1))


# the losses, by hand -------------------------------------------------------------------------
def test_mahalanobis_distances_by_hand():
    # d_0 = 1/2 (1 * 1^2 + 4 * 2^2) = 8.5;  d_1 = 1/2 (2 * 0^2 + 2 * 1^2) = 1
    torch.testing.assert_close(losses.mahalanobis_distances(CODE, MEANS, LOG_PRECISIONS), torch.tensor([[8.5, 1.0]]))


def test_gm_likelihood_loss_by_hand():
    # Eq. 7 for class 1: d_1 + 1/2 log|Sigma_1| = 1 + 1/2 (log 1/2 + log 1/2) = 1 - log 2
    loss = losses.gm_likelihood_loss(CODE, torch.tensor([1]), MEANS, LOG_PRECISIONS)
    assert loss.item() == pytest.approx(1 - math.log(2), rel=1e-6)


def test_gm_classification_loss_and_margin_by_hand():
    means, unit = torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.zeros(2, 2)
    s = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    # d = (2, 0) and log|Sigma| = 0, so logits (-2, 0): -log softmax = log(1 + e^2) for class 0, log(1 + e^-2) for 1
    loss = losses.gm_classification_loss(s, torch.tensor([0, 1]), means, unit)
    torch.testing.assert_close(loss, torch.tensor([math.log(1 + math.e**2), math.log(1 + math.e**-2)]))
    # margin alpha = 0.5 on the true class 0: logits (-(1.5) 2, 0) = (-3, 0)
    with_margin = losses.gm_classification_loss(s[:1], torch.tensor([0]), means, unit, margin=0.5)
    assert with_margin.item() == pytest.approx(math.log(1 + math.e**3), rel=1e-6)
    # Eq. 9: log(1 + e^2) + 0.1 * (d_0 + 0) = log(1 + e^2) + 0.2
    total = losses.gm_loss(s[:1], torch.tensor([0]), means, unit, likelihood_weight=0.1)
    assert total.item() == pytest.approx(math.log(1 + math.e**2) + 0.2, rel=1e-6)


def test_gm_logits_include_the_log_determinant():
    # logits_k = -d_k - 1/2 log|Sigma_k| = (-8.5 + log 2, -1 + log 2)
    expected = torch.tensor([[-8.5 + math.log(2), -1.0 + math.log(2)]])
    torch.testing.assert_close(losses.gm_logits(CODE, MEANS, LOG_PRECISIONS), expected)
    with pytest.raises(ValueError, match="pass the labels"):
        losses.gm_logits(CODE, MEANS, LOG_PRECISIONS, margin=1.0)


def test_gm_classification_loss_is_finite_for_large_codes():
    means, unit, label = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.zeros(2, 2), torch.tensor([0])
    s = torch.tensor([[1e4, 0.0]])
    # d_0 - d_1 = 1/2 (1e4^2 - 9999^2) = 9999.5, and -log softmax_0 = log(1 + e^(d_0 - d_1)), about 9999.5
    loss = losses.gm_classification_loss(s, label, means, unit)
    assert loss.item() == pytest.approx(9999.5, rel=1e-3)
    densities = torch.exp(-losses.mahalanobis_distances(s, means, unit))  # the authors' form: exp, then normalise
    assert torch.isnan(densities[:, 0] / densities.sum(1)).all(), "0 / 0 once every exp(-d_k) underflows"


def test_unlabelled_likelihood_uses_the_mixture_moments():
    # variances (1, 1/4) and (1/2, 1/2) average to (3/4, 3/8); the means (0, 0), (1, 1) add a variance 1/4
    mean, log_precision = losses.mixture_moments(MEANS, LOG_PRECISIONS)
    torch.testing.assert_close(mean, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(log_precision, -torch.tensor([1.0, 0.625]).log())
    # at the mean, Eq. 11 is 0 + 1/2 log|Sigma| = 1/2 (log 1 + log 0.625)
    loss = losses.unlabelled_likelihood_loss(torch.tensor([[0.5, 0.5]]), MEANS, LOG_PRECISIONS)
    assert loss.item() == pytest.approx(0.5 * math.log(0.625), rel=1e-6)


def test_autoencoder_objective_weights_each_term():
    config = ZhengConfig(reconstruction_weight=8.0, kl_weight=2.0, unspecified_dim=4, specified_likelihood_weight=3.0,
                         code_adversary_weight=5.0, generator_weight=7.0)
    one = torch.ones(2)
    unlabelled = {"reconstruction": one, "kl": one, "likelihood": one}
    # 8 / 4 pixels + 3 + 2 / 4 dimensions = 5.5; then + 5 + 7 (1 + 1) = 24.5
    assert autoencoder_objective(unlabelled, config, pixels=4).item() == pytest.approx(5.5)
    labelled = {**unlabelled, "adversarial": one, "reconstruction_gan": one, "sample_gan": one}
    assert autoencoder_objective(labelled, config, pixels=4).item() == pytest.approx(24.5)


def test_discriminator_hinge_on_real_images_and_two_kinds_of_fake_by_hand():
    real, reconstructed, sampled = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5]), torch.tensor([-1.0, 1.0])
    # [max(0, -1) + max(0, -1) + max(0, 0), max(0, 1) + max(0, 1.5) + max(0, 2)] = [0, 4.5]
    assert losses.hinge_discriminator_loss(real, reconstructed, sampled).tolist() == [0.0, 4.5]
    with pytest.raises(ValueError, match="at least one kind of fake"):
        losses.hinge_discriminator_loss(real)


# the model -----------------------------------------------------------------------------------
def test_encode_decode_sample_shapes_and_range():
    data = tiny_images(16, classes=4)
    model = small_model(data).eval()
    codes = model.encode(data.images[:6])
    assert codes.specified.shape == (6, 3) and codes.specified_logvar is None
    assert codes.unspecified.shape == codes.unspecified_logvar.shape == (6, 5)
    images = model.decode(codes.specified, codes.unspecified)
    assert images.shape == (6, 1, 28, 28) and 0.0 <= images.min() and images.max() <= 1.0
    assert model.sample(torch.tensor([0, 1, 3])).shape == (3, 1, 28, 28)
    metrics = model.evaluate(data)
    assert set(metrics) == {"test_reconstruction", "test_kl", "test_mixture_accuracy", "test_code_adversary_accuracy"}
    assert 0.0 <= metrics["test_mixture_accuracy"] <= 1.0


def test_the_players_are_the_shared_blocks():
    model = small_model(tiny_images(16, classes=4))
    assert type(model.code_adversary) is CodeClassifier
    d = model.discriminator
    assert d.label_input == "projection" and d.projection is not None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    weighted = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert weighted and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in weighted)
    assert F.softplus(torch.tensor(0.54)).item() == pytest.approx(1.0, abs=2e-3), "precisions start at 1"


def _players(model: Zheng) -> dict[str, list[torch.Tensor]]:
    return {name: [p.detach().clone() for p in getattr(model, name).parameters()] if isinstance(getattr(model, name), nn.Module)
            else [getattr(model, name).detach().clone()] for name in PLAYERS}


def test_train_step_runs_the_stages_in_order_and_each_trains_its_players():
    data = tiny_images(16, classes=4)
    model = small_model(data)
    batch = batch_of(model, data)
    steps = []
    original = model.optimizer_step

    def recording(name: str, loss: torch.Tensor) -> None:
        before = _players(model)
        original(name, loss)
        after = _players(model)
        changed = {k for k in PLAYERS if any(not torch.equal(a, b) for a, b in zip(before[k], after[k]))}
        steps.append((name, changed))

    model.optimizer_step = recording
    out = model.train_step(batch)
    mixture = {"specified_encoder", "class_means", "raw_precisions"}
    assert steps == [("gaussian_mixture", mixture)] * 3 + [
        ("autoencoder", {"specified_encoder", "unspecified_encoder", "decoder"}),
        ("discriminator", {"discriminator"}),
        ("code_adversary", {"code_adversary"}),
    ]
    assert set(out) == {"gm", "reconstruction", "kl", "likelihood", "adversarial", "reconstruction_gan", "sample_gan",
                        "discriminator", "code_adversary"}
    assert all(torch.isfinite(v) for v in out.values())


def test_each_stage_two_term_reaches_only_the_modules_the_authors_train_with_it():
    data = tiny_images(16, classes=4)
    model = small_model(data)
    terms, _ = model.autoencoder_terms(batch_of(model, data))
    reaches = {
        "likelihood": {"specified_encoder"},
        "kl": {"unspecified_encoder"},
        "adversarial": {"unspecified_encoder"},
        "reconstruction_gan": {"decoder"},
        "sample_gan": {"decoder"},
        "reconstruction": {"specified_encoder", "unspecified_encoder", "decoder"},
    }
    modules = ("specified_encoder", "unspecified_encoder", "decoder")
    for term, expected in reaches.items():
        reached = set()
        for name in modules:
            params = list(getattr(model, name).parameters())
            grads = torch.autograd.grad(terms[term].sum(), params, retain_graph=True, allow_unused=True)
            if any(g is not None and g.abs().sum() > 0 for g in grads):
                reached.add(name)
        assert reached == expected, term


def test_stage_one_learning_rate_drops_after_the_set_epochs():
    data = tiny_images(64, classes=4)
    model = small_model(data, lr_drop_epochs=2, gm_steps=1)
    batch = model.make_batch(data, torch.arange(16), torch.Generator().manual_seed(0))
    assert model.steps_per_epoch == 4  # 64 images in batches of 16
    model.steps_done.fill_(7)
    model.train_step(batch)  # step 8 starts after 7 steps: not yet two epochs
    assert model.optimizers["gaussian_mixture"].param_groups[0]["lr"] == pytest.approx(5e-4)
    model.train_step(batch)  # 8 steps done: two epochs
    assert model.optimizers["gaussian_mixture"].param_groups[0]["lr"] == pytest.approx(5e-6)
    assert model.optimizers["autoencoder"].param_groups[0]["lr"] == pytest.approx(5e-4)


def test_checkpoint_round_trip():
    data = tiny_images(16, classes=4)
    model = small_model(data)
    model.train_step(batch_of(model, data))
    copy = Model.from_checkpoint(model.checkpoint()).eval()
    model.eval()
    x = data.images[:3]
    torch.testing.assert_close(copy.encode(x).specified, model.encode(x).specified)
    torch.testing.assert_close(copy.log_precisions(), model.log_precisions())
    assert int(copy.steps_done) == 1 and isinstance(copy, Zheng)


def test_a_spread_going_to_zero_or_infinity_is_clamped():
    data = tiny_images(16, classes=4)
    model = small_model(data, max_precision=100.0)
    with torch.no_grad():
        model.raw_precisions[0] = 1e30  # precision to infinity: a variance of 0
        model.raw_precisions[1] = -1e30  # precision to 0: an infinite variance
    log_precisions = model.log_precisions()
    assert torch.allclose(log_precisions[0], torch.full((3,), math.log(100.0)))
    assert torch.allclose(log_precisions[1], torch.full((3,), -math.log(100.0)))
    model.eval()
    s = model.encode(data.images).specified
    assert torch.isfinite(losses.gm_loss(s, data.labels, model.class_means, log_precisions)).all()
    assert torch.isfinite(model.sample(torch.tensor([0, 1]))).all()
    with pytest.raises(ValueError, match="max_precision must be a finite number > 1"):
        ZhengConfig(max_precision=math.inf)


def test_semi_supervised_batches_split_by_class_and_the_unlabelled_step_leaves_the_labelled_players_alone():
    data = tiny_images(16, classes=4)
    model = small_model(data, unlabelled_classes=(2, 3))
    batch = batch_of(model, data)
    assert set(batch) == {"x", "y", "x_unlabelled"} and len(batch["x"]) == len(batch["x_unlabelled"]) == 4
    assert set(batch["y"].tolist()) == {0, 1}
    terms, _ = model.autoencoder_terms(batch)
    assert terms["likelihood"].shape == terms["kl"].shape == (8,) and terms["adversarial"].shape == (4,)
    assert "adversarial" in model.train_step(batch)

    model = small_model(data, unlabelled_classes=(0, 1, 2, 3))
    batch = batch_of(model, data)
    assert set(batch) == {"x_unlabelled"}
    before = _players(model)
    out = model.train_step(batch)
    after = _players(model)
    assert set(out) == {"reconstruction", "kl", "likelihood"} and int(model.steps_done) == 1
    changed = {k for k in PLAYERS if any(not torch.equal(a, b) for a, b in zip(before[k], after[k]))}
    assert changed == {"specified_encoder", "unspecified_encoder", "decoder"}


def test_bad_input_is_refused_with_the_fix():
    data = tiny_images(16, classes=4)
    model = small_model(data)
    batch = batch_of(model, data)
    with pytest.raises(ValueError, match="without labels 'y'.*x_unlabelled"):
        model.train_step({"x": batch["x"]})
    with pytest.raises(ValueError, match=r"labels in \[0, 4\), got torch.int64 in \[\d, 7\].*one Gaussian per class"):
        model.train_step({**batch, "y": batch["y"] + 4})
    with pytest.raises(ValueError, match="one Gaussian per class"):
        model.eval().sample(torch.tensor([4]))
    with pytest.raises(ValueError, match="needs 'x' and 'y', or 'x_unlabelled'"):
        model.train_step({})
    with pytest.raises(ValueError, match="unlabelled images alone.*give batches with labelled images to train_step"):
        model.unlabelled_step(batch)
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\]"):
        model.train_step({**batch, "x": batch["x"] * 255})
    more_classes = ImageDataset(data.images, data.labels, 6, "tiny")
    with pytest.raises(ValueError, match=r"classes \[4, 5\] have no Gaussian.*unlabelled_classes"):
        model.make_batch(more_classes, torch.arange(4), torch.Generator())
    fresh = small_model(data)
    with pytest.raises(ValueError, match="how many steps make an epoch"):
        fresh.train_step(batch)
    with pytest.raises(ValueError, match="code_adversary_input must be one of"):
        ZhengConfig(code_adversary_input="logits")


def test_presets_keep_the_authors_values():
    paper = Zheng.PRESETS["mnist-paper"]
    assert (paper.specified_dim, paper.unspecified_dim, paper.gm_steps) == (32, 100, 3)
    assert (paper.lr, paper.betas, paper.margin, paper.likelihood_weight) == (5e-4, (0.0, 0.9), 0.0, 0.1)
    assert (paper.reconstruction_weight, paper.kl_weight, paper.code_adversary_weight, paper.generator_weight) == (10, 1, 1, 1)
    assert (paper.lr_drop_epochs, paper.lr_drop_factor, paper.widths) == (2, 0.01, (32, 64, 128, 256))
    assert (paper.precision_lr, paper.discriminator_hidden, paper.code_adversary_input) == (5e-4, 512, "sample")
    assert (paper.code_adversary_steps, paper.code_adversary_memory) == (1, 0)
    strong = Zheng.PRESETS["mnist-strong-adversary"]  # ours, an extension beside the authors' settings
    assert (strong.unspecified_dim, strong.code_adversary_weight, strong.code_adversary_input) == (16, 3.0, "mean")
    assert (strong.code_adversary_steps, strong.code_adversary_memory, strong.widths) == (5, 4096, Zheng.PRESETS["mnist"].widths)
    laptop = Zheng.PRESETS["mnist"]
    assert laptop.widths != paper.widths and laptop.reconstruction_weight == paper.reconstruction_weight
    assert Zheng.budget("full").batch_size == 96


# points (the toy of App. B.1), the precisions' own rate, C_z's extra updates ----------------------
def test_points_train_with_mlps_and_decode_to_raw_coordinates():
    from dislib.data import load
    from dislib.models.base import Budget
    from dislib.train import fit

    points = load("three-moons", "train", n=120)
    torch.manual_seed(0)
    model = Zheng.for_dataset(points)
    assert model.config.point_dim == 2 and model.config.lr_drop_factor == 1.0  # the toy preset: a fixed rate
    assert not any(isinstance(m, nn.Conv2d) for m in model.modules())
    fit(model, points, points, budget=Budget(steps=3, batch_size=32, eval_every=3), progress=False)
    model.eval()
    samples = model.sample(torch.tensor([0, 1, 2]))
    assert samples.shape == (3, 2) and (samples.min() < 0 or samples.max() > 1)  # no sigmoid on points
    with pytest.raises(ValueError, match=r"points of shape \[N, 2\]"):
        model.encode(torch.rand(4, 1, 28, 28))


def test_precisions_take_their_own_rate_and_drop_with_stage_one():
    data = tiny_images()
    model = small_model(data, lr=1e-3, precision_lr=1e-2, lr_drop_epochs=1, lr_drop_factor=0.1)
    batch_of(model, data)
    model.update_mixture_lr()
    assert [g["lr"] for g in model.optimizers["gaussian_mixture"].param_groups] == [1e-3, 1e-2]
    model.steps_done += 10 * model.steps_per_epoch
    model.update_mixture_lr()
    torch.testing.assert_close(torch.tensor([g["lr"] for g in model.optimizers["gaussian_mixture"].param_groups]),
                               torch.tensor([1e-4, 1e-3]))


def test_code_adversary_steps_update_c_z_that_many_times():
    data = tiny_images()
    model = small_model(data, code_adversary_steps=3)
    model.train_step(batch_of(model, data))
    state = model.optimizers["code_adversary"].state
    assert {int(s["step"]) for s in state.values()} == {3}
    with pytest.raises(ValueError, match="code_adversary_steps must be >= 1"):
        ZhengConfig(code_adversary_steps=0)


def test_discriminator_reads_centred_pixels_through_a_hidden_layer():
    data = tiny_images()
    model = small_model(data, discriminator_hidden=6)
    d = model.discriminator.eval()  # spectral norm's power iteration stands still
    assert d.centred and d.hidden[0].out_features == 6 and d.projection.weight.shape[1] == 6
    x, y = data.images[:4], data.labels[:4]
    expected = d.logit(d.hidden(d.features(2 * x - 1))).squeeze(1) + (d.projection(y) * d.hidden(d.features(2 * x - 1))).sum(1)
    torch.testing.assert_close(d(x, y), expected)


def test_code_adversary_memory_keeps_the_last_codes_and_feeds_c_z_from_them():
    data = tiny_images(16, classes=4)
    model = small_model(data, code_adversary_memory=12, code_adversary_input="mean", code_adversary_steps=2)
    for _ in range(2):
        model.train_step(batch_of(model, data))
    assert int(model.memory_written) == 16 and set(model.memory_labels.tolist()) <= set(range(4))
    mu, _ = model.unspecified_encoder(data.images[:8])
    assert model.memory_codes.abs().sum(1).gt(0).all()  # every slot written, the oldest overwritten
    codes, labels = model.code_adversary_batch(mu, data.labels[:8])
    assert codes.shape == (8, 5) and all(any(torch.equal(c, m) for m in model.memory_codes) for c in codes)
    copy = Model.from_checkpoint(model.checkpoint())
    assert torch.equal(copy.memory_codes, model.memory_codes) and int(copy.memory_written) == 16
    without = small_model(data)
    codes, labels = without.code_adversary_batch(mu, data.labels[:8])
    assert codes is mu  # no memory: C_z reads the step's own codes, as in the authors' code
    with pytest.raises(ValueError, match="code_adversary_memory"):
        ZhengConfig(code_adversary_memory=-1)


def test_evaluate_reports_the_adversary_on_what_it_reads():
    data = tiny_images(16, classes=4)
    model = small_model(data, code_adversary_input="mean").eval()
    metrics = model.evaluate(data)
    mu, _ = model.unspecified_encoder(data.images)
    expected = (model.code_adversary(mu).argmax(1) == data.labels).float().mean().item()
    assert metrics["test_code_adversary_accuracy"] == pytest.approx(expected)
