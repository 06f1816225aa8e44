"""VAE, conditional VAE, DCGAN and conditional GAN: shapes, one step of learning, bad input."""

import pytest
import torch

from dislib.models import GAN, VAE, Budget
from dislib.train import fit
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
