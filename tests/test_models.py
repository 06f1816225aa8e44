"""VAE, conditional VAE, DCGAN and conditional GAN (and their names as Zheng & Sun's baselines): shapes,
one step of learning, bad input."""

import dataclasses
import math
import re

import pytest
import torch

from dislib.data.base import ImageDataset
from dislib.models import CGAN, CVAE, GAN, MODELS, VAE, Budget, CGANConfig, Zheng
from dislib.models.base import Model
from dislib.train import fit, load_model
from tests.helpers import tiny_images


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3)])
@pytest.mark.parametrize("conditional", [False, True])
def test_vae_shapes(size, channels, conditional):
    data = tiny_images(16, channels, size)
    model = VAE.for_dataset(data, latent_dim=5, conditional=conditional, widths=(8, 8, 8)).eval()
    labels = data.labels if conditional else None
    codes = model.encode(data.images, labels)
    assert codes.unspecified.shape == codes.unspecified_logvar.shape == (16, 5)
    assert (codes.specified is None) != conditional
    images = model.decode(codes.specified, codes.unspecified)
    assert images.shape == data.images.shape and 0 <= images.min() and images.max() <= 1
    assert model.sample(3, labels[:3] if conditional else None).shape == (3, channels, size, size)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_training_lowers_the_loss(likelihood):
    data = tiny_images(64)
    data.images[:] = (data.images > 0.5).float()
    torch.manual_seed(0)
    model = VAE.for_dataset(data, widths=(8, 16, 16), likelihood=likelihood)
    history = fit(model, data, budget=Budget(steps=30, batch_size=32, eval_every=10), progress=False)
    assert history.losses[-1]["loss"] < history.losses[0]["loss"]


@pytest.mark.parametrize("conditional", [False, True])
def test_gan_step_returns_every_term(conditional):
    data = tiny_images(32)
    model = GAN.for_dataset(data, conditional=conditional, generator_widths=(16, 8, 8), discriminator_widths=(8, 8, 16))
    batch = model.make_batch(data, torch.arange(16), torch.Generator())
    out = model.train_step(batch)
    assert set(out) == {"d_loss", "g_loss", "D(x)", "D(G(z))"}
    labels = torch.arange(4) if conditional else None
    assert model.sample(4, labels).shape == (4, 1, 28, 28)
    # images outside [0, 1] (0-255, NaN, [-1, 1]) are refused before the step, naming the problem
    for bad in (batch["x"] * 255, torch.full_like(batch["x"], float("nan")), batch["x"] * 2 - 1):
        with pytest.raises(ValueError, match="input"):
            model.train_step({**batch, "x": bad})


def test_wrong_image_shape_names_the_expected_shape():
    model = VAE.for_dataset(tiny_images(8))
    with pytest.raises(ValueError, match=r"expects images of shape \[N, 1, 28, 28\], got \(2, 3, 28, 28\)"):
        model.encode(torch.rand(2, 3, 28, 28))
    gan = GAN.for_dataset(tiny_images(8))
    rgb = tiny_images(8, channels=3)
    with pytest.raises(ValueError, match="for_dataset"):
        gan.make_batch(rgb, torch.arange(4), torch.Generator())


def test_labels_out_of_range_are_refused():
    model = VAE.for_dataset(tiny_images(8), conditional=True)
    with pytest.raises(ValueError, match=r"labels in \[0, 10\), got torch.int64 in \[0, 12\]"):
        model.encode(torch.rand(2, 1, 28, 28), torch.tensor([0, 12]))
    gan = GAN.for_dataset(tiny_images(8), conditional=True)
    with pytest.raises(ValueError, match="labels"):
        gan.sample(2, torch.tensor([-1, 3]))


def test_codes_of_the_wrong_size_are_refused():
    model = VAE.for_dataset(tiny_images(8), latent_dim=4)
    with pytest.raises(ValueError, match=r"unspecified code of shape \[N, 4\]"):
        model.decode(None, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="has no specified code"):
        model.decode(torch.zeros(2, 10), torch.zeros(2, 4))


def test_unknown_preset_and_bad_config():
    with pytest.raises(KeyError, match="no preset"):
        VAE.for_dataset(tiny_images(8), preset="cifar")
    with pytest.raises(ValueError, match="likelihood"):
        VAE.for_dataset(tiny_images(8), likelihood="poisson")


