"""Mathieu et al. (2016), "Disentangling factors of variation in deep representations using
adversarial training".

An encoder splits an image into a deterministic *specified* code ``s`` (what the label is about)
and a Gaussian posterior over an *unspecified* code ``z`` (everything else). The decoder is a
conditional VAE decoder ``p(x | z, s)``. Two things push the label's information into ``s``:

* ``x1`` is reconstructed both from its own ``s1`` and from ``s1'`` of another image of the same
  class (the bound of Eq. 4, twice), so ``s`` can only hold what a class shares;
* ``Dec(z1, s2)`` must pass a class-conditional discriminator as an image of class ``id2``
  (the adversarial term of Eq. 5), so ``z1`` must not carry ``x1``'s class.

The training step follows Algorithm 1 of the supplement, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dislib import losses
from dislib.data import samplers
from dislib.data.base import ImageDataset
from dislib.models.base import Budget, Codes, Disentangler, ImageConfig, register
from dislib.nn import MLP, CodeClassifier, ConvDecoder, ConvEncoder, GaussianHead, ImageDiscriminator, reparameterize


@dataclass(frozen=True)
class MathieuConfig(ImageConfig):
    """Settings of :class:`Mathieu`.

    Parameters
    ----------
    specified_dim, unspecified_dim
        Sizes of ``s`` and ``z`` (paper: 16/16 for MNIST, 64/512 for Sprites).
    widths, discriminator_widths
        Channels of the three 5x5 stride-2 convolutions of the encoder (mirrored by the decoder)
        and of the discriminator.
    reconstruction_weight, swap_reconstruction_weight
        Weights of ``-log p(x1 | z1, s1)`` and ``-log p(x1 | z1, s1')`` (both in nats per image).
    kl_weight
        Weight of ``KL(q(z|x1) || N(0, I))``; 1 is the bound of Eq. 4.
    adversarial_weight
        ``lambda`` of Eq. 5, the weight of the generator's adversarial loss on ``Dec(z1, s2)``.
    prior_adversarial
        Also judge ``Dec(z ~ N(0, I), s2)`` as class ``id2`` (Algorithm 1 has it; the authors'
        code leaves it off by default, and so do we).
    generator_steps
        Stabilising option (from a PyTorch reimplementation, not the paper): generator steps per
        adversary step; the paper's Algorithm 1 is 1.
    adversary_accuracy_cap
        Stabilising option (same source): skip the adversary's update while its accuracy on the
        current batch is above this value; ``None`` (the paper) always updates.
    mismatched_negatives
        Option not in the paper: also show the adversary real images with a wrong label,
        ``(x1, id2)`` where ``id1 != id2``, as negatives (the matching-aware discriminator of
        Reed et al. 2016), so that it must check the class and not only realism.
    label_adversary_weight
        **Extension, not in the paper** (0 = the paper): weight of an adversarial classifier that
        reads the batch-standardised mean of ``q(z|x)`` (:class:`dislib.nn.CodeClassifier`) and is trained
        to predict the label, while the encoder is pushed towards its uniform prediction (Zheng &
        Sun 2019, Eq. 5). It attacks the leak the image-space adversary cannot see: label
        information in ``z`` that the decoder ignores.
    label_adversary_steps
        Extension: updates of that classifier per training step, on the codes of all three images
        of each triplet (1 plays it as an ordinary GAN player; more keep it close to the best
        classifier of the current codes, which is what a probe trained afterwards finds).
    class_mmd_weight
        **Extension, not in the paper** (0 = the paper): weight of :func:`dislib.losses.class_mmd`
        on the posterior means of ``x1, x1', x2``, a penalty (no second player) on how much the
        distribution of ``z`` depends on the label (the Variational Fair Autoencoder's MMD).
    specified_pretraining_steps
        The ablation of the supplement (Sec. "Using a pre-trained embedding"; 0 = the paper's joint
        training): for this many first steps, the specified encoder and a two-layer classifier on
        ``s`` are trained as a plain classifier; then they are frozen and a second encoder, of its
        own, produces ``z`` while Algorithm 1 trains the rest.
    lr, beta1, adversary_lr
        Adam for the encoder/decoder and for the adversary.
    """

    specified_dim: int = 16
    unspecified_dim: int = 16
    widths: tuple[int, ...] = (16, 32, 64)
    discriminator_widths: tuple[int, ...] = (32, 64, 128)
    reconstruction_weight: float = 1.0
    swap_reconstruction_weight: float = 1.0
    kl_weight: float = 1.0
    adversarial_weight: float = 10.0
    prior_adversarial: bool = False
    generator_steps: int = 1
    adversary_accuracy_cap: float | None = None
    mismatched_negatives: bool = False
    label_adversary_weight: float = 0.0
    label_adversary_steps: int = 1
    class_mmd_weight: float = 0.0
    specified_pretraining_steps: int = 0
    lr: float = 1e-3
    beta1: float = 0.5
    adversary_lr: float = 2e-4

    def __post_init__(self) -> None:
        if self.specified_dim < 1 or self.unspecified_dim < 1:
            raise ValueError(f"code sizes must be positive, got s={self.specified_dim}, z={self.unspecified_dim}")
        if self.adversarial_weight < 0 or self.kl_weight < 0:
            raise ValueError("adversarial_weight (lambda) and kl_weight must be non-negative")
        for name in ("generator_steps", "label_adversary_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.specified_pretraining_steps < 0:
            raise ValueError(f"specified_pretraining_steps must be >= 0, got {self.specified_pretraining_steps}")


def conditional_bound(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> dict[str, Tensor]:
    r"""The two terms of the conditional model's variational upper bound, per image, in nats (Eq. 4).

    .. math::
        \underbrace{\mathbb E_{q(z|x)}\big[-\log p_\theta(x \mid z, s)\big]}_{\text{reconstruction}}
        + \underbrace{\mathrm{KL}\big(q(z \mid x)\,\|\,\mathcal N(0, I)\big)}_{\text{kl}}

    ``logits`` are the decoder's Bernoulli logits for ``Dec(z, s)`` at one sample ``z ~ q(z|x)``.
    """
    return {"reconstruction": losses.bernoulli_nll(logits, x), "kl": losses.kl_normal_standard(mu, logvar)}


def generator_objective(terms: dict[str, Tensor], config: MathieuConfig) -> Tensor:
    r"""The encoder/decoder objective of Eq. 5 with the swap of Algorithm 1, per image.

    .. math::
        w_r\,\big[-\log p(x_1 \mid z_1, s_1)\big] + w_{r'}\,\big[-\log p(x_1 \mid z_1, s'_1)\big]
        + \beta\,\mathrm{KL}\big(q(z\mid x_1)\,\|\,\mathcal N(0,I)\big)
        + \lambda\,\big[-\log \mathrm{Adv}(\mathrm{Dec}(z_1, s_2), id_2)\big]

    The last term is :math:`\lambda L_{gan}` with the non-saturating generator loss
    (:func:`dislib.losses.generator_loss_nonsaturating`); with ``prior_adversarial`` the same term
    for ``Dec(z ~ N(0, I), s2)`` is added with the same weight. The extensions' terms, when
    present, are added with their own weights.
    """
    c = config
    total = (
        c.reconstruction_weight * terms["reconstruction"]
        + c.swap_reconstruction_weight * terms["swap_reconstruction"]
        + c.kl_weight * terms["kl"]
        + c.adversarial_weight * terms["adversarial"]
    )
    if "prior_adversarial" in terms:
        total = total + c.adversarial_weight * terms["prior_adversarial"]
    if "label_adversarial" in terms:
        total = total + c.label_adversary_weight * terms["label_adversarial"]
    if "class_mmd" in terms:
        total = total + c.class_mmd_weight * terms["class_mmd"]
    return total


def triplet_labels(batch: dict[str, Tensor]) -> Tensor:
    """The labels of ``x1, x1', x2`` stacked in that order, as their codes are."""
    return torch.cat([batch["id1"], batch["id1"], batch["id2"]])


@register
class Mathieu(Disentangler):
    """Encoder ``Enc(x) = (s, (mu, logvar))``, decoder ``Dec(z, s)``, adversary ``Adv(x, id)``.

    The adversary is the class-conditional DCGAN discriminator: three 5x5 stride-2 convolutions
    with batch norm and LeakyReLU(0.2), the label entering through a learned per-class bias at
    each layer (:class:`dislib.nn.ImageDiscriminator` with ``label_input="layers"``).

    The decoder passes ``s`` and ``z`` each through a fully connected layer and adds the results;
    a sum of two linear maps is one linear map of the concatenation ``[s, z]``, so that merge is
    the first (fully connected) layer of :class:`~dislib.nn.ConvDecoder` fed with ``[s, z]``.
    """

    name = "mathieu"
    Config = MathieuConfig
    BUDGETS = {
        "smoke": Budget(steps=30, batch_size=32, eval_every=15, train_size=1_024, eval_size=400),
        "full": Budget(steps=2_500, batch_size=64, eval_every=500, eval_size=2_000),
    }
    PRESETS = {
        "mnist": MathieuConfig(reconstruction_weight=0.5, kl_weight=4.0, adversarial_weight=30.0),
        "styled-mnist": MathieuConfig(reconstruction_weight=0.5, kl_weight=4.0, adversarial_weight=30.0),
        "sprites": MathieuConfig(specified_dim=64, unspecified_dim=512, widths=(64, 128, 256),
                                 discriminator_widths=(64, 128, 256)),
        "sprites-laptop": MathieuConfig(specified_dim=32, unspecified_dim=32, reconstruction_weight=0.5, kl_weight=4.0,
                                        adversarial_weight=30.0),
    }

    def __init__(self, config: MathieuConfig) -> None:
        super().__init__(config)
        c = config
        self.specified_dim = c.specified_dim
        self.unspecified_dim = c.unspecified_dim
        self.trunk = ConvEncoder(c.image_channels, c.image_size, c.widths)
        self.specified_head = nn.Linear(self.trunk.out_features, c.specified_dim)
        pretrained = c.specified_pretraining_steps > 0
        self.unspecified_trunk = ConvEncoder(c.image_channels, c.image_size, c.widths) if pretrained else None
        self.unspecified_head = GaussianHead(self.trunk.out_features, c.unspecified_dim)
        self.decoder = ConvDecoder(c.specified_dim + c.unspecified_dim, c.image_channels, c.image_size, c.widths[::-1])
        self.adversary = ImageDiscriminator(
            c.image_channels, c.image_size, c.discriminator_widths, c.num_classes, label_input="layers"
        )
        self._class_index: samplers.ClassIndex | None = None
        self.label_adversary = CodeClassifier(c.unspecified_dim, c.num_classes) if c.label_adversary_weight else None
        players = ("adversary.", "label_adversary.", "specified_classifier.")
        autoencoder = [p for name, p in self.named_parameters() if not name.startswith(players)]
        self.optimizers["autoencoder"] = torch.optim.Adam(autoencoder, lr=c.lr, betas=(c.beta1, 0.999))
        self.optimizers["adversary"] = torch.optim.Adam(
            self.adversary.parameters(), lr=c.adversary_lr, betas=(c.beta1, 0.999)
        )
        if self.label_adversary is not None:
            self.optimizers["label_adversary"] = torch.optim.Adam(self.label_adversary.parameters(), lr=c.lr)
        if pretrained:
            self.specified_classifier = MLP((c.specified_dim, 256, c.num_classes))
            specified = [*self.trunk.parameters(), *self.specified_head.parameters(), *self.specified_classifier.parameters()]
            self.optimizers["specified_classifier"] = torch.optim.Adam(specified, lr=c.lr)

    @property
    def specified_frozen(self) -> bool:
        """True once the pre-training of the specified encoder (the supplement's ablation) is over."""
        return self.unspecified_trunk is not None and int(self.steps_done) >= self.config.specified_pretraining_steps

    def train(self, mode: bool = True) -> "Mathieu":
        """As :meth:`torch.nn.Module.train`, but a frozen specified encoder stays in eval mode."""
        super().train(mode)
        if self.specified_frozen:
            self.trunk.eval()
            self.specified_head.eval()
        return self

    # the shared interface ------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        """``Enc(x) = (f_s(x), f_z(x))``: the specified code and ``q(z|x)``'s mean and log-variance."""
        self.check_images(x)
        h = self.trunk(x)
        mu, logvar = self.unspecified_head(h if self.unspecified_trunk is None else self.unspecified_trunk(x))
        return Codes(specified=self.specified_head(h), unspecified=mu, unspecified_logvar=logvar)

    def sample(self, specified: Tensor) -> Tensor:
        """Conditional generation: ``Dec(z, s)`` with ``z ~ N(0, I)``, one image per row of ``specified``."""
        z = torch.randn(len(specified), self.unspecified_dim, device=specified.device)
        return self.decode(specified, z)

    # training --------------------------------------------------------------------------------
    def make_batch(self, data: ImageDataset, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Triplets (Sec. 4.3): ``x1`` (the drawn indices), ``x1'`` another image of the same class,
        ``x2`` an image of another class."""
        if data.num_classes != self.config.num_classes:
            raise ValueError(
                f"the data has {data.num_classes} classes but the adversary's label tables have "
                f"{self.config.num_classes}: build the model with Mathieu.for_dataset(data)"
            )
        if self._class_index is None or self._class_index.labels is not data.labels:
            self._class_index = samplers.ClassIndex(data.labels)
        _, same, other = self._class_index.triplets(indices, generator)
        batch = {
            "x1": data.images[indices], "id1": data.labels[indices],
            "x1_same": data.images[same],
            "x2": data.images[other], "id2": data.labels[other],
        }
        self.check_images(batch["x1"])
        return batch

    def check_batch(self, batch: dict[str, Tensor]) -> None:
        """Raise a clear error for a hand-made triplet batch with missing keys or bad labels."""
        missing = {"x1", "id1", "x1_same", "x2", "id2"} - set(batch)
        if missing:
            raise ValueError(f"a Mathieu batch needs x1, id1, x1_same, x2, id2; missing {sorted(missing)}: "
                             "build it with model.make_batch(data, indices, generator)")
        self.check_labels(batch["id1"])
        self.check_labels(batch["id2"])

    def generator_terms(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The per-image terms of Algorithm 1's generator step (before weighting), ``X~12`` and ``mu``.

        ``X~12 = Dec(z1, s2)`` is returned as images so that the adversary's step can judge it, and
        the posterior means ``mu`` of ``x1, x1', x2`` (stacked) so that the label adversary (an
        extension) can learn from them. A frozen specified encoder gets no gradient.
        """
        x1, id2 = batch["x1"], batch["id2"]
        n = len(x1)
        codes = self.encode(torch.cat([x1, batch["x1_same"], batch["x2"]]))
        s, mu, logvar = codes.specified, codes.unspecified, codes.unspecified_logvar
        if self.specified_frozen:
            s = s.detach()
        s1, s1_same, s2 = s.split(n)
        mu1, logvar1 = mu[:n], logvar[:n]
        z1 = reparameterize(mu1, logvar1)
        x11, x11_same, x12 = self.decoder_output(torch.cat([s1, s1_same, s2]), z1.repeat(3, 1)).split(n)
        x12 = torch.sigmoid(x12)
        terms = {
            **conditional_bound(x11, x1, mu1, logvar1),
            "swap_reconstruction": losses.bernoulli_nll(x11_same, x1),
            "adversarial": losses.generator_loss_nonsaturating(self.adversary(x12, id2)),
        }
        if self.config.prior_adversarial:
            prior = self.sample(s2)
            terms["prior_adversarial"] = losses.generator_loss_nonsaturating(self.adversary(prior, id2))
        if self.label_adversary is not None:
            uniform = losses.uniform_target_cross_entropy(self.label_adversary(mu))
            terms["label_adversarial"] = uniform.view(3, n).mean(0)
        if self.config.class_mmd_weight:
            terms["class_mmd"] = losses.class_mmd(mu, triplet_labels(batch)).expand(n)
        return terms, x12, mu

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Algorithm 1: train the generative model, then the adversary.

        To save a forward pass, the adversary judges the swapped generation ``X~12 = Dec(z1, s2)``
        of the (last) generator step, detached, instead of encoding a fresh pair. With
        ``specified_pretraining_steps``, the first steps are :meth:`pretraining_step` instead.
        """
        self.check_batch(batch)
        if self.unspecified_trunk is not None and not self.specified_frozen:
            return self.pretraining_step(batch)
        self.adversary.requires_grad_(False)
        for _ in range(self.config.generator_steps):
            with self.autocast():
                terms, x12, mu = self.generator_terms(batch)
                objective = generator_objective(terms, self.config).mean()
            self.optimizer_step("autoencoder", objective)
        self.adversary.requires_grad_(True)

        x2, id2 = batch["x2"], batch["id2"]
        with self.autocast():
            fake_logits, real_logits = self.adversary(x12.detach(), id2), self.adversary(x2, id2)
            accuracy = 0.5 * ((fake_logits < 0).float().mean() + (real_logits > 0).float().mean())
            adversary_loss = losses.discriminator_loss(real_logits, fake_logits).mean()
            if self.config.mismatched_negatives:
                wrong = batch["id1"] != id2
                mismatched_logits = self.adversary(batch["x1"][wrong], id2[wrong])
                adversary_loss = adversary_loss + F.softplus(mismatched_logits).sum() / len(x2)
        cap = self.config.adversary_accuracy_cap
        if cap is None or accuracy.item() < cap:
            self.optimizer_step("adversary", adversary_loss)
        out = self.report({**terms, "adversary_loss": adversary_loss, "adversary_accuracy": accuracy})
        if self.label_adversary is not None:
            out["label_adversary_loss"] = self.label_adversary_step(mu.detach(), batch)
        self.steps_done += 1
        return out

    def label_adversary_step(self, mu: Tensor, batch: dict[str, Tensor]) -> Tensor:
        """Extension: ``label_adversary_steps`` updates of the classifier ``C(id | mu)`` (Zheng & Sun
        Eq. 4) on the posterior means of ``x1, x1', x2``; returns its last cross-entropy, detached."""
        labels = triplet_labels(batch)
        for _ in range(self.config.label_adversary_steps):
            with self.autocast():
                loss = F.cross_entropy(self.label_adversary(mu), labels)
            self.optimizer_step("label_adversary", loss)
        return loss.detach().float()

    def pretraining_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The supplement's first stage: the specified encoder with a two-layer head on ``s``,
        trained to classify ``x1`` (cross-entropy); the rest of the model waits."""
        with self.autocast():
            logits = self.specified_classifier(self.specified_head(self.trunk(batch["x1"])))
            loss = F.cross_entropy(logits, batch["id1"])
        self.optimizer_step("specified_classifier", loss)
        self.steps_done += 1
        if self.specified_frozen:
            self.train(self.training)
        accuracy = (logits.argmax(1) == batch["id1"]).float()
        return self.report({"classification": loss, "classification_accuracy": accuracy})

    @torch.no_grad()
    def evaluate(self, data: ImageDataset, batch_size: int = 500) -> dict[str, float]:
        """The bound of Eq. 4 on held-out images, in nats per image: ``-log p(x | z, s)`` at one
        sample of ``q(z|x)`` and ``KL(q(z|x) || N(0, I))``. Probes of the codes are the caller's
        (:func:`dislib.evaluate.held_out` adds them in the training loop)."""
        sums = {"reconstruction": 0.0, "kl": 0.0}
        for i in range(0, len(data), batch_size):
            x = data.images[i : i + batch_size]
            codes = self.encode(x)
            z = reparameterize(codes.unspecified, codes.unspecified_logvar)
            terms = conditional_bound(self.decoder_output(codes.specified, z), x, codes.unspecified, codes.unspecified_logvar)
            for k, v in terms.items():
                sums[k] += v.float().sum().item()
        return {f"test_{k}": v / len(data) for k, v in sums.items()}
