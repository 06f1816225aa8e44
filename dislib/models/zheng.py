"""Zheng & Sun (2019), "Disentangling latent space for VAE by label relevant/irrelevant dimensions".

Two encoders read the same image. ``E_s`` gives a deterministic label-relevant code ``s`` that
must follow a class-conditional Gaussian mixture ``p(s | y) = N(mu_y, Sigma_y)`` whose means and
diagonal spreads are learned (the GM loss of Wan et al. 2018, Eqs. 7-9); ``E_z`` gives
``q(z | x) = N(mu, sigma^2)``, pulled to ``N(0, I)`` (Eq. 3) and pushed, through an adversarial
classifier ``C_z``, to carry nothing about the label (Eqs. 4-5). The decoder ``G(s, z)``
reconstructs the image, and a pixel discriminator ``D`` with a projection of the label judges
real images, reconstructions and samples ``G(s ~ N(mu_y, Sigma_y), z ~ N(0, I))`` (Eq. 10 and the generator's loss after it).

The training step follows Sec. 3.5 and App. B.4, in order: stage 1 fits ``E_s`` and the mixture
with the GM loss, stage 2 trains both encoders and the decoder, then ``D`` and ``C_z`` take their
steps. Where the paper's text lost a value, the authors' public TensorFlow code
(ZhilZheng/Lr-LiVAE) supplies it; :class:`ZhengConfig` says which is which.
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
from dislib.nn import (
    CodeClassifier, GaussianHead, ImageDiscriminator, decoder_for, encoder_trunk, reparameterize, trunk_features,
)

INITIAL_RAW_PRECISION = 0.54
"""The authors' initial value of the parameter behind each precision: ``softplus(0.54) = 1.0``."""

CODE_ADVERSARY_INPUTS = ("sample", "mean")

STRONG_ADVERSARY = dict(code_adversary_input="mean", code_adversary_steps=5, code_adversary_memory=4_096)
"""Ours, an extension: ``C_z`` reads the means of ``q(z|x)`` (what a probe reads), takes five updates
per step, each on a batch drawn from the codes of the last 4,096 images, so that it keeps up with
``E_z`` (the authors' code: a sample, one update, the step's own codes)."""

LEAST_LEAK = dict(**STRONG_ADVERSARY, unspecified_dim=16, code_adversary_weight=3.0)
"""Ours, an extension (the ``mnist-strong-adversary`` preset): the strong ``C_z``, a ``z`` of 16
dimensions and ``L_adv`` of weight 3, the point of the book's trade-off sweep on MNIST whose ``z``
leaks least while it still carries the style."""

TOY = dict(**TOY_NETWORKS, adversary_hidden=64, specified_dim=2, unspecified_dim=2, lr_drop_factor=1.0)
"""The toy of App. B.1 (``three-moons``): encoders, decoder and ``D`` are MLPs of 32, 64 and 64
hidden units, Adam at a fixed learning rate (paper); two dimensions for each code and a
reconstruction std of 0.1, the noise of the data (ours: the text gives neither)."""