def test_cvae_and_cgan_are_conditional_by_name_with_zhengs_networks():
    data = tiny_images(8)
    cvae, cgan = CVAE.for_dataset(data, widths=(4, 8, 8)), CGAN.for_dataset(data, generator_widths=(8, 4, 4))
    assert cvae.config.conditional and cvae.label_is_code and cvae.specified_dim == 10
    assert cgan.config.conditional and cgan.sample(2, torch.tensor([0, 9])).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="build a VAE for the unconditional one"):
        CVAE.for_dataset(data, conditional=False)
    with pytest.raises(ValueError, match="build a GAN for the unconditional one"):
        CGANConfig(conditional=False)
    mnist = ImageDataset(data.images, data.labels, 10, "mnist")
    cvae = CVAE.for_dataset(mnist)
    assert (cvae.config.widths, cvae.config.hidden_width, cvae.config.latent_dim) == ((16, 32, 64, 128), 256, 100)
    assert cvae.config.likelihood == "gaussian" and cvae.config.pixel_scale == pytest.approx(math.sqrt(2) / 4)
    assert cvae.config.beta == pytest.approx(0.784)  # Zheng's balance: (1 / D_z) / (10 / P)
    assert cvae.encoder[1][0].out_features == 256  # "fc, 256" after the convolutions
    cgan = CGAN.for_dataset(mnist)
    assert cgan.config.generator_widths == (128, 64, 32, 16) and cgan.config.latent_dim == 100
    assert CVAE.BUDGETS == CGAN.BUDGETS == Zheng.BUDGETS


def test_the_vae_keeps_its_presets_and_old_checkpoints():
    data = tiny_images(8)
    for preset in ("mnist", "mnist-2d", "mnist-conditional"):
        assert VAE.PRESETS[preset].hidden_width == 0
    model = VAE.for_dataset(data, widths=(4, 8, 8))
    assert "encoder.convs.0.weight" in model.state_dict() and not any(k.startswith("encoder.1") for k in model.state_dict())
    old = model.checkpoint()
    del old["config"]["hidden_width"]  # a checkpoint written before the setting existed
    restored = Model.from_checkpoint(old)
    assert type(restored) is VAE and restored.config.hidden_width == 0


def test_python_api_misuse_gets_clear_errors():
    data = tiny_images(8)
    vae = VAE.for_dataset(data)
    with pytest.raises(ValueError, match="float32 unspecified code, got torch.int64"):
        vae.decode(None, torch.zeros(2, vae.config.latent_dim, dtype=torch.long))
    with pytest.raises(ValueError, match="float32 unspecified code, got torch.float64: convert it with .float()"):
        vae.decode(None, torch.zeros(2, vae.config.latent_dim, dtype=torch.float64))
    zheng = Zheng.for_dataset(data)
    with pytest.raises(ValueError, match="got 3 specified codes and 2 unspecified ones"):
        zheng.decode(torch.zeros(3, zheng.specified_dim), torch.zeros(2, zheng.unspecified_dim))
    with pytest.warns(UserWarning, match="NaN or infinite"):
        vae.decode(None, torch.full((2, vae.config.latent_dim), float("nan")))
    with pytest.raises(ValueError, match="batch has no 'x'.*make_batch"):
        vae.train_step({"y": torch.zeros(2, dtype=torch.long)})
    cvae = VAE.for_dataset(data, conditional=True)
    with pytest.raises(ValueError, match="2 labels for 4 images"):
        cvae.encode(torch.rand(4, 1, 28, 28), torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="needs the run directory"):
        load_model(None)
    with pytest.raises(TypeError, match=re.escape("VAE.for_dataset builds the model for a dataset of dislib.data, got "
                                                  "Tensor: load one with dislib.data.load(name, 'train')")):
        VAE.for_dataset(data.images)


def test_a_conditional_vae_needs_one_label_per_image_everywhere():
    cvae = VAE.for_dataset(tiny_images(8), conditional=True)
    with pytest.raises(ValueError, match="vae.sample got 3 labels for 5 images: pass one label per image"):
        cvae.sample(5, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="negative_elbo got 5 labels for 8 images"):
        cvae.train_step({"x": torch.rand(8, 1, 28, 28), "y": torch.arange(5)})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_models_step_names_a_batch_that_is_not_the_dict_of_make_batch(name):
    data = tiny_images(8)
    model = MODELS[name].for_dataset(data)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    fix = f"{name}.train_step takes a batch as model.make_batch(data, indices, generator) returns it, a dict of tensors, got "
    for batch, got in ((data.images, "a tensor of shape (8, 1, 28, 28)"), ((data.images, data.labels), "a tuple"),
                       ({"x": data.images.numpy(), "y": data.labels}, "a dict holding 'x': ndarray")):
        with pytest.raises(TypeError, match=f"^{re.escape(fix + got)}: build the batch with make_batch$"):
            model.train_step(batch)
    assert int(model.steps_done) == 0 and all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_config_names_a_setting_of_the_wrong_kind_before_its_own_checks(name):
    config = MODELS[name].Config
    with pytest.raises(TypeError, match=rf"{config.__name__}.image_size takes a whole number, got '32' \(str\)"):
        config(image_size="32")
    with pytest.raises(TypeError, match=rf"{config.__name__}.num_classes takes a whole number, got True \(bool\)"):
        config(num_classes=True)
    assert config(**{f.name: list(getattr(config(), f.name)) for f in dataclasses.fields(config)
                     if isinstance(getattr(config(), f.name), tuple)}) is not None  # JSON's lists count as tuples
