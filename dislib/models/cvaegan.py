"""The cVAE-GAN (Bao et al. 2017) as Zheng & Sun (2019) compare against it (Sec. 4.1 and 4.2).

One encoder reads the image alone, ``q(z | x) = N(mu, sigma^2)``, pulled to ``N(0, I)``; the decoder
``G([onehot(y), z])`` is told the label, so the specified code *is* the one-hot label, as in the
conditional VAE of :mod:`dislib.models.vae`. A pixel discriminator ``D(x, y)`` with the label's
projection and spectral norm judges real images, reconstructions ``G(y, z ~ q(z|x))`` and samples
``G(y, z ~ N(0, I))`` with the hinge loss. Zheng & Sun's toy comparison (Sec. 4.1) gives the
cVAE-GAN "only one encoder", the same as theirs, and the same discriminator.

This is Zheng & Sun's model without what makes it theirs: no label-relevant encoder ``E_s`` and
no class mixture (the specified code is the fixed one-hot label), no adversarial classifier on
``z``. Everything else is built the same way (networks, likelihood, loss weights and their
scaling, optimiser, budgets), so that a comparison between the two changes only how the label
enters the code. Bao et al.'s own recipe adds a classifier network on images and feature-matching
losses; Zheng & Sun do not describe them for their baseline, and we leave them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dislib import losses
from dislib.data.base import LabelledData
from dislib.models.base import (
    COMPARISON_BUDGETS, COMPARISON_NETWORKS, TOY_NETWORKS, Codes, Disentangler, ImageConfig, register,
)
from dislib.nn import GaussianHead, ImageDiscriminator, decoder_for, encoder_trunk, reparameterize, trunk_features

TOY = dict(**TOY_NETWORKS, unspecified_dim=2)
"""The toy of App. B.1 (``three-moons``): "the same settings of the network" as Zheng & Sun's model
(Sec. 4.1), and a 2-D ``z`` as theirs."""


@dataclass(frozen=True)
class CVAEGANConfig(ImageConfig):
    """Settings of :class:`CVAEGAN`; each default is the one of Zheng & Sun's model (``ZhengConfig``).

    Parameters
    ----------
    unspecified_dim
        Size of ``z`` (Zheng & Sun's ``z`` for MNIST in their code: 100).
    widths
        Channels of the encoder's 5x5 stride-2 convolutions, mirrored by the decoder (points: the
        hidden units of both MLPs). The default is the paper's CIFAR-10 table, 32-64-128-256.
    hidden_width
        Width of the encoder's fully connected layer after the convolutions (paper: 1024; unused
        for points).
    discriminator_widths, discriminator_hidden
        Channels of ``D``'s 5x5 stride-2 convolutions (points: its hidden units) and the units of
        its fully connected layer, which the label's projection reads: Zheng & Sun's ``D``, which
        also reads pixels in ``[-1, 1]``.
    likelihood, pixel_scale
        ``-log p(x | y, z)`` (see :func:`dislib.losses.image_nll`): a Gaussian of std
        ``sqrt(2) / 4``, which makes ``reconstruction_weight / P`` times the NLL the authors'
        ``10 * MSE`` on ``[-1, 1]`` pixels up to a constant. Points: a Gaussian of std
        ``pixel_scale`` around the decoder's output.
    reconstruction_weight
        Weight of the reconstruction NLL *per pixel*: the objective has
        ``reconstruction_weight / P * NLL`` for ``P`` pixels (coordinates, for points).
    kl_weight
        Weight of ``KL(q(z|x) || N(0, I))`` *per dimension of z*: ``kl_weight / D_z * KL``.
    generator_weight
        Weight of the decoder's hinge loss on reconstructions and on samples (each term once).
    lr, betas
        Adam for both players (Zheng & Sun's code: 5e-4, betas (0, 0.9)).
    point_dim
        0 for images; the number of coordinates for points (the toy of App. B.1), which makes every
        network an MLP.
    """

    unspecified_dim: int = 100
    widths: tuple[int, ...] = (32, 64, 128, 256)
    hidden_width: int = 1024
    discriminator_widths: tuple[int, ...] = (128, 256, 256)
    discriminator_hidden: int = 512
    likelihood: str = "gaussian"
    pixel_scale: float = math.sqrt(2) / 4
    reconstruction_weight: float = 10.0
    kl_weight: float = 1.0
    generator_weight: float = 1.0
    lr: float = 5e-4
    betas: tuple[float, float] = (0.0, 0.9)
    point_dim: int = 0

    def __post_init__(self) -> None:
        losses.check_likelihood(self.likelihood, self.pixel_scale)
        if self.unspecified_dim < 1:
            raise ValueError(f"unspecified_dim (the size of z) must be positive, got {self.unspecified_dim}")
        weights = {k: getattr(self, k) for k in ("reconstruction_weight", "kl_weight", "generator_weight")}
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"loss weights must be >= 0, got {weights}")


@register
class CVAEGAN(Disentangler):
    """``q(z | x)``, ``G([onehot(y), z])`` and ``D(x, y)``: a conditional VAE with a pixel GAN.

    ``encode(x, labels)`` gives the one-hot labels as the specified code (``None`` without labels:
    an image alone does not name its label), ``decode(onehot, z)`` the images, ``sample(labels)``
    images of those classes from ``z ~ N(0, I)``.
    """

    name = "cvaegan"
    Config = CVAEGANConfig
    PRESETS = {"mnist": CVAEGANConfig(**COMPARISON_NETWORKS), "fashion-mnist": CVAEGANConfig(**COMPARISON_NETWORKS),
               "three-moons": CVAEGANConfig(**TOY)}
    BUDGETS = COMPARISON_BUDGETS  # Zheng & Sun's model's: smoke 30 steps of 32, full 2000 steps of 96

    def __init__(self, config: CVAEGANConfig) -> None:
        super().__init__(config)
        c = config
        self.specified_dim, self.unspecified_dim = c.num_classes, c.unspecified_dim  # the one-hot label, z
        trunk = encoder_trunk(c.image_channels, c.image_size, c.widths, c.hidden_width, c.point_dim)
        features = trunk_features(c.widths, c.hidden_width, c.point_dim)
        self.encoder = nn.Sequential(trunk, GaussianHead(features, c.unspecified_dim))
        self.decoder = decoder_for(c.num_classes + c.unspecified_dim, c.image_channels, c.image_size, c.widths, c.point_dim)
        self.discriminator = ImageDiscriminator(
            c.image_channels, c.image_size, c.discriminator_widths, c.num_classes,
            label_input="projection", batch_norm=False, spectral_norm=True, point_dim=c.point_dim,
            hidden_width=c.discriminator_hidden, centred=True,
        )
        autoencoder = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizers["autoencoder"] = torch.optim.Adam(autoencoder, lr=c.lr, betas=c.betas)
        self.optimizers["discriminator"] = torch.optim.Adam(self.discriminator.parameters(), lr=c.lr, betas=c.betas)

    # the label is the specified code -------------------------------------------------------------
    @property
    def label_is_code(self) -> bool:
        return True

    def label_code(self, labels: Tensor | None, needed_by: str) -> Tensor:
        """The one-hot code of ``labels`` ``[N, num_classes]``, after checking them."""
        if labels is None:
            raise ValueError(f"the cVAE-GAN decodes from a label: pass labels to {needed_by}")
        self.check_labels(labels)
        return F.one_hot(labels, self.config.num_classes).float()

    def check_codes(self, specified: Tensor | None, unspecified: Tensor) -> None:
        if specified is None:
            raise ValueError(f"{self.name}.decode needs the label as its specified code: pass "
                             f"F.one_hot(labels, {self.config.num_classes}).float() (or model.label_code(labels, ...))")
        super().check_codes(specified, unspecified)

    # the shared interface ------------------------------------------------------------------------
    def encode(self, x: Tensor, labels: Tensor | None = None) -> Codes:
        """``q(z|x)``'s mean and log-variance; the specified code is the one-hot label when
        ``labels`` are given, ``None`` otherwise."""
        self.check_images(x)
        specified = None if labels is None else self.label_code(labels, "encode")
        mu, logvar = self.encoder(x)
        return Codes(specified=specified, unspecified=mu, unspecified_logvar=logvar)

    def sample(self, labels: Tensor) -> Tensor:
        """Images of the given classes, ``G([onehot(y), z])`` with ``z ~ N(0, I)``, one per label."""
        onehot = self.label_code(labels, "sample")
        return self.decode(onehot, torch.randn(len(onehot), self.unspecified_dim, device=onehot.device))

    generates_classes = True
    sample_classes = sample

    # training ------------------------------------------------------------------------------------
    def elbo_terms(self, x: Tensor, onehot: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """``-log p(x | y, z)`` at one draw ``z ~ q(z|x)`` and ``KL(q(z|x) || N(0, I))``, per input
        in nats, and the draw."""
        mu, logvar = self.encoder(x)
        z = reparameterize(mu, logvar)
        nll = self.reconstruction_nll(self.decoder_output(onehot, z), x)
        return {"reconstruction": nll, "kl": losses.kl_normal_standard(mu, logvar)}, z

    def autoencoder_terms(self, x: Tensor, y: Tensor) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor]]:
        """The encoder's and the decoder's per-image terms, and the two kinds of fake ``D`` judges.

        The decoder's hinge terms reach the decoder alone, as in Zheng & Sun's model: the
        reconstructions ``D`` sees are decoded again from the detached draw of ``z``.
        """
        onehot = self.label_code(y, "train_step")
        terms, z = self.elbo_terms(x, onehot)
        reconstructed = self.decode(onehot, z.detach())
        sampled = self.decode(onehot, torch.randn_like(z))
        judged = self.discriminator(torch.cat([reconstructed, sampled]), torch.cat([y, y]))
        on_reconstructions, on_samples = losses.hinge_generator_loss(judged).split(len(y))
        terms |= {"reconstruction_gan": on_reconstructions, "sample_gan": on_samples}
        return terms, (reconstructed, sampled)

    def autoencoder_objective(self, terms: dict[str, Tensor], per_input: int) -> Tensor:
        r"""The encoder's and decoder's objective, a scalar: each term averaged over the batch,
        weighted as in Zheng & Sun's model (``per_input``: the ``P`` pixels or coordinates of an input).

        .. math::
            \frac{w_{rec}}{P}\big[-\log p(x \mid y, z)\big]
            + \frac{w_{KL}}{D_z}\,\mathrm{KL}\big(q(z\mid x)\,\|\,\mathcal N(0, I)\big)
            + w_G\big[-D(G(y, z), y) - D(G(y, \tilde z), y)\big]
        """
        c = self.config
        vae = losses.per_unit_vae_terms(terms["reconstruction"], terms["kl"], c.reconstruction_weight, c.kl_weight,
                                        per_input, c.unspecified_dim)
        return vae + c.generator_weight * (terms["reconstruction_gan"].mean() + terms["sample_gan"].mean())

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """A VAE-GAN's step (Larsen et al. 2016, Algorithm 1; Bao et al. 2017): the encoder and the
        decoder take one Adam step on their objective, then ``D`` one on the hinge loss.

        ``D`` is frozen during the first step and judges the first step's fakes, detached, in the
        second: both players' gradients are taken at the same weights, as in Zheng & Sun's model.
        """
        x, y = self.require(batch, "x", "y")
        self.check_images(x)
        self.check_labels(y)

        self.discriminator.requires_grad_(False)
        with self.autocast():
            terms, fakes = self.autoencoder_terms(x, y)
            objective = self.autoencoder_objective(terms, x[0].numel())
        self.optimizer_step("autoencoder", objective)
        self.discriminator.requires_grad_(True)

        with self.autocast():
            logits = self.discriminator(torch.cat([x, *(fake.detach() for fake in fakes)]), y.repeat(3))
            discriminator = losses.hinge_discriminator_loss(*logits.split(len(x))).mean()
        self.optimizer_step("discriminator", discriminator)

        self.steps_done += 1
        return self.report({"loss": objective, **terms, "discriminator": discriminator})

    @torch.no_grad()
    def evaluate(self, data: LabelledData, batch_size: int = 500) -> dict[str, float]:
        """Held-out ``-log p(x | y, z)`` at one draw of ``q(z|x)``, ``KL(q(z|x) || N(0, I))`` and their
        sum (a one-draw estimate of the negative ELBO), in nats per input (lower is better)."""
        totals = {"reconstruction": 0.0, "kl": 0.0}
        for start in range(0, len(data), batch_size):
            x, y = data.inputs[start : start + batch_size], data.labels[start : start + batch_size]
            self.check_images(x)
            terms, _ = self.elbo_terms(x, self.label_code(y, "evaluate"))
            for k in totals:
                totals[k] += terms[k].sum().item()
        out = {f"test_{k}": v / len(data) for k, v in totals.items()}
        out["test_negative_elbo"] = out["test_reconstruction"] + out["test_kl"]
        return out
