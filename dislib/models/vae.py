"""The variational autoencoder (Kingma & Welling 2014) and its conditional form (Sohn et al. 2015).

The unconditional VAE has only an unspecified code ``z``; the conditional VAE adds the label as
a specified code (one-hot), which is the simplest split of a representation into "the label"
and "everything else", and the starting point of the three papers of this book.

Sohn et al. condition the recognition network on the label too, ``q(z | x, y)``. Here the label
enters the decoder only, ``q(z | x)`` and ``p(x | z, y)``, as in the cVAE baseline of Zheng & Sun
(2019): the encoder needs nothing but images, so probes, grids and sliders treat the conditional
VAE like every other model, and whether ``z`` still carries the label can be measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models.base import COMPARISON_BUDGETS, Budget, Codes, Disentangler, ImageConfig, register
from dislib.nn import ConvDecoder, ConvEncoder, GaussianHead, encoder_trunk, reparameterize


@dataclass(frozen=True)
class VAEConfig(ImageConfig):
    """Settings of :class:`VAE`.

    ``likelihood`` is ``"bernoulli"`` (binary-ish images such as MNIST), ``"gaussian"`` or
    ``"laplace"`` with a fixed ``pixel_scale`` (see :func:`dislib.losses.image_nll`); ``beta``
    weights the KL term (1 is the true ELBO). ``hidden_width`` is 0 for an encoder of
    convolutions alone, or the width of a fully connected layer after them ("fc, batchnorm,
    relu", :func:`dislib.nn.encoder_trunk`: the encoders of Zheng & Sun 2019).
    """

    latent_dim: int = 16
    conditional: bool = False
    likelihood: str = "bernoulli"
    pixel_scale: float = 0.1
    beta: float = 1.0
    widths: tuple[int, ...] = (32, 64, 128)
    lr: float = 1e-3
    hidden_width: int = 0

    def __post_init__(self) -> None:
        losses.check_likelihood(self.likelihood, self.pixel_scale)
        if self.hidden_width < 0:
            raise ValueError(f"hidden_width must be 0 (no fully connected layer) or positive, got {self.hidden_width}")


@register
class VAE(Disentangler):
    """Convolutional VAE: ``q(z|x)`` a diagonal Gaussian, ``p(x|z[,y])`` Bernoulli, Gaussian or Laplace."""

    name = "vae"
    Config = VAEConfig
    BUDGETS = {
        "smoke": Budget(steps=40, batch_size=64, eval_every=20, train_size=2_048, eval_size=512),
        "full": Budget(steps=1_000, batch_size=128, eval_every=250, eval_size=2_000),
    }
    PRESETS = {
        "mnist": VAEConfig(latent_dim=16, widths=(16, 32, 64)),
        "mnist-2d": VAEConfig(latent_dim=2, widths=(16, 32, 64)),
        "mnist-conditional": VAEConfig(latent_dim=2, conditional=True, widths=(16, 32, 64)),
    }

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        c = config
        self.specified_dim = c.num_classes if c.conditional else 0
        self.unspecified_dim = c.latent_dim
        if c.hidden_width:  # convolutions, then "fc, hidden_width"
            self.encoder = encoder_trunk(c.image_channels, c.image_size, c.widths, c.hidden_width)
            features = c.hidden_width
        else:  # convolutions alone (the VAE's presets and checkpoints)
            self.encoder = ConvEncoder(c.image_channels, c.image_size, c.widths)
            features = self.encoder.out_features
        self.posterior = GaussianHead(features, c.latent_dim)
        self.decoder = ConvDecoder(c.latent_dim + self.specified_dim, c.image_channels, c.image_size, c.widths[::-1])
        self.optimizers["vae"] = torch.optim.Adam(self.parameters(), lr=c.lr)

    def _label_code(self, labels: Tensor | None, needed_by: str, count: int) -> Tensor | None:
        if not self.config.conditional:
            return None
        if labels is None:
            raise ValueError(f"a conditional VAE decodes from a label: pass labels to {needed_by}")
        if len(labels) != count:
            raise ValueError(f"{self.name}.{needed_by} got {len(labels)} labels for {count} images: pass one label per image")
        self.check_labels(labels)
        return F.one_hot(labels, self.config.num_classes).float()

    @property
    def label_is_code(self) -> bool:
        return self.config.conditional

    def encode(self, x: Tensor, labels: Tensor | None = None) -> Codes:
        """``q(z|x)``: ``z``'s mean and log-variance; for the conditional VAE the specified code is
        the one-hot label when ``labels`` are given (``None`` otherwise: an image alone does not
        name its label)."""
        self.check_images(x)
        specified = None if labels is None else self._label_code(labels, "encode", len(x))
        mu, logvar = self.posterior(self.encoder(x))
        return Codes(specified=specified, unspecified=mu, unspecified_logvar=logvar)

    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        """Images decoded from ``z ~ N(0, I)`` (and the given labels, when conditional)."""
        z = torch.randn(n, self.config.latent_dim, device=self.device)
        return self.decode(self._label_code(labels, "sample", n), z)

    def negative_elbo(self, x: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        r"""The two terms of the negative ELBO, per image, in nats.

        .. math:: -\mathcal L(x) = \underbrace{-\mathbb E_{q(z|x)}\log p(x|z)}_{\text{reconstruction}}
                  + \beta\,\underbrace{\mathrm{KL}(q(z|x)\,\|\,p(z))}_{\text{kl}}
        """
        codes = self.encode(x)
        specified = self._label_code(labels, "negative_elbo", len(x))
        logits = self.decoder_output(specified, reparameterize(codes.unspecified, codes.unspecified_logvar))
        c = self.config
        return {
            "reconstruction": losses.image_nll(logits, x, c.likelihood, c.pixel_scale),
            "kl": losses.kl_normal_standard(codes.unspecified, codes.unspecified_logvar),
        }

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Maximise the ELBO by one Adam step (Kingma & Welling 2014, Algorithm 1)."""
        x, *y = self.require(batch, "x", *(("y",) if self.config.conditional else ()))
        with self.autocast():
            terms = self.negative_elbo(x, y[0] if y else None)
            loss = (terms["reconstruction"] + self.config.beta * terms["kl"]).mean()
        self.optimizer_step("vae", loss)
        self.steps_done += 1
        return self.report({"loss": loss, **terms})

    @torch.no_grad()
    def evaluate(self, data: ImageDataset, batch_size: int = 500) -> dict[str, float]:
        """Test negative ELBO and its terms, in nats per image (lower is better)."""
        sums = {"reconstruction": 0.0, "kl": 0.0}
        for i in range(0, len(data), batch_size):
            labels = data.labels[i : i + batch_size] if self.config.conditional else None
            for k, v in self.negative_elbo(data.images[i : i + batch_size], labels).items():
                sums[k] += v.sum().item()
        out = {f"test_{k}": v / len(data) for k, v in sums.items()}
        out["test_negative_elbo"] = out["test_reconstruction"] + out["test_kl"]
        return out


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    """Settings of :class:`CVAE`: a :class:`VAEConfig` that is conditional by default (and must be)."""

    conditional: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.conditional:
            raise ValueError("CVAE is the conditional VAE (conditional=True); build a VAE for the unconditional one")


ZHENG_LAPTOP = CVAEConfig(
    latent_dim=100, widths=(16, 32, 64, 128), hidden_width=256, likelihood="gaussian", pixel_scale=math.sqrt(2) / 4,
    beta=28 * 28 / (10.0 * 100), lr=5e-4,
)
"""The cVAE baseline of Zheng & Sun (2019, Sec. 4.2) on the encoder and decoder of their model's
``mnist`` preset, with its ``z`` of 100 dimensions and its Gaussian likelihood of std ``sqrt(2) / 4``.
Their objective weighs the NLL by ``10 / P`` (``P = 784`` pixels) and the KL by ``1 / D_z``; the
same balance here is ``beta = P / (10 D_z) = 0.784``. Their learning rate, 5e-4; Adam keeps its
default betas (ours: their code's (0, 0.9), for every player, is a GAN setting)."""

ZHENG_LAPTOP_STYLED = replace(ZHENG_LAPTOP, beta=3 * 32 * 32 / (10.0 * 100))
"""The same balance on ``styled-mnist``'s 3 x 32 x 32 images: ``beta = P / (10 D_z) = 3.072``."""


@register
class CVAE(VAE):
    """The conditional VAE under its own name: ``q(z|x)``, ``p(x|z, y)``, the label one-hot beside ``z``.

    The same model as ``VAE`` with ``conditional=True``; its presets and budgets are those of the
    comparison with Zheng & Sun's model (the same networks, and as many images as it sees).
    """

    name = "cvae"
    Config = CVAEConfig
    PRESETS = {"mnist": ZHENG_LAPTOP, "fashion-mnist": ZHENG_LAPTOP, "styled-mnist": ZHENG_LAPTOP_STYLED}
    BUDGETS = COMPARISON_BUDGETS
