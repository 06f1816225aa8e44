"""What Ruiz et al.'s (2019) reference-based models (``models/ruiz.py``) and their unsupervised
baselines (``models/ruiz_baselines.py``) share: the networks, likelihood, optimiser and budgets of
App. D and Sec. 5.2, and the sampling of a Laplace image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dislib import losses
from dislib.models.base import Budget, Disentangler, ImageConfig, check_weights
from dislib.nn import GaussianHead, LatentDiscriminator, PoolingEncoder, UpsamplingGenerator, laplace_sample

RUIZ_PIXEL_SCALE = 0.01 / 2
"""Ruiz et al.'s Laplace scale, 0.01 on ``[-1, 1]`` images, on dislib's ``[0, 1]`` pixels."""

RUIZ_LAPTOP_NETWORKS = dict(image_size=32, widths=(16, 32, 64, 128))
"""Ours: the networks of the ``styled-mnist`` presets (32-pixel images), half as wide as the paper's."""
RUIZ_LAPTOP = dict(likelihood="gaussian", pixel_scale=0.05, lr=5e-4)
"""Ours, the ``styled-mnist`` preset of every model on Ruiz et al.'s networks: a Gaussian likelihood of
standard deviation 0.05 on ``[0, 1]`` pixels (a pixel missed by 1 costs 200 nats, as under the paper's
Laplace) and Adam at 5e-4. Under the paper's Laplace the reference branch never learns to draw a
one-pixel edge (the median of a thin stroke's pixel is black), and at 1e-4 the 3,000 laptop steps
leave colour in ``z``; the ``styled-mnist-literal`` preset keeps the paper's."""
RUIZ_LAPTOP_DISCRIMINATORS = dict(discriminator_widths=(16, 32, 64, 128))
"""Ours: the latent discriminators' image branch in the ``styled-mnist`` presets, half as wide as the paper's."""
RUIZ_LAPTOP_SYMMETRIC = dict(adversarial_weight=100.0, code_reconstruction_weight=100.0)
"""Ours, in the ``styled-mnist`` preset of the models trained on the symmetric KL (sRb-VAE, sVAE): the
adversarial terms of Eq. 8 and the code reconstructions of Eq. 10 weighted by 100, so that they pull on
the encoders and the generator beside a reconstruction of thousands of nats (at weight 1 their share
of the gradient is a fraction of a percent)."""


@dataclass(frozen=True)
class RuizConfig(ImageConfig):
    """Settings of every model on Ruiz et al.'s networks; the defaults are the paper's (Sec. 5.2, App. D).

    Parameters
    ----------
    widths
        Channels of the encoders' stages (paper: 32-64-128-256). An encoder is a 3x3
        convolution to ``widths[0]``, then, for each width, a 2x2 average pooling and 3x3
        convolutions ``w -> w -> next w`` (the last stage ``w -> w``), each followed by pixel-wise
        normalisation and LeakyReLU(0.2); fully connected heads give the mean and log-variance.
        The generator mirrors it with nearest-neighbour upsampling (Fig. 6).
    likelihood, pixel_scale
        ``-log p(x | codes)`` (:func:`dislib.losses.image_nll`): a Laplace of scale 0.005 on
        ``[0, 1]`` pixels, the paper's 0.01 on ``[-1, 1]``. Its location is the generator's linear
        output (``"laplace-linear"``, ours): the paper's ``tanh`` (``"laplace"``, our sigmoid)
        saturates under the L1 loss and the generator draws black images (see
        :func:`dislib.losses.location`).
    lr, betas, eps
        Adam for every player (paper: 1e-4, (0.5, 0.99), 1e-8).
    """

    image_channels: int = 3
    image_size: int = 64
    num_classes: int = 2
    widths: tuple[int, ...] = (32, 64, 128, 256)
    likelihood: str = "laplace-linear"
    pixel_scale: float = RUIZ_PIXEL_SCALE
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.99)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        losses.check_likelihood(self.likelihood, self.pixel_scale)
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be one or more positive channel counts, got {self.widths}")
        if self.image_size < 2 ** len(self.widths):
            raise ValueError(f"{len(self.widths)} poolings need images of at least {2 ** len(self.widths)} pixels, "
                             f"got {self.image_size}: use fewer widths")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        check_weights(self)


