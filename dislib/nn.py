"""Shared network blocks: every model of the book is assembled from these.

The convolutional stacks follow DCGAN (Radford et al. 2016) as Mathieu et al. (2016) do:
5x5 kernels with stride 2, batch norm, ReLU in encoders and decoders, LeakyReLU(0.2) in
discriminators. Images of 28 or 32 pixels both go down to 4x4; decoders upsample to the next
power-of-two multiple and crop the centre back to the image size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


def fc_trunk(in_features: int, hidden: int) -> nn.Sequential:
    """"fc, ``hidden``, batchnorm, relu" after a flat feature vector."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU())


def encoder_trunk(in_channels: int, image_size: int, widths: tuple[int, ...], hidden: int, point_dim: int = 0) -> nn.Sequential:
    """The body of an encoder, ``hidden`` features out.

    Images: :class:`ConvEncoder`, then "fc, ``hidden``, batchnorm, relu" (the encoders of Zheng &
    Sun 2019, CIFAR-10 table). Points (``point_dim > 0``, the 2-D toys): an MLP with ReLU whose
    hidden layers have ``widths`` units (App. B.1: 32, 64, 64); ``hidden`` is then ``widths[-1]``.
    """
    if point_dim:
        return nn.Sequential(MLP((point_dim, *widths)), nn.ReLU())
    convs = ConvEncoder(in_channels, image_size, widths)
    return nn.Sequential(convs, fc_trunk(convs.out_features, hidden))


def trunk_features(widths: tuple[int, ...], hidden: int, point_dim: int = 0) -> int:
    """Number of features :func:`encoder_trunk` returns."""
    return widths[-1] if point_dim else hidden


def decoder_for(in_features: int, out_channels: int, image_size: int, widths: tuple[int, ...], point_dim: int = 0) -> nn.Module:
    """A decoder from a code to pre-activations: :class:`ConvDecoder` with ``widths`` reversed for
    images, an MLP through ``widths`` reversed to ``point_dim`` coordinates for points."""
    if point_dim:
        return MLP((in_features, *widths[::-1], point_dim))
    return ConvDecoder(in_features, out_channels, image_size, widths[::-1])


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
    point_dim
        When positive, ``D`` judges points of that many coordinates instead of images (the 2-D
        toys): an MLP with LeakyReLU(0.2) whose hidden layers have ``widths`` units.
    hidden_width
        Units of a fully connected LeakyReLU layer between the last convolution and the logit
        (0: none). The projection then reads that layer, as in Zheng & Sun's ``fc 512``.
    centred
        Map ``[0, 1]`` pixels to ``[-1, 1]`` (``2x - 1``) before the first layer: the range that
        discriminators written for tanh generators read.
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
        point_dim: int = 0,
        hidden_width: int = 0,
        centred: bool = False,
    ) -> None:
        super().__init__()
        if label_input not in LABEL_INPUTS:
            raise ValueError(f"label_input must be one of {LABEL_INPUTS}, got {label_input!r}")
        if (label_input == "none") != (num_classes == 0):
            raise ValueError(f"label_input {label_input!r} needs num_classes > 0 exactly when it is not 'none'")
        if point_dim and label_input == "layers":
            raise ValueError("a discriminator of points takes the label by 'projection' (or 'none'), not 'layers'")
        if hidden_width < 0:
            raise ValueError(f"hidden_width is a number of units (0: no hidden layer), got {hidden_width}")
        self.label_input = label_input
        self.point_dim = point_dim
        self.centred = centred and not point_dim
        if point_dim:
            self.features = nn.Sequential(MLP((point_dim, *widths), "leaky_relu"), _activation("leaky_relu"))
            out_features = widths[-1]
        else:
            layer_classes = num_classes if label_input == "layers" else 0
            self.features = ConvEncoder(
                in_channels, image_size, widths, "leaky_relu", batch_norm, num_classes=layer_classes, dropout=dropout
            )
            out_features = self.features.out_features
        self.hidden = None
        if hidden_width:
            self.hidden = nn.Sequential(nn.Linear(out_features, hidden_width), _activation("leaky_relu"))
            out_features = hidden_width
        self.logit = nn.Linear(out_features, 1)
        self.projection = None
        if label_input == "projection":
            self.projection = nn.Embedding(num_classes, out_features)
            nn.init.xavier_uniform_(self.projection.weight)  # a linear layer's scale, as the one-hot projection of Miyato & Koyama
        if spectral_norm:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    nn.utils.parametrizations.spectral_norm(module)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits ``[N]``; ``labels`` ``[N]`` are required exactly when the discriminator is conditional."""
        if (self.label_input == "none") != (labels is None):
            raise ValueError(f"this discriminator's label_input is {self.label_input!r}: pass labels exactly when it is not 'none'")
        if self.centred:
            x = 2 * x - 1
        h = self.features(x) if self.point_dim else self.features(x, labels if self.label_input == "layers" else None)
        if self.hidden is not None:
            h = self.hidden(h)
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


class CodeRegressor(CodeClassifier):
    """``R(c)``: :class:`CodeClassifier`'s network read as a regression, ``outputs`` numbers per code
    (an adversary that predicts one code from another)."""

    def __init__(self, dim: int, outputs: int, hidden: int = 256) -> None:
        super().__init__(dim, outputs, hidden)


# The networks of Ruiz et al. (2019, App. D): 3x3 convolutions, pixel norm, LeakyReLU(0.2), average
# pooling down and nearest-neighbour upsampling (the Progressive GAN's blocks, Karras et al. 2018).
LEAK = 0.2


class PixelNorm(nn.Module):
    r"""Pixel-wise feature normalisation (Karras et al. 2018, Sec. 4.2), the "CN" of Ruiz et al.'s Fig. 6.

    .. math:: b_{x,y} = a_{x,y} \Big/ \sqrt{\tfrac1C \textstyle\sum_{j=1}^{C} (a^j_{x,y})^2 + \epsilon},
        \qquad \epsilon = 10^{-8}

    Each pixel's feature vector is scaled to unit mean square over the channels; nothing is learned.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)


