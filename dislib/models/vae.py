"""The variational autoencoder (Kingma & Welling 2014) and its conditional form (Sohn et al. 2015).

The unconditional VAE has only an unspecified code ``z``; the conditional VAE adds the label as
a specified code (one-hot), which is the simplest split of a representation into "the label"
and "everything else", and the starting point of the three papers of this book.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models.base import Budget, Codes, Disentangler, ImageConfig, register
from dislib.nn import ConvDecoder, ConvEncoder, GaussianHead, reparameterize


@dataclass(frozen=True)
class VAEConfig(ImageConfig):
    """Settings of :class:`VAE`.

    ``likelihood`` is ``"bernoulli"`` (binary-ish images such as MNIST) or ``"gaussian"`` with a
    fixed ``observation_std``; ``beta`` weights the KL term (1 is the true ELBO).
    """

    latent_dim: int = 16
    conditional: bool = False
    likelihood: str = "bernoulli"
    observation_std: float = 0.1
    beta: float = 1.0
    widths: tuple[int, ...] = (32, 64, 128)
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")


@register
class VAE(Disentangler):
    """Convolutional VAE: ``q(z|x[,y])`` a diagonal Gaussian, ``p(x|z[,y])`` Bernoulli or Gaussian."""

    name = "vae"
    Config = VAEConfig
    BUDGETS = {
        "smoke": Budget(steps=40, batch_size=64, eval_every=20, train_size=2_048, eval_size=512),
        "full": Budget(steps=1_000, batch_size=128, eval_every=250),
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
        self.encoder = ConvEncoder(c.image_channels, c.image_size, c.widths)
        self.posterior = GaussianHead(self.encoder.out_features + self.specified_dim, c.latent_dim)
        self.decoder = ConvDecoder(c.latent_dim + self.specified_dim, c.image_channels, c.image_size, c.widths[::-1])
        self.optimizers["vae"] = torch.optim.Adam(self.parameters(), lr=c.lr)

    def _label_code(self, labels: Tensor | None) -> Tensor | None:
        if not self.config.conditional:
            return None
        if labels is None:
            raise ValueError("a conditional VAE needs the labels: encode(x, labels)")
        self.check_labels(labels)
        return F.one_hot(labels, self.config.num_classes).float()

    def encode(self, x: Tensor, labels: Tensor | None = None) -> Codes:
        """``q(z|x)`` (or ``q(z|x,y)``): the one-hot label as specified code, ``z``'s mean and log-variance."""
        self.check_images(x)
        specified = self._label_code(labels)
        h = self.encoder(x)
        mu, logvar = self.posterior(h if specified is None else torch.cat([h, specified], 1))
        return Codes(specified, mu, logvar)

    def decoder_logits(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        """Pre-activation output of ``p(x|z[,y])``: logits (Bernoulli) or the mean before the sigmoid."""
        self.check_codes(specified, unspecified)
        return self.decoder(unspecified if specified is None else torch.cat([unspecified, specified], 1))

    def decode(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        return torch.sigmoid(self.decoder_logits(specified, unspecified))

    def sample(self, n: int, labels: Tensor | None = None) -> Tensor:
        """Images decoded from ``z ~ N(0, I)`` (and the given labels, when conditional)."""
        z = torch.randn(n, self.config.latent_dim, device=self.device)
        return self.decode(self._label_code(labels), z)

    def negative_elbo(self, x: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        r"""The two terms of the negative ELBO, per image, in nats.

        .. math:: -\mathcal L(x) = \underbrace{-\mathbb E_{q(z|x)}\log p(x|z)}_{\text{reconstruction}}
                  + \beta\,\underbrace{\mathrm{KL}(q(z|x)\,\|\,p(z))}_{\text{kl}}
        """
        specified, mu, logvar = self.encode(x, labels)
        logits = self.decoder_logits(specified, reparameterize(mu, logvar))
        if self.config.likelihood == "bernoulli":
            reconstruction = losses.bernoulli_nll(logits, x)
        else:
            reconstruction = losses.gaussian_nll(torch.sigmoid(logits), x, self.config.observation_std)
        return {"reconstruction": reconstruction, "kl": losses.kl_normal_standard(mu, logvar)}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Maximise the ELBO by one Adam step (Kingma & Welling 2014, Algorithm 1)."""
        terms = self.negative_elbo(batch["x"], batch["y"] if self.config.conditional else None)
        loss = (terms["reconstruction"] + self.config.beta * terms["kl"]).mean()
        self.optimizer_step("vae", loss)
        return {"loss": loss.item(), **{k: v.mean().item() for k, v in terms.items()}}

    @torch.no_grad()
    def evaluate(self, data: ImageDataset, batch_size: int = 500) -> dict[str, float]:
        """Test negative ELBO and its terms, in nats per image (lower is better)."""
        sums = {"reconstruction": 0.0, "kl": 0.0}
        for i in range(0, len(data), batch_size):
            labels = data.labels[i : i + batch_size] if self.config.conditional else None
            for k, v in self.negative_elbo(data.images[i : i + batch_size], labels).items():
                sums[k] += v.float().sum().item()
        out = {f"test_{k}": v / len(data) for k, v in sums.items()}
        out["test_negative_elbo"] = out["test_reconstruction"] + out["test_kl"]
        return out
