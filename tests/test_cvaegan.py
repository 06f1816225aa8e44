"""The cVAE-GAN baseline of Zheng & Sun (2019): its objectives by hand, which player each step moves,
the label as the specified code, points, presets beside Zheng's, and errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from dislib import data as datasets
from dislib import evaluate
from dislib.data.base import ImageDataset
from dislib.models import CVAEGAN, Budget, CVAEGANConfig, Zheng
from dislib.models.base import Model
from dislib.train import fit
from tests.helpers import tiny_images

SMALL = dict(widths=(4, 4, 8, 8), hidden_width=8, discriminator_widths=(4, 8, 8), unspecified_dim=5)
PLAYERS = ("encoder", "decoder", "discriminator")


def small_model(data: ImageDataset, **overrides) -> CVAEGAN:
    torch.manual_seed(0)
    return CVAEGAN.for_dataset(data, **{**SMALL, **overrides})


def batch_of(model: CVAEGAN, data: ImageDataset, n: int = 8) -> dict[str, torch.Tensor]:
    return model.make_batch(data, torch.arange(n), torch.Generator().manual_seed(1))


# the objectives, by hand ---------------------------------------------------------------------
def test_autoencoder_objective_weights_each_term():
    model = small_model(tiny_images(8, classes=4), reconstruction_weight=8.0, kl_weight=2.0, generator_weight=7.0,
                        unspecified_dim=4)
    one = torch.ones(2)
    terms = {"reconstruction": one, "kl": 3 * one, "reconstruction_gan": one, "sample_gan": -2 * one}
    # 8 / 4 pixels * 1 + 2 / 4 dimensions * 3 + 7 (1 - 2) = 2 + 1.5 - 7 = -3.5
    assert model.autoencoder_objective(terms, per_input=4).item() == pytest.approx(-3.5)


def test_terms_are_the_gaussian_nll_the_kl_and_the_hinge_of_d():
    data = tiny_images(8, classes=4)
    model = small_model(data)
    x, y = data.images, data.labels
    torch.manual_seed(3)
    terms, (reconstructed, sampled) = model.autoencoder_terms(x, y)
    assert set(terms) == {"reconstruction", "kl", "reconstruction_gan", "sample_gan"}
    assert all(t.shape == (8,) for t in terms.values())
    # -D(fake, y) for both kinds of fake (in eval mode D reuses the spectral norm its last forward pass found)
    model.discriminator.eval()
    torch.testing.assert_close(terms["reconstruction_gan"], -model.discriminator(reconstructed, y))
    torch.testing.assert_close(terms["sample_gan"], -model.discriminator(sampled, y))
    # Gaussian of std sqrt(2) / 4: at least the constant P (log std + log(2 pi) / 2)
    constant = 784 * (math.log(math.sqrt(2) / 4) + 0.5 * math.log(2 * math.pi))
    assert (terms["reconstruction"] >= constant).all() and (terms["kl"] >= 0).all()


def test_the_generator_terms_reach_the_decoder_alone():
    data = tiny_images(8, classes=4)
    model = small_model(data)
    terms, _ = model.autoencoder_terms(data.images, data.labels)
    gan = terms["reconstruction_gan"].sum() + terms["sample_gan"].sum()
    encoder = list(model.encoder.parameters())
    assert all(g is None for g in torch.autograd.grad(gan, encoder, retain_graph=True, allow_unused=True))
    decoder_grads = torch.autograd.grad(gan, list(model.decoder.parameters()), retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in decoder_grads)
    # the reconstruction term trains the encoder
    assert any(g is not None for g in torch.autograd.grad(terms["reconstruction"].sum(), encoder, allow_unused=True))


# the step ------------------------------------------------------------------------------------
def test_each_step_moves_only_its_players_in_order(monkeypatch):
    data = tiny_images(16, classes=4)
    model = small_model(data)
    batch = batch_of(model, data)
    moved: list[tuple[str, set[str]]] = []
    step = model.optimizer_step

    def spy(name, loss):
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        step(name, loss)
        players = {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(v, before[k])}
        moved.append((name, players))

    monkeypatch.setattr(model, "optimizer_step", spy)
    out = model.train_step(batch)
    assert moved == [("autoencoder", {"encoder", "decoder"}), ("discriminator", {"discriminator"})]
    assert set(out) == {"loss", "reconstruction", "kl", "reconstruction_gan", "sample_gan", "discriminator"}
    assert int(model.steps_done) == 1
    # D was frozen for the first step only
    assert all(p.requires_grad for p in model.discriminator.parameters())


def test_d_judges_the_fakes_of_the_same_step(monkeypatch):
    data = tiny_images(16, classes=4)
    model = small_model(data)
    batch = batch_of(model, data)
    made = []
    terms = model.autoencoder_terms
    monkeypatch.setattr(model, "autoencoder_terms", lambda x, y: made.append(terms(x, y)) or made[-1])
    judged = []
    forward = model.discriminator.forward
    monkeypatch.setattr(model.discriminator, "forward", lambda x, y: judged.append((x, y)) or forward(x, y))
    model.train_step(batch)
    images, labels = judged[-1]
    (reconstructed, sampled) = made[0][1]
    torch.testing.assert_close(images, torch.cat([batch["x"], reconstructed.detach(), sampled.detach()]))
    assert torch.equal(labels, batch["y"].repeat(3))


# the shared interface --------------------------------------------------------------------------
def test_the_label_is_the_specified_code():
    data = tiny_images(12, classes=4)
    model = small_model(data).eval()
    assert model.label_is_code and model.specified_dim == 4 and model.unspecified_dim == 5
    alone = model.encode(data.images)
    assert alone.specified is None and alone.unspecified.shape == alone.unspecified_logvar.shape == (12, 5)
    codes = evaluate.encode_dataset(model, data)
    torch.testing.assert_close(codes.specified, F.one_hot(data.labels, 4).float())
    torch.testing.assert_close(codes.unspecified, alone.unspecified)
    images = model.decode(codes.specified, codes.unspecified)
    assert images.shape == (12, 1, 28, 28) and 0.0 <= images.min() and images.max() <= 1.0


def test_sample_decodes_the_labels_one_hot_with_z_from_the_prior():
    data = tiny_images(12, classes=4)
    model = small_model(data).eval()
    labels = torch.tensor([3, 0, 2, 2, 1])
    torch.manual_seed(7)
    samples = model.sample(labels)
    assert samples.shape == (5, 1, 28, 28) and 0.0 <= samples.min() and samples.max() <= 1.0
    torch.manual_seed(7)
    expected = model.decode(F.one_hot(labels, 4).float(), torch.randn(5, 5))
    torch.testing.assert_close(samples, expected)
    # the class changes the image: the same z decoded with another label
    other = model.decode(F.one_hot((labels + 1) % 4, 4).float(), torch.randn(5, 5))
    assert not torch.allclose(samples, other)


def test_evaluate_reports_nats_per_image_and_the_checkpoint_keeps_them():
    data = tiny_images(20, classes=4)
    model = small_model(data)
    for _ in range(2):
        model.train_step(batch_of(model, data))
    model.eval()
    torch.manual_seed(0)
    metrics = model.evaluate(data, batch_size=7)
    assert set(metrics) == {"test_reconstruction", "test_kl", "test_negative_elbo"}
    assert metrics["test_negative_elbo"] == pytest.approx(metrics["test_reconstruction"] + metrics["test_kl"])
    restored = Model.from_checkpoint(model.checkpoint()).eval()
    torch.manual_seed(0)
    assert restored.evaluate(data, batch_size=7) == pytest.approx(metrics)


def test_presets_and_budgets_are_zhengs():
    assert CVAEGAN.BUDGETS == Zheng.BUDGETS
    shared = ("widths", "hidden_width", "discriminator_widths", "unspecified_dim", "likelihood", "pixel_scale",
              "reconstruction_weight", "kl_weight", "generator_weight", "lr", "betas", "point_dim")
    defaults = {"cvaegan": CVAEGANConfig(), "zheng": Zheng.Config()}
    assert {k: getattr(defaults["cvaegan"], k) for k in shared} == {k: getattr(defaults["zheng"], k) for k in shared}
    for preset in ("mnist", "fashion-mnist", "three-moons"):
        ours, theirs = CVAEGAN.PRESETS[preset], Zheng.PRESETS[preset]
        assert {k: getattr(ours, k) for k in shared} == {k: getattr(theirs, k) for k in shared}, preset
    model = CVAEGAN.for_dataset(ImageDataset(torch.rand(4, 1, 28, 28), torch.arange(4), 10, "fashion-mnist"))
    assert model.config.widths == (16, 32, 64, 128) and model.unspecified_dim == 100 and model.specified_dim == 10


# points ----------------------------------------------------------------------------------------
def test_three_moons_train_for_a_few_steps():
    train, test = datasets.load("three-moons", "train", n=300), datasets.load("three-moons", "test", n=120)
    torch.manual_seed(0)
    model = CVAEGAN.for_dataset(train)
    assert model.config.point_dim == 2 and model.config.num_classes == 3 and model.unspecified_dim == 2
    history = fit(model, train, test, budget=Budget(steps=6, batch_size=50, eval_every=6), progress=False)
    assert int(model.steps_done) == 6
    assert all(math.isfinite(v) for v in history.losses[-1].values())
    metrics = history.metrics[-1]
    assert math.isfinite(metrics["test_reconstruction"]) and metrics["test_kl"] >= 0 and "z_factor_mae" in metrics
    model.eval()
    assert model.sample(torch.tensor([0, 1, 2, 2])).shape == (4, 2)
    codes = model.encode(test.inputs[:5], test.labels[:5])
    assert codes.specified.shape == (5, 3) and codes.unspecified.shape == (5, 2)


# errors ----------------------------------------------------------------------------------------
def test_labels_out_of_range_are_refused_everywhere():
    data = tiny_images(16, classes=4)
    model = small_model(data)
    with pytest.raises(ValueError, match=r"int64 labels in \[0, 4\), got torch.int64 in \[0, 4\]"):
        model.encode(data.images[:2], torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"labels in \[0, 4\), got torch.int64 in \[-1, 2\]"):
        model.sample(torch.tensor([-1, 2]))
    batch = batch_of(model, data)
    with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
        model.train_step({"x": batch["x"], "y": batch["y"] + 4})
    with pytest.raises(ValueError, match=r"labels in \[0, 4\)"):
        model.evaluate(tiny_images(16, classes=6))
    assert int(model.steps_done) == 0


def test_missing_labels_name_the_fix():
    data = tiny_images(8, classes=4)
    model = small_model(data).eval()
    with pytest.raises(ValueError, match="pass labels to sample"):
        model.sample(None)
    with pytest.raises(ValueError, match=r"needs the label as its specified code: pass F.one_hot\(labels, 4\)"):
        model.decode(None, torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"specified code of shape \[N, 4\]"):
        model.decode(torch.zeros(2, 3), torch.zeros(2, 5))


def test_a_model_for_images_refuses_points_and_the_reverse():
    images, points = tiny_images(8, classes=3), datasets.load("three-moons", "train", n=30)
    model = small_model(images)
    with pytest.raises(ValueError, match=r"expects images of shape \[N, 1, 28, 28\], got \(30, 2\).*for_dataset"):
        model.encode(points.inputs)
    with pytest.raises(ValueError, match="expects images of shape"):
        model.make_batch(points, torch.arange(8), torch.Generator())
    toy = CVAEGAN.for_dataset(points)
    with pytest.raises(ValueError, match=r"float32 points of shape \[N, 2\], got torch.float32 \(8, 1, 28, 28\)"):
        toy.encode(images.images)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unspecified_dim"):
        CVAEGANConfig(unspecified_dim=0)
    with pytest.raises(ValueError, match="loss weights must be >= 0"):
        CVAEGANConfig(kl_weight=-1.0)
    with pytest.raises(ValueError, match="likelihood"):
        CVAEGANConfig(likelihood="poisson")
    with pytest.raises(KeyError, match="no preset"):
        CVAEGAN.for_dataset(tiny_images(8), preset="mnist-paper")