def conv_block(in_channels: int, out_channels: int, normalise: bool) -> list[nn.Module]:
    """``3x3 conv - CN - LeakyReLU(0.2)`` (CN: :class:`PixelNorm`; discriminators go without)."""
    norm = [PixelNorm()] if normalise else []
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), *norm, nn.LeakyReLU(LEAK)]


class PoolingEncoder(nn.Module):
    """App. D's encoder trunk: 3x3 convolutions, pixel norm, LeakyReLU(0.2), 2x2 average pooling.

    ``conv(in -> w_0)``, then for each stage ``k``: pool, ``conv(w_k -> w_k)`` and, but for the
    last stage, ``conv(w_k -> w_{k+1})`` (Fig. 6 with ``widths=(32, 64, 128, 256)``). Returns the
    flattened features, ``out_features = w_last * (size / 2^stages)^2`` (sides rounded down).
    """

    def __init__(self, in_channels: int, image_size: int, widths: tuple[int, ...], normalise: bool = True) -> None:
        super().__init__()
        layers = conv_block(in_channels, widths[0], normalise)
        side = image_size
        for k, width in enumerate(widths):
            layers += [nn.AvgPool2d(2), *conv_block(width, width, normalise)]
            if k + 1 < len(widths):
                layers += conv_block(width, widths[k + 1], normalise)
            side //= 2
        self.layers = nn.Sequential(*layers)
        self.out_features = widths[-1] * side * side

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x).flatten(1)


