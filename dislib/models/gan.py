"""DCGAN (Radford et al. 2016) and its class-conditional form (Mirza & Osindero 2014).

The generator is the VAE's decoder block fed with noise (and a label embedding); the
discriminator is the encoder block with LeakyReLU, ending in one logit. The conditional
discriminator adds one learned per-class bias to each layer's feature maps, the same
conditioning Mathieu et al. (2016) use for their adversary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models.base import COMPARISON_BUDGETS, Budget, ImageConfig, Model, register
from dislib.nn import ConvDecoder, ImageDiscriminator


@dataclass(frozen=True)
class GANConfig(ImageConfig):
    """Settings of :class:`GAN`; the optimiser values are DCGAN's (Adam, lr 2e-4, beta1 0.5)."""

    latent_dim: int = 32
    conditional: bool = False
    label_dim: int = 16
    generator_loss: str = "nonsaturating"
    generator_widths: tuple[int, ...] = (128, 64, 32)
    discriminator_widths: tuple[int, ...] = (32, 64, 128)
    lr: float = 2e-4
    beta1: float = 0.5

    def __post_init__(self) -> None:
        if self.generator_loss not in ("nonsaturating", "minimax"):
            raise ValueError(f"generator_loss must be 'nonsaturating' or 'minimax', got {self.generator_loss!r}")


@register
class GAN(Model):
    """A generator ``G(z[, y])`` and a discriminator ``D(x[, y])`` trained against each other."""

    name = "gan"
    Config = GANConfig
    BUDGETS = {
        "smoke": Budget(steps=40, batch_size=64, eval_every=20, train_size=2_048, eval_size=512),
        "full": Budget(steps=5_000, batch_size=64, eval_every=500, eval_size=2_000),
    }
    PRESETS = {
        "mnist": GANConfig(generator_widths=(64, 32, 16), discriminator_widths=(16, 32, 64)),
        "mnist-conditional": GANConfig(
            conditional=True, generator_widths=(64, 32, 16), discriminator_widths=(16, 32, 64)
        ),
    }

    def __init__(self, config: GANConfig) -> None:
        super().__init__(config)
        c = config
        self.label_embedding = nn.Embedding(c.num_classes, c.label_dim) if c.conditional else None
        extra = c.label_dim if c.conditional else 0
        self.generator = ConvDecoder(c.latent_dim + extra, c.image_channels, c.image_size, c.generator_widths)
        self.discriminator = ImageDiscriminator(
            c.image_channels, c.image_size, c.discriminator_widths,
            num_classes=c.num_classes if c.conditional else 0, label_input="layers" if c.conditional else "none",
        )
        g_params = list(self.generator.parameters())
        if self.label_embedding is not None:
            g_params += list(self.label_embedding.parameters())
        self.optimizers["generator"] = torch.optim.Adam(g_params, lr=c.lr, betas=(c.beta1, 0.999))
        self.optimizers["discriminator"] = torch.optim.Adam(
            self.discriminator.parameters(), lr=c.lr, betas=(c.beta1, 0.999)
        )

    def _labels(self, labels: Tensor | None) -> Tensor | None:
        if not self.config.conditional:
            return None
        if labels is None:
            raise ValueError("a conditional GAN needs labels: generate(z, labels)")
        self.check_labels(labels)
        return labels

    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in ``[0, 1]`` from noise ``z`` ``[N, latent_dim]`` (and labels, when conditional)."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z must have shape [N, {self.config.latent_dim}], got {tuple(z.shape)}")
        labels = self._labels(labels)
        h = z if labels is None else torch.cat([z, self.label_embedding(labels)], 1)
        return torch.sigmoid(self.generator(h))

    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        """Images from ``z ~ N(0, I)``."""
        return self.generate(torch.randn(n, self.config.latent_dim, device=self.device), labels)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One discriminator step, then one generator step (Goodfellow et al. 2014, Algorithm 1, k = 1)."""
        x, *labels = self.require(batch, "x", *(("y",) if self.config.conditional else ()))
        self.check_images(x)
        y = labels[0] if labels else None
        if y is not None:
            self.check_labels(y)
        with self.autocast():
            fake = self.sample(len(x), y)
            d_real, d_fake = self.discriminator(x, y), self.discriminator(fake.detach(), y)
            d_loss = losses.discriminator_loss(d_real, d_fake).mean()
        self.optimizer_step("discriminator", d_loss)

        with self.autocast():
            g_logits = self.discriminator(fake, y)
            if self.config.generator_loss == "nonsaturating":
                g_loss = losses.generator_loss_nonsaturating(g_logits).mean()
            else:
                g_loss = losses.generator_loss_minimax(g_logits).mean()
        self.optimizer_step("generator", g_loss)
        self.steps_done += 1
        return self.report(
            {"d_loss": d_loss, "g_loss": g_loss, "D(x)": torch.sigmoid(d_real), "D(G(z))": torch.sigmoid(d_fake)}
        )

    @torch.no_grad()
    def evaluate(self, data: ImageDataset, batch_size: int = 500) -> dict[str, float]:
        """The discriminator's mean belief on held-out real images and on as many samples."""
        real, fake = 0.0, 0.0
        for i in range(0, len(data), batch_size):
            x = data.images[i : i + batch_size]
            y = data.labels[i : i + batch_size] if self.config.conditional else None
            real += torch.sigmoid(self.discriminator(x, y)).float().sum().item()
            fake += torch.sigmoid(self.discriminator(self.sample(len(x), y), y)).float().sum().item()
        return {"test_D(x)": real / len(data), "test_D(G(z))": fake / len(data)}


@dataclass(frozen=True)
class CGANConfig(GANConfig):
    """Settings of :class:`CGAN`: DCGAN's, as :class:`GANConfig`, with the label given to both players."""

    conditional: bool = True

    def __post_init__(self) -> None:
        if not self.conditional:
            raise ValueError("CGAN is the conditional GAN (conditional=True); build a GAN for the unconditional one")
        super().__post_init__()


ZHENG_LAPTOP = CGANConfig(latent_dim=100, generator_widths=(128, 64, 32, 16), discriminator_widths=(32, 64, 128))
"""The cGAN baseline of Zheng & Sun (2019, Sec. 4.2) on the networks of their model's ``mnist`` preset:
its decoder as the generator (``z`` of 100 dimensions) and its discriminator's widths. The label
enters as in :class:`GAN` (a learned embedding beside ``z``, per-layer biases in ``D``)."""


@register
class CGAN(GAN):
    """``GAN`` with ``conditional=True``, named: Zheng & Sun's cGAN baseline, trained on their model's budgets."""

    name = "cgan"
    Config = CGANConfig
    PRESETS = {"mnist": ZHENG_LAPTOP, "fashion-mnist": ZHENG_LAPTOP}
    BUDGETS = COMPARISON_BUDGETS
