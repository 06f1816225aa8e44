"""The shared pieces every paper's model stands on: blocks, likelihoods, hinge losses, the step
counter, the codes, input checks, regression on real factors, and points through the same loop."""

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from dislib import evaluate, losses, viz
from dislib.data.base import ImageDataset, PointDataset
from dislib.models import MODELS, VAE, Budget, Mathieu
from dislib.models.base import Codes, Model
from dislib.nn import MLP, CodeClassifier, ImageDiscriminator
from dislib.train import fit
from tests.helpers import tiny_images

SMALL = {
    "vae": dict(widths=(4, 8, 8), latent_dim=3),
    "cvae": dict(widths=(4, 8, 8), hidden_width=8, latent_dim=3),
    "gan": dict(generator_widths=(8, 4, 4), discriminator_widths=(4, 4, 8)),
    "cgan": dict(generator_widths=(8, 4, 4), discriminator_widths=(4, 4, 8)),
    "cvaegan": dict(widths=(4, 4, 8, 8), hidden_width=8, discriminator_widths=(4, 8, 8), unspecified_dim=5),
    "mathieu": dict(widths=(4, 8, 8), discriminator_widths=(4, 8, 8), specified_dim=3, unspecified_dim=5),
    "zheng": dict(widths=(4, 4, 8, 8), hidden_width=8, discriminator_widths=(4, 8, 8), adversary_hidden=8,
                  specified_dim=3, unspecified_dim=5),
    "rbvae": dict(widths=(4, 8), specified_dim=3, unspecified_dim=5),
    "srbvae": dict(widths=(4, 8), discriminator_widths=(4, 8), discriminator_image_features=8,
                   discriminator_code_features=4, discriminator_hidden=8, specified_dim=3, unspecified_dim=5),
    "ruizvae": dict(widths=(4, 8), latent_dim=5),
    "betavae": dict(widths=(4, 8), latent_dim=5),
    "dipvae1": dict(widths=(4, 8), latent_dim=5),
    "dipvae2": dict(widths=(4, 8), latent_dim=5),
    "svae": dict(widths=(4, 8), discriminator_widths=(4, 8), discriminator_image_features=8,
                 discriminator_code_features=4, discriminator_hidden=8, latent_dim=5),
}


# losses ------------------------------------------------------------------------------------
def test_laplace_nll_by_hand():
    mean, target = torch.tensor([[0.5, 0.0]]), torch.tensor([[0.75, 0.0]])
    # |0.25| / 0.5 + |0| / 0.5 + 2 log(2 * 0.5) = 0.5
    assert losses.laplace_nll(mean, target, scale=0.5).item() == pytest.approx(0.5)
    # scale 0.005 (Ruiz et al.'s 0.01 on [-1, 1]): 0.25 / 0.005 + 2 log(0.01)
    assert losses.laplace_nll(mean, target, 0.005).item() == pytest.approx(50 + 2 * math.log(0.01), rel=1e-5)


def test_image_nll_switches_likelihood_on_the_same_output():
    logits, target = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    assert losses.image_nll(logits, target, "bernoulli").item() == pytest.approx(4 * math.log(2), rel=1e-6)
    gaussian = 4 * (math.log(0.1) + 0.5 * math.log(2 * math.pi))  # mean sigmoid(0) = 0.5 = target
    assert losses.image_nll(logits, target, "gaussian", 0.1).item() == pytest.approx(gaussian, rel=1e-6)
    assert losses.image_nll(logits, target, "laplace", 0.5).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        losses.image_nll(logits, target, "poisson")
    with pytest.raises(ValueError, match="pixel scale > 0"):
        losses.image_nll(logits, target, "laplace", 0.0)


def test_hinge_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # [max(0, 1-2) + max(0, 1-2), max(0, 0.5) + max(0, 1.5)] = [0, 2]
    assert losses.hinge_discriminator_loss(real, fake).tolist() == [0.0, 2.0]
    assert losses.hinge_generator_loss(torch.tensor([0.3])).item() == pytest.approx(-0.3)