@dataclass(frozen=True)
class SymmetricKLConfig:
    """The settings of a model trained on the symmetric KL through latent discriminators (sRb-VAE's
    ``d(x, z, e)`` and ``d'(x, z)``, sVAE's ``d(x, z)``), beside those of :class:`RuizConfig`:
    a config lists this class first among its bases, ``class C(SymmetricKLConfig, RuizConfig)``,
    and calls :meth:`check_discriminators` in its ``__post_init__``.

    Parameters
    ----------
    discriminator_widths
        Channels of the discriminators' image branch: the encoder's stages without
        normalisation (paper: as the encoder's).
    discriminator_image_features, discriminator_code_features, discriminator_hidden
        App. D: the image branch ends in "FC 64 - LeakyReLU", each code in "FC 32 - LeakyReLU",
        and the concatenation goes through "FC 128 - LeakyReLU" to a linear logit.
    input_drop
        App. D: the probability (0.25) with which, in training, each input of the layer after the
        concatenation, the image features and each code's features, is set to zero for an example
        (kept inputs are scaled by ``1 / (1 - p)``, as dropout does); see :class:`dislib.nn.InputDrop`.
    adversarial_weight
        Weight of the adversarial estimate of the symmetric KL (Ruiz et al., Eq. 8) in the encoders'
        and generator's objective (1: the paper).
    code_reconstruction_weight
        Weight of the code reconstructions of Eq. 10, ``-log q(code | x)`` of the prior codes read
        back from the images generated from them (1: the paper).
    """

    discriminator_widths: tuple[int, ...] = (32, 64, 128, 256)
    discriminator_image_features: int = 64
    discriminator_code_features: int = 32
    discriminator_hidden: int = 128
    input_drop: float = 0.25
    adversarial_weight: float = 1.0
    code_reconstruction_weight: float = 1.0

    def check_discriminators(self) -> None:
        """Raise a clear error for a dropout probability outside ``[0, 1)`` or discriminator widths that
        do not fit the images."""
        if not 0.0 <= self.input_drop < 1.0:
            raise ValueError(f"input_drop is a probability in [0, 1), got {self.input_drop}")
        if not self.discriminator_widths or min(self.discriminator_widths) < 1:
            raise ValueError(f"discriminator_widths must be one or more positive channel counts, "
                             f"got {self.discriminator_widths}")
        stages, size = len(self.discriminator_widths), getattr(self, "image_size")  # a RuizConfig's field
        if size < 2**stages:
            raise ValueError(f"{stages} poolings in the discriminators need images of at least {2**stages} pixels, "
                             f"got {size}: use fewer discriminator_widths")


def ruiz_presets(config: type, networks: dict[str, Any] | None = None, **laptop: Any) -> dict[str, Any]:
    """The three presets of a model on Ruiz et al.'s networks: ``styled-mnist`` (ours: the
    :data:`RUIZ_LAPTOP_NETWORKS` networks and ``networks``, the :data:`RUIZ_LAPTOP` likelihood and
    learning rate, and ``laptop``), ``styled-mnist-literal`` (the same networks with the paper's
    likelihood, learning rate and weights: the paper's recipe at laptop size) and ``styled-mnist-paper``
    (the paper's settings throughout)."""
    networks = {**RUIZ_LAPTOP_NETWORKS, **(networks or {})}
    return {"styled-mnist": config(**networks, **RUIZ_LAPTOP, **laptop),
            "styled-mnist-literal": config(**networks), "styled-mnist-paper": config()}


class RuizModel(Disentangler):
    """What every model on Ruiz et al.'s networks shares: its budgets, its Adam, how it builds a
    Gaussian encoder, the generator and a latent discriminator (App. D), and how it samples images.

    The budgets are those of Rb-VAE and sRb-VAE, which their baselines share: as many steps of as
    many images (the paper's batch of 36).
    """

    Config = RuizConfig
    BUDGETS = {
        "smoke": Budget(steps=20, batch_size=36, eval_every=10, train_size=720, eval_size=200),
        "full": Budget(steps=3_000, batch_size=36, eval_every=500, eval_size=2_000),
    }

    def adam(self, params: list[nn.Parameter]) -> torch.optim.Adam:
        """Adam with the configured ``lr``, ``betas`` and ``eps`` (paper: 1e-4, (0.5, 0.99), 1e-8)."""
        c = self.config
        return torch.optim.Adam(params, lr=c.lr, betas=c.betas, eps=c.eps)

    def make_encoder(self, dim: int) -> nn.Sequential:
        """``q(code | x)``: :class:`dislib.nn.PoolingEncoder` and a Gaussian head of ``dim`` dimensions,
        returning the mean and the log-variance."""
        c = self.config
        trunk = PoolingEncoder(c.image_channels, c.image_size, c.widths)
        return nn.Sequential(trunk, GaussianHead(trunk.out_features, dim))

    def make_generator(self, code_dim: int) -> UpsamplingGenerator:
        """``G``: :class:`dislib.nn.UpsamplingGenerator` from ``code_dim`` code dimensions, the encoder's
        widths reversed."""
        c = self.config
        return UpsamplingGenerator(code_dim, c.image_channels, c.image_size, c.widths[::-1])

    def make_discriminator(self, code_dims: tuple[int, ...]) -> LatentDiscriminator:
        """A :class:`dislib.nn.LatentDiscriminator` reading the image and one code of each size in
        ``code_dims``, built from the :class:`SymmetricKLConfig` settings."""
        c = self.config
        return LatentDiscriminator(
            c.image_channels, c.image_size, c.discriminator_widths, code_dims, c.discriminator_image_features,
            c.discriminator_code_features, c.discriminator_hidden, c.input_drop,
        )

    def generate(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        """``x ~ p(x | codes)``: a Laplace sample around the decoded mean image, reparameterised (values
        may leave ``[0, 1]`` by the noise, scale 0.005: what discriminators and encoders read in training)."""
        c = self.config
        mean = losses.location(self.decoder_output(specified, unspecified), c.likelihood).float()
        return laplace_sample(mean, c.pixel_scale)