@dataclass(frozen=True)
class ZhengConfig(ImageConfig):
    """Settings of :class:`Zheng`; the defaults are the authors' code's values for MNIST.

    The paper's text lost its loss weights and optimizer settings; every default below marked
    *code* comes from the authors' TensorFlow code (ZhilZheng/Lr-LiVAE), *paper* from the text
    that survived, *ours* is a choice of this book.

    Parameters
    ----------
    specified_dim, unspecified_dim
        Sizes of ``s`` and ``z`` (code: 32/100 for MNIST, 100/200 for CIFAR-10).
    widths, hidden_width
        Channels of the encoders' 5x5 stride-2 convolutions (mirrored by the decoder) and the
        width of the fully connected layer after them (paper, CIFAR-10 table: 32-64-128-256 and
        1024; four stride-2 layers take 28 or 32 pixels to 2x2, so the decoder's first layer,
        256 maps of 2x2, is the table's "fc, 1024" of the decoder).
    discriminator_widths, discriminator_hidden
        Channels of ``D``'s 5x5 stride-2 convolutions (ours: the table's 128-256-256 without its
        first stride-1 layer) and the units of its fully connected layer (code and paper: fc 512),
        which the label's projection reads. ``D`` reads pixels in ``[-1, 1]`` (``2x - 1``), as the
        code's does, whose generator ends in tanh.
    adversary_hidden
        Hidden units of ``C_z`` (paper, App. B.3: fc 256, then one unit per class).
    likelihood, pixel_scale
        ``-log p(x | s, z)`` (see :func:`dislib.losses.image_nll`). The code's reconstruction loss
        is the mean squared error on ``[-1, 1]`` pixels, a Gaussian of fixed std; we keep it for
        every preset. An error on ``[-1, 1]`` is twice the error on dislib's ``[0, 1]`` pixels, so
        the std ``sqrt(2) / 4`` (``1 / (2 std^2) = 4``) makes ``reconstruction_weight / P`` times
        the NLL the code's ``10 * MSE`` up to a constant, and keeps its balance with the other terms.
    margin, likelihood_weight
        ``alpha`` of Eq. 8 and ``lambda_lkd`` of Eq. 9 (code: 0 and 0.1).
    gm_steps
        Stage-1 updates of ``E_s`` and the mixture per training step (paper and code: 3).
    reconstruction_weight, kl_weight
        Weights of the reconstruction NLL *per pixel* and of ``KL(q(z|x) || N(0, I))`` *per
        dimension of z* in stage 2 (code: 10 and 1 on the pixel-mean squared error and the
        dimension-mean KL; the paper scales its lost weights by "the number of image pixels" and
        "the dimension of z", Sec. 4.2).
    specified_likelihood_weight
        Weight of ``L_lkd`` (Eq. 7) in ``E_s``'s stage-2 objective (code: ``10 * 0.1``).
    code_adversary_weight, generator_weight
        Weights of ``E_z``'s uniform-target loss (Eq. 5) and of the decoder's hinge loss on
        reconstructions and samples (Eq. 11) (code: 1 and 1).
    code_adversary_steps
        Updates of ``C_z`` per training step (code: 1; ours: more, so that ``C_z`` keeps up with
        ``E_z`` and its uniform target means the label is gone).
    code_adversary_input
        What ``C_z`` reads: ``"sample"``, a draw of ``q(z|x)`` (code), or ``"mean"``, its mean
        (ours, an option: what the probes of the book read).
    code_adversary_memory
        0: ``C_z`` trains on the step's own codes (code). Otherwise the codes (and labels) of the
        last ``code_adversary_memory`` images are kept, and each of ``C_z``'s updates reads a
        batch drawn from them (ours): like a probe fitted afresh, it sees thousands of codes, not
        the 96 of one step.
    max_precision
        The class precisions are clamped to ``[1 / max_precision, max_precision]`` (ours): the
        likelihood term rewards ever tighter Gaussians, App. B.4 reports the instability, and an
        unbounded precision overflows the distances.
    lr, betas
        Adam for every player (code: 5e-4, betas (0, 0.9)).
    precision_lr
        Adam's rate for the class precisions (code: 5e-4 at the start, the rate of every player).
    lr_drop_epochs, lr_drop_factor
        Stage 1's learning rate is multiplied by ``lr_drop_factor`` after ``lr_drop_epochs``
        epochs (paper, App. B.4: 0.01 after 2). The code keeps ``E_s`` and the means at ``lr``
        and divides the precisions' rate by 10 every 10 epochs instead; that is not done here.
    unlabelled_classes
        Classes whose labels the model never sees (Sec. 3.6): :meth:`Zheng.make_batch` puts their
        images under ``"x_unlabelled"``. With every class of the data listed, each step is the
        fine-tuning step on unlabelled images alone (Sec. 4.4).
    point_dim
        0 for images; the number of coordinates for points (the toy of App. B.1), which makes every
        network an MLP with ``widths`` (``discriminator_widths``) hidden units and the
        reconstruction a Gaussian of std ``pixel_scale`` around the decoder's output.
    """

    specified_dim: int = 32
    unspecified_dim: int = 100
    widths: tuple[int, ...] = (32, 64, 128, 256)
    hidden_width: int = 1024
    discriminator_widths: tuple[int, ...] = (128, 256, 256)
    discriminator_hidden: int = 512
    adversary_hidden: int = 256
    likelihood: str = "gaussian"
    pixel_scale: float = math.sqrt(2) / 4
    margin: float = 0.0
    likelihood_weight: float = 0.1
    gm_steps: int = 3
    reconstruction_weight: float = 10.0
    kl_weight: float = 1.0
    specified_likelihood_weight: float = 1.0
    code_adversary_weight: float = 1.0
    generator_weight: float = 1.0
    code_adversary_input: str = "sample"
    code_adversary_steps: int = 1
    code_adversary_memory: int = 0
    max_precision: float = 1e4
    lr: float = 5e-4
    betas: tuple[float, float] = (0.0, 0.9)
    precision_lr: float = 5e-4
    lr_drop_epochs: float = 2.0
    lr_drop_factor: float = 0.01
    unlabelled_classes: tuple[int, ...] = ()
    point_dim: int = 0

    def __post_init__(self) -> None:
        losses.check_likelihood(self.likelihood, self.pixel_scale)
        if self.specified_dim < 1 or self.unspecified_dim < 1:
            raise ValueError(f"code sizes must be positive, got s={self.specified_dim}, z={self.unspecified_dim}")
        if self.code_adversary_steps < 1:
            raise ValueError(f"code_adversary_steps must be >= 1, got {self.code_adversary_steps}")
        if self.code_adversary_memory < 0:
            raise ValueError(f"code_adversary_memory is a number of codes kept (0: none), got {self.code_adversary_memory}")
        if self.gm_steps < 1:
            raise ValueError(f"gm_steps must be >= 1, got {self.gm_steps}")
        if self.margin < 0:
            raise ValueError(f"the margin alpha of Eq. 8 must be >= 0, got {self.margin}")
        if not 1.0 < self.max_precision < math.inf:
            raise ValueError(f"max_precision must be a finite number > 1, got {self.max_precision}")
        if self.code_adversary_input not in CODE_ADVERSARY_INPUTS:
            raise ValueError(
                f"code_adversary_input must be one of {CODE_ADVERSARY_INPUTS}, got {self.code_adversary_input!r}"
            )
        if any(k < 0 for k in self.unlabelled_classes):
            raise ValueError(f"unlabelled_classes must be class indices >= 0, got {self.unlabelled_classes}")