# blocks ------------------------------------------------------------------------------------
def test_projection_discriminator_adds_the_label_embedding_inner_product():
    torch.manual_seed(0)
    d = ImageDiscriminator(1, 8, (4, 8), num_classes=3, label_input="projection").eval()
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    h = d.features(x)
    expected = d.logit(h).squeeze(1) + (d.projection.weight[y] * h).sum(1)
    torch.testing.assert_close(d(x, y), expected)
    with pytest.raises(ValueError, match="pass labels"):
        d(x)
    with pytest.raises(ValueError, match="label_input must be one of"):
        ImageDiscriminator(1, 8, num_classes=3, label_input="concat")


def test_spectral_norm_holds_every_weight_to_unit_spectral_norm():
    torch.manual_seed(0)
    d = ImageDiscriminator(1, 8, (4, 8), 3, "projection", batch_norm=False, spectral_norm=True).train()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 3, (16,))
    for _ in range(30):  # power iterations, one per forward pass
        d(x, y)
    assert torch.linalg.matrix_norm(d.logit.weight, 2).item() == pytest.approx(1.0, abs=1e-3)
    conv = d.features.convs[1].weight.flatten(1)
    assert torch.linalg.matrix_norm(conv, 2).item() == pytest.approx(1.0, abs=0.05)


def test_code_classifier_reads_standardised_codes():
    torch.manual_seed(0)
    classifier = CodeClassifier(4, 3).train()
    codes = torch.randn(32, 4)
    torch.testing.assert_close(classifier(codes), classifier(100.0 * codes + 5.0), rtol=1e-4, atol=1e-4)
    assert classifier(codes).shape == (32, 3)


# the model interface -----------------------------------------------------------------------
def _small(name: str, data: ImageDataset) -> Model:
    torch.manual_seed(0)
    return MODELS[name].for_dataset(data, **SMALL[name])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_model_counts_its_steps_and_returns_detached_tensors(name):
    assert set(SMALL) >= set(MODELS), "a new model needs an entry in SMALL"
    data = tiny_images(16, classes=4)
    model = _small(name, data)
    batch = model.make_batch(data, torch.arange(8), torch.Generator().manual_seed(0))
    for expected in (1, 2):
        out = model.train_step(batch)
        assert int(model.steps_done) == expected
    assert all(isinstance(v, Tensor) and v.ndim == 0 and not v.requires_grad for v in out.values())
    assert int(Model.from_checkpoint(model.checkpoint()).steps_done) == 2


