"""Shared network blocks: every model of the book is assembled from these.

The convolutional stacks follow DCGAN (Radford et al. 2016) as Mathieu et al. (2016) do:
5x5 kernels with stride 2, batch norm, ReLU in encoders and decoders, LeakyReLU(0.2) in
discriminators. Images of 28 or 32 pixels both go down to 4x4; decoders upsample to the next
power-of-two multiple and crop the centre back to the image size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

KERNEL = 5


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""Draw :math:`z = \mu + \sigma \odot \varepsilon`, :math:`\varepsilon\sim\mathcal N(0, I)`.

    The reparameterisation trick (Kingma & Welling 2014, Sec. 2.4): the noise is an input, so
    gradients flow to :math:`\mu` and :math:`\log\sigma^2`.
    """
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def _activation(name: str) -> nn.Module:
    return nn.LeakyReLU(0.2) if name == "leaky_relu" else nn.ReLU()


class ConvEncoder(nn.Module):
    """Strided convolutions from an image to a flat feature vector.

    Parameters
    ----------
    in_channels, image_size
        Shape of the input images (square).
    widths
        Channels of each 5x5 stride-2 convolution.
    activation
        ``"relu"`` (encoders) or ``"leaky_relu"`` (discriminators).
    batch_norm
        Batch norm after every convolution but the first, as in DCGAN.
    num_classes
        When positive, each of the first layers adds a learned per-class bias to its feature
        maps: one embedding table per layer (the conditional discriminator of Mathieu et al.).
    dropout
        Dropout probability after each block (discriminators).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        widths: tuple[int, ...] = (64, 128, 256),
        activation: str = "relu",
        batch_norm: bool = True,
        num_classes: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        channels = in_channels
        for i, width in enumerate(widths):
            self.convs.append(nn.Conv2d(channels, width, KERNEL, stride=2, padding=KERNEL // 2))
            self.norms.append(nn.BatchNorm2d(width) if batch_norm and i > 0 else nn.Identity())
            channels = width
        self.embeddings = nn.ModuleList(nn.Embedding(num_classes, w) for w in widths) if num_classes else None
        self.act = _activation(activation)
        self.drop = nn.Dropout(dropout)
        side = image_size
        for _ in widths:
            side = math.ceil(side / 2)
        self.out_features = channels * side * side

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Return features ``[N, out_features]``; ``labels`` are required when conditional."""
        if (self.embeddings is None) != (labels is None):
            raise ValueError("labels must be given exactly when the encoder was built with num_classes > 0")
        h = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = norm(conv(h))
            if self.embeddings is not None:
                h = h + self.embeddings[i](labels)[:, :, None, None]
            h = self.drop(self.act(h))
        return h.flatten(1)


class ConvDecoder(nn.Module):
    """A fully connected layer to a small feature map, then fractionally strided convolutions.

    Returns logits ``[N, out_channels, image_size, image_size]``; apply a sigmoid for images.
    """

    def __init__(
        self,
        in_features: int,
        out_channels: int,
        image_size: int,
        widths: tuple[int, ...] = (256, 128, 64),
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.start = math.ceil(image_size / 2 ** len(widths))
        self.widths = widths
        self.fc = nn.Sequential(
            nn.Linear(in_features, widths[0] * self.start**2), nn.BatchNorm1d(widths[0] * self.start**2), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [_upconv(w_in, w_out), nn.BatchNorm2d(w_out), nn.ReLU()]
        layers.append(_upconv(widths[-1], out_channels))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        x = self.deconvs(self.fc(h).view(-1, self.widths[0], self.start, self.start))
        margin = (x.shape[-1] - self.image_size) // 2
        return x[..., margin : margin + self.image_size, margin : margin + self.image_size]


def _upconv(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, KERNEL, stride=2, padding=KERNEL // 2, output_padding=1)


class GaussianHead(nn.Module):
    """A linear layer that outputs the mean and log-variance of a diagonal Gaussian."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.linear(h).chunk(2, dim=1)
        return mu, logvar


class MLP(nn.Sequential):
    """Linear layers with ReLU between them (toy data, probes, small heads)."""

    def __init__(self, sizes: tuple[int, ...], activation: str = "relu") -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(_activation(activation))
        super().__init__(*layers)


LABEL_INPUTS = ("none", "layers", "projection")


class ImageDiscriminator(nn.Module):
    r"""``D(x[, y])``: strided convolutions with LeakyReLU(0.2), then one logit per image.

    Parameters
    ----------
    in_channels, image_size, widths
        As for :class:`ConvEncoder`.
    num_classes
        Number of labels the discriminator can be told (0: unconditional).
    label_input
        How the label enters: ``"none"``; ``"layers"``, a learned per-class bias added to each
        layer's feature maps (the conditional adversary of Mathieu et al. 2016); or
        ``"projection"``, the inner product of a class embedding with the final features added
        to the logit, :math:`D(x, y) = \psi(\phi(x)) + e_y^\top \phi(x)` (Miyato & Koyama 2018,
        Eq. 3), the discriminator of Zheng & Sun (2019).
    batch_norm
        Batch norm after every convolution but the first (DCGAN).
    spectral_norm
        Spectral normalisation (Miyato et al. 2018) of every weight: convolutions, the logit
        layer and the projection embedding.
    dropout
        Dropout probability after each block.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        widths: tuple[int, ...] = (32, 64, 128),
        num_classes: int = 0,
        label_input: str = "none",
        batch_norm: bool = True,
        spectral_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if label_input not in LABEL_INPUTS:
            raise ValueError(f"label_input must be one of {LABEL_INPUTS}, got {label_input!r}")
        if (label_input == "none") != (num_classes == 0):
            raise ValueError(f"label_input {label_input!r} needs num_classes > 0 exactly when it is not 'none'")
        self.label_input = label_input
        layer_classes = num_classes if label_input == "layers" else 0
        self.features = ConvEncoder(
            in_channels, image_size, widths, "leaky_relu", batch_norm, num_classes=layer_classes, dropout=dropout
        )
        self.logit = nn.Linear(self.features.out_features, 1)
        self.projection = nn.Embedding(num_classes, self.features.out_features) if label_input == "projection" else None
        if spectral_norm:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    nn.utils.parametrizations.spectral_norm(module)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits ``[N]``; ``labels`` ``[N]`` are required exactly when the discriminator is conditional."""
        if (self.label_input == "none") != (labels is None):
            raise ValueError(f"this discriminator's label_input is {self.label_input!r}: pass labels exactly when it is not 'none'")
        h = self.features(x, labels if self.label_input == "layers" else None)
        logit = self.logit(h).squeeze(1)
        if self.projection is not None:
            logit = logit + (self.projection(labels) * h).sum(1)
        return logit


class CodeClassifier(nn.Sequential):
    """``C(y | c)``: a classifier that reads a code, for adversaries and probes on a code.

    Each dimension is standardised over the batch first (batch norm without a learned scale), as
    the Table 1 probe of Mathieu et al. (2016) does: reading raw values, an adversary can be
    fooled by a code that shrinks the label's directions until they look like noise, which a probe
    that standardises its input reads back at once. Zheng & Sun (2019) train such a classifier on
    ``z`` (their ``C_z``, Eq. 4); the Mathieu et al. chapter uses it as an extension.
    """

    def __init__(self, dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__(nn.BatchNorm1d(dim, affine=False), MLP((dim, hidden, num_classes)))