def autoencoder_objective(terms: dict[str, Tensor], config: ZhengConfig, pixels: int) -> Tensor:
    r"""Stage 2's objective: the sum of each module's objective in the authors' code, a scalar.

    .. math::
        \frac{w_{rec}}{P}\big[-\log p(x \mid s, z)\big] + w_{lkd}\,\mathcal L_{lkd}
        + \frac{w_{KL}}{D_z}\,\mathrm{KL}\big(q(z\mid x)\,\|\,\mathcal N(0, I)\big)
        + w_{adv}\,\mathcal L_{adv} + w_G\,\mathcal L_G

    with ``P`` pixels and ``D_z`` dimensions of ``z``, each term averaged over the images it is
    defined for (``adversarial`` and the GAN terms need a label). Each term reaches only the
    modules the code trains with it: ``E_s`` gets ``w_rec L_rec + w_lkd L_lkd`` (Eq. 7), ``E_z``
    gets ``w_rec L_rec + w_KL KL + w_adv L_adv`` (Eqs. 3, 5) and ``G`` gets ``w_rec L_rec + w_G L_G``
    (Eq. 11), so one Adam over the three, which is elementwise, equals the code's three.
    """
    c = config
    total = (losses.per_unit_vae_terms(terms["reconstruction"], terms["kl"], c.reconstruction_weight, c.kl_weight,
                                       pixels, c.unspecified_dim)
             + c.specified_likelihood_weight * terms["likelihood"].mean())
    if "adversarial" in terms:
        gan = terms["reconstruction_gan"].mean() + terms["sample_gan"].mean()
        total = total + c.code_adversary_weight * terms["adversarial"].mean() + c.generator_weight * gan
    return total