@pytest.mark.parametrize("name", sorted(SMALL))
def test_bfloat16_autocast_wraps_the_forward_pass_only(name):
    data = tiny_images(16, classes=4)
    model = _small(name, data)
    model.autocast_dtype = torch.bfloat16
    batch = model.make_batch(data, torch.arange(8), torch.Generator().manual_seed(0))
    out = model.train_step(batch)
    assert all(torch.isfinite(v) for v in out.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_label_conditional_generators_sample_the_classes_asked_and_others_refuse(name):
    data = tiny_images(16, classes=4)
    model = _small(name, data).eval()
    labels = torch.tensor([0, 3, 1])
    if model.generates_classes:
        images = model.sample_classes(labels)
        assert images.shape == (3, *data.image_shape) and 0 <= images.min() and images.max() <= 1
    else:
        with pytest.raises(ValueError, match="does not generate images of a given class"):
            model.sample_classes(labels)
    assert model.generates_classes == (name in {"zheng", "cvaegan", "cvae", "cgan"} or getattr(model.config, "conditional", False))


def test_images_outside_the_pixel_range_or_type_are_refused_with_the_fix():
    data = tiny_images(8)
    model = VAE.for_dataset(data, widths=(4, 8, 8))
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\], got \[0.0\d+, 255\]; divide 0-255 images by 255"):
        model.encode(data.images * 255)
    with pytest.raises(ValueError, match=r"float32 in \[0, 1\], got torch.uint8; .*div\(255\)"):
        model.encode((data.images * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        ImageDataset(data.images * 2 - 1, data.labels, 10, "signed")
    with pytest.raises(ValueError, match="divide 0-255"):
        ImageDataset(data.images * 255, data.labels, 10, "bytes")


def test_labels_out_of_range_in_a_mathieu_batch_are_named():
    data = tiny_images(16, classes=4)
    model = _small("mathieu", data)
    batch = model.make_batch(data, torch.arange(8), torch.Generator().manual_seed(0))
    batch["id2"] = batch["id2"] + 10
    with pytest.raises(ValueError, match=r"int64 labels in \[0, 4\), got torch.int64 in \[1\d, 1\d\]"):
        model.train_step(batch)
    with pytest.raises(ValueError, match="missing"):
        model.train_step({"x1": batch["x1"]})


def test_conditional_vae_encodes_images_alone_and_takes_labels_where_given():
    data = tiny_images(12)
    cvae = VAE.for_dataset(data, widths=(4, 8, 8), latent_dim=2, conditional=True).eval()
    codes = cvae.encode(data.images)
    assert codes.specified is None and codes.unspecified.shape == (12, 2)
    with_labels = evaluate.encode_dataset(cvae, data)
    assert torch.equal(with_labels.specified.argmax(1), data.labels)
    torch.testing.assert_close(with_labels.unspecified, codes.unspecified)
    with pytest.raises(ValueError, match="pass the images' labels"):
        viz.swap_images(cvae, data.images[:2], data.images[:3])
    swaps = viz.swap_images(cvae, data.images[:2], data.images[:3], column_labels=data.labels[:3])
    assert swaps.shape == (2, 3, 1, 28, 28)


def test_codes_carry_the_specified_log_variance_by_name():
    codes = Codes(specified=torch.zeros(2, 3), unspecified=torch.ones(2, 4), specified_logvar=torch.full((2, 3), -1.0))
    assert codes.unspecified_logvar is None and codes.specified_logvar.shape == (2, 3)


# real factors ------------------------------------------------------------------------------
def test_regress_is_least_squares_with_a_bias():
    features = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    exact = evaluate.regress(features, 2 * features + 1, features, 2 * features + 1)
    assert exact.item() == pytest.approx(0.0, abs=1e-5)
    # constant features: the regressor predicts the training mean 1; |1 - 1| and |1 - 3| average to 1
    constant = torch.ones(2, 1)
    mae = evaluate.regress(constant, torch.tensor([[0.0], [2.0]]), constant, torch.tensor([[1.0], [3.0]]))
    assert mae.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in length"):
        evaluate.regress(features, torch.zeros(3, 1), features, torch.zeros(4, 1))


def _real_factor_data(n: int, seed: int) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 28, 28, generator=g)
    factors = torch.stack([images[:, 0, 0, 0], images[:, 0, 27, 27]], 1)  # real factors: two pixels
    return ImageDataset(images, torch.arange(n) % 10, 10, "pixels", factors=factors, factor_names=("first", "last"))


def test_regress_codes_reads_real_factors_from_each_code():
    train, test = _real_factor_data(200, 0), _real_factor_data(100, 1)
    torch.manual_seed(0)
    model = Mathieu.for_dataset(train, **SMALL["mathieu"])
    results = evaluate.regress_codes(model, train, test)
    assert set(results) == {"s", "z"} and set(results["z"]) == {"first", "last", "mean"}
    assert results["z"]["mean"] == pytest.approx((results["z"]["first"] + results["z"]["last"]) / 2)
    # in factor ranges: each error divided by its factor's max - min over the test images
    ranges = evaluate.factor_ranges(test)
    scaled = evaluate.regress_codes(model, train, test, in_ranges=True)
    assert scaled["z"]["first"] == pytest.approx(results["z"]["first"] / ranges[0].item(), rel=1e-5)
    chance = evaluate.chance_errors(train, test, in_ranges=True)
    expected = ((test.factors - train.factors.mean(0)).abs().mean(0) / ranges).tolist()
    assert [chance["first"], chance["last"]] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="no range"):
        evaluate.factor_ranges(test.subset(slice(0, 1)))
    with pytest.raises(ValueError, match="needs real-valued factors"):
        evaluate.regress_codes(model, tiny_images(20), tiny_images(20))
    with pytest.raises(KeyError, match="use regress_codes"):
        evaluate.probe_codes(model, train, test, names=("first",))
    with pytest.raises(ValueError, match="factor_sizes"):
        ImageDataset(train.images, train.labels, 10, "x", factors=train.factors, factor_sizes=(2, 2))