class UpsamplingGenerator(nn.Module):
    """App. D's generator ``G``: the codes to a ``widths[0]``-channel map of ``size / 2^stages``
    pixels ("convt - CN - LeakyReLU" on a 1x1 input, which is a fully connected layer), then for
    each stage a 2x nearest-neighbour upsampling and 3x3 convolutions ``w -> w -> next w`` with
    pixel norm and LeakyReLU(0.2); the last stage is one 3x3 convolution to the image channels.

    Returns pre-activations ``[N, C, S, S]`` (the sigmoid of :meth:`Disentangler.decode` makes the
    image); sizes that are not a multiple of ``2^stages`` are cropped from the centre.
    """

    def __init__(self, in_features: int, out_channels: int, image_size: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.image_size = image_size
        self.widths = widths
        self.start = math.ceil(image_size / 2 ** len(widths))
        self.fc = nn.Linear(in_features, widths[0] * self.start**2)
        self.first = nn.Sequential(PixelNorm(), nn.LeakyReLU(LEAK))
        layers: list[nn.Module] = []
        for k, width in enumerate(widths):
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            if k + 1 < len(widths):
                layers += [*conv_block(width, width, True), *conv_block(width, widths[k + 1], True)]
            else:
                layers.append(nn.Conv2d(width, out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        h = self.first(self.fc(codes).view(-1, self.widths[0], self.start, self.start))
        x = self.layers(h)
        margin = (x.shape[-1] - self.image_size) // 2
        return x[..., margin : margin + self.image_size, margin : margin + self.image_size]


class InputDrop(nn.Module):
    """In training, set each input group of each example to zero with probability ``p`` (App. D).

    The groups are the inputs of the discriminators' layer after the concatenation: the image's
    features and each code's features. Ruiz et al. found that the discriminator "can start to
    ignore the inputs corresponding to latent variables" and zero "the inputs corresponding to
    latent variables and images" with probability 0.25; we read that as whole groups, drawn
    independently per example and per group, so that ``d`` must sometimes judge from the codes
    alone (the paper does not say; element-wise dropout is the other reading). Kept groups are
    scaled by ``1 / (1 - p)``, as :class:`torch.nn.Dropout` does; in eval mode nothing changes.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, groups: list[Tensor]) -> list[Tensor]:
        if not self.training or self.p == 0.0:
            return groups
        keep = [(torch.rand(len(g), 1, device=g.device) >= self.p).to(g.dtype) / (1.0 - self.p) for g in groups]
        return [g * k for g, k in zip(groups, keep)]


class LatentDiscriminator(nn.Module):
    """``d(x, z, e)`` or ``d'(x, z)`` (App. D, Fig. 6): one logit, the estimate of a log density ratio.

    The image goes through the encoder's trunk without normalisation and "FC - LeakyReLU" to
    ``image_features``; each code through "FC - LeakyReLU" to ``code_features``; the
    concatenation, after :class:`InputDrop`, through "FC - LeakyReLU" to ``hidden`` and a linear
    logit. ``code_dims`` lists the codes in the order :meth:`forward` takes them.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        widths: tuple[int, ...],
        code_dims: tuple[int, ...],
        image_features: int = 64,
        code_features: int = 32,
        hidden: int = 128,
        input_drop: float = 0.25,
    ) -> None:
        super().__init__()
        trunk = PoolingEncoder(in_channels, image_size, widths, normalise=False)
        self.image = nn.Sequential(trunk, nn.Linear(trunk.out_features, image_features), nn.LeakyReLU(LEAK))
        self.codes = nn.ModuleList(nn.Sequential(nn.Linear(d, code_features), nn.LeakyReLU(LEAK)) for d in code_dims)
        self.drop = InputDrop(input_drop)
        concatenated = image_features + code_features * len(code_dims)
        self.hidden = nn.Sequential(nn.Linear(concatenated, hidden), nn.LeakyReLU(LEAK))
        self.logit = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, *codes: Tensor) -> Tensor:
        """Logits ``[N]`` for images ``x`` and one tensor per code of ``code_dims``."""
        if len(codes) != len(self.codes):
            raise ValueError(f"this discriminator reads {len(self.codes)} code(s) beside the image, got {len(codes)}")
        groups = [self.image(x), *(branch(code) for branch, code in zip(self.codes, codes))]
        return self.logit(self.hidden(torch.cat(self.drop(groups), 1))).squeeze(1)


class Zoom(nn.Module):
    """A zoom about the image centre whose factor a code sets: ``exp(w . code + b)``, sampled with
    :func:`torch.nn.functional.grid_sample` (bilinear; outside the image, its border pixels are
    repeated). A factor above 1 draws the image smaller, below 1 larger. ``w`` and ``b`` start at
    zero, so the module starts as the identity."""

    def __init__(self, code_dim: int) -> None:
        super().__init__()
        self.log_factor = nn.Linear(code_dim, 1)
        nn.init.zeros_(self.log_factor.weight)
        nn.init.zeros_(self.log_factor.bias)

    def factor(self, code: Tensor) -> Tensor:
        """``[N]``: the zoom factor ``exp(w . code + b)`` of each row of ``code``."""
        return self.log_factor(code.float()).squeeze(1).exp()

    def forward(self, images: Tensor, code: Tensor) -> Tensor:
        factor = self.factor(code)
        theta = torch.zeros(len(images), 2, 3, device=images.device)
        theta[:, 0, 0], theta[:, 1, 1] = factor, factor
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        zoomed = F.grid_sample(images.float(), grid, padding_mode="border", align_corners=False)
        return zoomed.to(images.dtype)


def laplace_sample(mean: Tensor, scale: float) -> Tensor:
    r"""``x ~ Laplace(mean, scale)`` by the reparameterisation trick: with ``u ~ U(-1/2, 1/2)``,
    :math:`x = \mu - b\,\mathrm{sign}(u)\log(1 - 2|u|)` (the inverse of the Laplace CDF), so that
    gradients reach the mean (App. B, Alg. 1, lines 12-14)."""
    u = torch.rand_like(mean) - 0.5
    return mean - scale * u.sign() * (1.0 - 2.0 * u.abs()).clamp_min(torch.finfo(mean.dtype).tiny).log()


# the objectives ----------------------------------------------------------------------------