@register
class Zheng(Disentangler):
    """``E_s(x) = s``, ``E_z(x) = q(z|x)``, ``G(s, z)``, the class mixture, ``C_z(y | z)`` and ``D(x, y)``.

    The class spreads are learned as *precisions* through a softplus, as in the authors' code:
    ``lambda = softplus(raw_precisions)``, ``Sigma_y = diag(1 / lambda_y)``, starting at 1, and
    clamped by ``max_precision``. ``C_z`` is :class:`dislib.nn.CodeClassifier` (the block the
    Mathieu et al. extension uses) and ``D`` an :class:`dislib.nn.ImageDiscriminator` with the
    label's projection and spectral norm on every weight (App. B.2), without batch norm.
    """

    name = "zheng"
    Config = ZhengConfig
    BUDGETS = COMPARISON_BUDGETS
    PRESETS = {"mnist": ZhengConfig(**COMPARISON_NETWORKS), "fashion-mnist": ZhengConfig(**COMPARISON_NETWORKS),
               "lpc-sprites": ZhengConfig(**COMPARISON_NETWORKS), "styled-mnist": ZhengConfig(**COMPARISON_NETWORKS),
               "mnist-paper": ZhengConfig(), "three-moons": ZhengConfig(**TOY),
               "mnist-strong-adversary": ZhengConfig(**COMPARISON_NETWORKS, **LEAST_LEAK)}

    def __init__(self, config: ZhengConfig) -> None:
        super().__init__(config)
        c = config
        self.specified_dim = c.specified_dim
        self.unspecified_dim = c.unspecified_dim

        def trunk() -> nn.Sequential:
            return encoder_trunk(c.image_channels, c.image_size, c.widths, c.hidden_width, c.point_dim)

        features = trunk_features(c.widths, c.hidden_width, c.point_dim)
        self.specified_encoder = nn.Sequential(trunk(), nn.Linear(features, c.specified_dim))
        self.unspecified_encoder = nn.Sequential(trunk(), GaussianHead(features, c.unspecified_dim))
        self.decoder = decoder_for(c.specified_dim + c.unspecified_dim, c.image_channels, c.image_size, c.widths, c.point_dim)
        self.class_means = nn.Parameter(nn.init.xavier_uniform_(torch.empty(c.num_classes, c.specified_dim)))
        self.raw_precisions = nn.Parameter(torch.full((c.num_classes, c.specified_dim), INITIAL_RAW_PRECISION))
        self.code_adversary = CodeClassifier(c.unspecified_dim, c.num_classes, c.adversary_hidden)
        self.discriminator = ImageDiscriminator(
            c.image_channels, c.image_size, c.discriminator_widths, c.num_classes,
            label_input="projection", batch_norm=False, spectral_norm=True, point_dim=c.point_dim,
            hidden_width=c.discriminator_hidden, centred=True,
        )
        self.register_buffer("memory_codes", torch.zeros(c.code_adversary_memory, c.unspecified_dim))
        self.register_buffer("memory_labels", torch.zeros(c.code_adversary_memory, dtype=torch.long))
        self.register_buffer("memory_written", torch.zeros((), dtype=torch.long))
        self.steps_per_epoch: int | None = None

        def adam(params: list[nn.Parameter]) -> torch.optim.Adam:
            return torch.optim.Adam(params, lr=c.lr, betas=c.betas)

        specified = list(self.specified_encoder.parameters())
        self.optimizers["gaussian_mixture"] = torch.optim.Adam(
            [{"params": [*specified, self.class_means], "lr": c.lr},
             {"params": [self.raw_precisions], "lr": c.precision_lr}], betas=c.betas)
        self.optimizers["autoencoder"] = adam(
            [*specified, *self.unspecified_encoder.parameters(), *self.decoder.parameters()]
        )
        self.optimizers["discriminator"] = adam(list(self.discriminator.parameters()))
        self.optimizers["code_adversary"] = adam(list(self.code_adversary.parameters()))

    # the class mixture ---------------------------------------------------------------------------
    def log_precisions(self) -> Tensor:
        """``log lambda`` ``[C, D_s]`` of each class Gaussian, the precision clamped to
        ``[1 / max_precision, max_precision]`` so that no spread reaches zero or infinity."""
        bound = self.config.max_precision
        return F.softplus(self.raw_precisions).clamp(1.0 / bound, bound).log()

    def check_mixture_labels(self, labels: Tensor) -> None:
        """Raise a clear error for labels that name no Gaussian of the mixture."""
        try:
            self.check_labels(labels)
        except ValueError as error:
            raise ValueError(f"{error}: the mixture has one Gaussian per class; build the model with "
                             "Zheng.for_dataset(data), or pass images of other classes as 'x_unlabelled'") from error

    def sample_specified(self, labels: Tensor) -> Tensor:
        """``s ~ N(mu_y, Sigma_y)``, one row per label: ``mu_y + eps / sqrt(lambda_y)``."""
        noise = torch.randn(len(labels), self.specified_dim, device=labels.device)
        return self.class_means[labels] + noise * (-0.5 * self.log_precisions()[labels]).exp()

    # the shared interface ------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        """``E_s(x)`` and the mean and log-variance of ``q(z|x)``."""
        self.check_images(x)
        mu, logvar = self.unspecified_encoder(x)
        return Codes(specified=self.specified_encoder(x), unspecified=mu, unspecified_logvar=logvar)

    def sample(self, labels: Tensor) -> Tensor:
        """Images of the given classes: ``G(s, z)`` with ``s ~ N(mu_y, Sigma_y)`` and ``z ~ N(0, I)``."""
        self.check_mixture_labels(labels)
        z = torch.randn(len(labels), self.unspecified_dim, device=labels.device)
        return self.decode(self.sample_specified(labels), z)

    generates_classes = True
    sample_classes = sample

    # training ------------------------------------------------------------------------------------
    def make_batch(self, data: LabelledData, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """``{"x", "y"}`` for labelled images and ``{"x_unlabelled"}`` for those of ``unlabelled_classes``
        (each key only when it has images). Also records the epoch length, ``len(data) // len(indices)``
        steps as in :func:`dislib.train.fit`, for stage 1's learning-rate drop."""
        hidden = self.config.unlabelled_classes
        beyond = sorted(set(range(self.config.num_classes, data.num_classes)) - set(hidden))
        if beyond:
            raise ValueError(
                f"the data's classes {beyond} have no Gaussian in the mixture of {self.config.num_classes}: build "
                "the model with Zheng.for_dataset(data), or list them in unlabelled_classes to use their images unlabelled"
            )
        self.steps_per_epoch = max(len(data) // len(indices), 1)
        images, labels = data.inputs[indices], data.labels[indices]
        self.check_images(images)
        if not hidden:
            return {"x": images, "y": labels}
        unlabelled = torch.isin(labels, torch.tensor(hidden, device=labels.device))
        parts = {"x": images[~unlabelled], "y": labels[~unlabelled], "x_unlabelled": images[unlabelled]}
        return {k: v for k, v in parts.items() if len(v)}

    def check_batch(self, batch: dict[str, Tensor]) -> None:
        """Raise a clear error for a batch without labelled images and labels, or with bad labels."""
        if "x" in batch and "y" not in batch:
            raise ValueError("this batch has images 'x' without labels 'y', which the supervised step needs: put "
                             "unlabelled images under 'x_unlabelled' (Sec. 3.6), or build batches with "
                             "model.make_batch(data, indices, generator)")
        if "x" not in batch and "x_unlabelled" not in batch:
            raise ValueError(f"a Zheng batch needs 'x' and 'y', or 'x_unlabelled'; got {sorted(batch)}: build it "
                             "with model.make_batch(data, indices, generator)")
        if "y" in batch:
            self.check_mixture_labels(batch["y"])
        for key in ("x", "x_unlabelled"):
            if key in batch:
                self.check_images(batch[key])

    def update_mixture_lr(self) -> None:
        """Stage 1's learning rates (``lr``, ``precision_lr``), times ``lr_drop_factor`` once
        ``lr_drop_epochs`` epochs are done."""
        if self.steps_per_epoch is None:
            raise ValueError("the model does not know how many steps make an epoch (for stage 1's learning-rate "
                             "drop): build batches with model.make_batch(data, indices, generator)")
        c = self.config
        dropped = int(self.steps_done) >= c.lr_drop_epochs * self.steps_per_epoch
        factor = c.lr_drop_factor if dropped else 1.0
        for group, lr in zip(self.optimizers["gaussian_mixture"].param_groups, (c.lr, c.precision_lr)):
            group["lr"] = lr * factor

    def gm_objective(self, batch: dict[str, Tensor]) -> Tensor:
        """Stage 1's objective: the GM loss of Eq. 9 on ``s = E_s(x)``, averaged over the labelled images.

        Unlabelled images of the batch go through ``E_s`` too, so that its batch norm sees the
        same batch as in stage 2 (and never a batch of one labelled image), but add no loss.
        """
        c = self.config
        images = torch.cat([batch[k] for k in ("x", "x_unlabelled") if k in batch])
        s = self.specified_encoder(images)[: len(batch["y"])]
        return losses.gm_loss(s, batch["y"], self.class_means, self.log_precisions(), c.margin, c.likelihood_weight).mean()

    def autoencoder_terms(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Stage 2's per-image terms, and what the steps of ``D`` and ``C_z`` read (detached).

        Labelled images ``x`` come first, then ``x_unlabelled``: every image has a reconstruction,
        a KL and a likelihood term (against its class's Gaussian, or the mixture's moments for
        unlabelled images, Eq. 11); the adversarial and GAN terms need a label. The mixture is
        read detached: stage 1 alone trains it.
        """
        x, y = batch.get("x"), batch.get("y")
        images = torch.cat([batch[k] for k in ("x", "x_unlabelled") if k in batch])
        n = 0 if x is None else len(x)
        s = self.specified_encoder(images)
        mu, logvar = self.unspecified_encoder(images)
        z = reparameterize(mu, logvar)
        output = self.decoder(torch.cat([s, z], 1))
        means, log_precisions = self.class_means.detach(), self.log_precisions().detach()
        likelihood = [losses.gm_likelihood_loss(s[:n], y, means, log_precisions)] if n else []
        if n < len(images):
            likelihood.append(losses.unlabelled_likelihood_loss(s[n:], means, log_precisions))
        terms = {
            "reconstruction": self.reconstruction_nll(output, images),
            "kl": losses.kl_normal_standard(mu, logvar),
            "likelihood": torch.cat(likelihood),
        }
        if not n:
            return terms, {}
        # the same reconstructions, decoded again from detached codes: L_G trains the decoder alone
        reconstructed = self.decode(s.detach(), z.detach())[:n]
        prior = torch.randn(n, self.unspecified_dim, device=x.device)
        sampled = self.decode(self.sample_specified(y).detach(), prior)
        fakes = self.discriminator(torch.cat([reconstructed, sampled]), torch.cat([y, y]))
        adversary_input = (z if self.config.code_adversary_input == "sample" else mu)[:n]
        terms |= {
            "adversarial": losses.uniform_target_cross_entropy(self.code_adversary(adversary_input)),
            "reconstruction_gan": losses.hinge_generator_loss(fakes[:n]),
            "sample_gan": losses.hinge_generator_loss(fakes[n:]),
        }
        return terms, {"reconstructed": reconstructed, "sampled": sampled, "adversary_input": adversary_input}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sec. 3.5 and App. B.4: stage 1 (``E_s`` and the mixture), stage 2 (encoders and decoder),
        then ``D`` and ``C_z``. A batch of unlabelled images alone takes :meth:`unlabelled_step`.

        ``D`` and ``C_z`` read stage 2's images and codes, detached: the code computes every
        player's gradient at the same weights, and so do we.
        """
        self.check_batch(batch)
        if "x" not in batch:
            return self.unlabelled_step(batch)
        x, y = batch["x"], batch["y"]

        # stage 1: E_s and the class Gaussians, gm_steps updates with L_GM (Eq. 9)
        self.update_mixture_lr()
        for _ in range(self.config.gm_steps):
            with self.autocast():
                gm = self.gm_objective(batch)
            self.optimizer_step("gaussian_mixture", gm)

        # stage 2: both encoders and the decoder, each on its own objective (Eqs. 3, 5, 7, 11)
        self.discriminator.requires_grad_(False)
        self.code_adversary.requires_grad_(False)
        with self.autocast():
            terms, made = self.autoencoder_terms(batch)
            objective = autoencoder_objective(terms, self.config, x[0].numel())
        self.optimizer_step("autoencoder", objective)
        self.discriminator.requires_grad_(True)
        self.code_adversary.requires_grad_(True)

        # the pixel discriminator: hinge loss on real images, reconstructions and samples (Eq. 10)
        n = len(x)
        with self.autocast():
            images = torch.cat([x, made["reconstructed"].detach(), made["sampled"].detach()])
            logits = self.discriminator(images, y.repeat(3))
            discriminator_loss = losses.hinge_discriminator_loss(*logits.split(n)).mean()
        self.optimizer_step("discriminator", discriminator_loss)

        # the adversarial classifier C_z: cross-entropy of the label read from z (Eq. 4)
        self.remember_codes(made["adversary_input"].detach(), y)
        for _ in range(self.config.code_adversary_steps):
            codes, labels = self.code_adversary_batch(made["adversary_input"].detach(), y)
            with self.autocast():
                code_adversary_loss = F.cross_entropy(self.code_adversary(codes), labels)
            self.optimizer_step("code_adversary", code_adversary_loss)

        self.steps_done += 1
        return self.report({"gm": gm, **terms, "discriminator": discriminator_loss, "code_adversary": code_adversary_loss})

    def remember_codes(self, codes: Tensor, labels: Tensor) -> None:
        """Write a step's codes and labels over the oldest ones of the memory (``code_adversary_memory``)."""
        size = self.config.code_adversary_memory
        if not size:
            return
        slots = (self.memory_written + torch.arange(len(codes), device=codes.device)) % size
        self.memory_codes[slots] = codes.float()
        self.memory_labels[slots] = labels
        self.memory_written += len(codes)

    def code_adversary_batch(self, codes: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """What one update of ``C_z`` reads: the step's own codes, or as many drawn from the memory."""
        if not self.config.code_adversary_memory:
            return codes, labels
        rows = torch.randint(min(int(self.memory_written), self.config.code_adversary_memory), (len(codes),), device=codes.device)
        return self.memory_codes[rows], self.memory_labels[rows]

    def unlabelled_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sec. 3.6 on images without labels, ``batch["x_unlabelled"]``: stage 2 only, with ``L_lkd``
        against the mixture's one-Gaussian summary (Eq. 11) and no term that needs a label.

        The paper drops three terms here whose symbols the text lost; we drop every term that
        needs a label: ``L_cls`` (stage 1), ``C_z`` and its ``L_adv`` (Eqs. 4-5), and the pixel GAN,
        whose discriminator is told the label. The mixture stays as stage 1 left it.
        """
        if set(batch) != {"x_unlabelled"}:
            raise ValueError(f"unlabelled_step takes unlabelled images alone, {{'x_unlabelled': images}}, got {sorted(batch)}: "
                             "give batches with labelled images to train_step")
        self.check_images(batch["x_unlabelled"])
        with self.autocast():
            terms, _ = self.autoencoder_terms({"x_unlabelled": batch["x_unlabelled"]})
            objective = autoencoder_objective(terms, self.config, batch["x_unlabelled"][0].numel())
        self.optimizer_step("autoencoder", objective)
        self.steps_done += 1
        return self.report(terms)

    @torch.no_grad()
    def evaluate(self, data: LabelledData, batch_size: int = 500) -> dict[str, float]:
        """Held-out numbers of the model itself: ``-log p(x | s, z)`` at one sample of ``q(z|x)`` and
        ``KL(q(z|x) || N(0, I))``, in nats per image, and the accuracy of the mixture's own classifier,
        ``argmax_k logits_k(E_s(x))`` (Eq. 8 without margin), and the accuracy of ``C_z`` on what it
        reads (a mean or a sample of ``q(z|x)``): beside a probe fitted afresh on the same codes, it
        says how far the adversary lags. Probes are the caller's."""
        sums = {"reconstruction": 0.0, "kl": 0.0, "mixture_accuracy": 0.0, "code_adversary_accuracy": 0.0}
        log_precisions = self.log_precisions()
        for i in range(0, len(data), batch_size):
            x, y = data.inputs[i : i + batch_size], data.labels[i : i + batch_size]
            codes = self.encode(x)
            z = reparameterize(codes.unspecified, codes.unspecified_logvar)
            output = self.decoder_output(codes.specified, z)
            logits = losses.gm_logits(codes.specified, self.class_means, log_precisions)
            sums["reconstruction"] += self.reconstruction_nll(output, x).sum().item()
            sums["kl"] += losses.kl_normal_standard(codes.unspecified, codes.unspecified_logvar).sum().item()
            sums["mixture_accuracy"] += (logits.argmax(1) == y).float().sum().item()
            read = z if self.config.code_adversary_input == "sample" else codes.unspecified
            sums["code_adversary_accuracy"] += (self.code_adversary(read).argmax(1) == y).float().sum().item()
        return {f"test_{k}": v / len(data) for k, v in sums.items()}