# points through the same loop ----------------------------------------------------------------
@dataclass(frozen=True)
class PointConfig:
    point_dim: int = 2  # a point_dim setting says that the model reads points (Model.for_dataset, fit)
    hidden: int = 16


class PointClassifier(Model):
    """The smallest model on points: an MLP classifier, to show points go through ``fit``."""

    name = "point-classifier"
    Config = PointConfig
    BUDGETS = {}

    def __init__(self, config: PointConfig) -> None:
        super().__init__(config)
        self.net = MLP((config.point_dim, config.hidden, 3))
        self.optimizers["net"] = torch.optim.Adam(self.net.parameters(), lr=1e-2)

    def check_images(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"expects points [N, 2], got {tuple(x.shape)}")

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        loss = nn.functional.cross_entropy(self.net(batch["x"]), batch["y"])
        self.optimizer_step("net", loss)
        self.steps_done += 1
        return self.report({"loss": loss})

    def evaluate(self, data: PointDataset) -> dict[str, float]:
        return {"accuracy": (self.net(data.inputs).argmax(1) == data.labels).float().mean().item()}


def test_three_moons_train_through_fit_like_images():
    from dislib import data as datasets

    train, test = datasets.load("three-moons", "train", n=600), datasets.load("three-moons", "test", n=300)
    assert train.real_factors and train.factor_names == ("angle",) and train.subset(slice(0, 5)).factors.shape == (5, 1)
    torch.manual_seed(0)
    model = PointClassifier(PointConfig())
    history = fit(model, train, test, budget=Budget(steps=150, batch_size=64, eval_every=150), progress=False)
    assert int(model.steps_done) == 150
    assert history.metrics[-1]["accuracy"] > 0.9
    with pytest.raises(TypeError, match="holds PointDataset"):
        VAE.for_dataset(train)


def test_a_run_directory_records_the_options_its_data_was_loaded_with(tmp_path):
    from dislib import data as datasets
    from dislib.train import read_run

    train = datasets.load("three-moons", "train", n=90, noise=0.05)
    assert train.load_options == {"n": 90, "noise": 0.05} and train.subset(slice(0, 9)).load_options == train.load_options
    fit(PointClassifier(PointConfig()), train, budget=Budget(steps=2, batch_size=30, eval_every=2), out=tmp_path,
        progress=False)
    assert read_run(tmp_path)["data_options"] == {"n": 90, "noise": 0.05}


def test_held_out_regresses_real_factors_and_skips_a_one_class_label_probe():
    from dislib.models import RbVAE

    data = _real_factor_data(120, 0)
    one_class = ImageDataset(data.images, torch.zeros(120, dtype=torch.long), 2, "one-class", factors=data.factors,
                             factor_names=data.factor_names)
    torch.manual_seed(0)
    model = RbVAE.for_dataset(one_class, **SMALL["rbvae"]).eval()
    metrics = evaluate.held_out(model, one_class)
    assert {"s_factor_mae", "z_factor_mae"} <= set(metrics) and "s_accuracy" not in metrics
    assert 0.0 < metrics["z_factor_mae"] < 1.0
