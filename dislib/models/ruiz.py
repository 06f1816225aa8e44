"""Ruiz et al. (2019), "Learning disentangled representations with reference-based variational
autoencoders": Rb-VAE and sRb-VAE.

The training images come from two sets: an unlabelled set ``p_u(x)`` (label ``y = 0``) and a
*reference* set ``p_r(x)`` (``y = 1``) in which the target factors are constant (plain digits,
neutral faces). The model (Eq. 2) is ``p(x, z, e, y) = p(x | z, e) p(z) p(e | y) p(y)``: target
factors ``e`` (the specified code), common factors ``z`` (the unspecified code), ``p(z) = N(0, I)``,
``p(e | y = 0) = N(0, I)`` and ``p(e | y = 1)`` a delta at a learned vector ``e_r``, and a Laplace
likelihood ``p(x | z, e)`` with mean ``G(z, e)`` and a fixed scale. Two Gaussian encoders
``q(e | x)`` and ``q(z | x)`` infer the codes; a reference image is rebuilt from ``e_r``.

* **Rb-VAE** minimises ``KL(q || p)``, the bound of Eq. 3: nothing stops the decoder from
  ignoring ``e`` and putting everything in ``z`` (Sec. 4.3).
* **sRb-VAE** minimises the symmetric ``KL(q || p) + KL(p || q)`` (Eq. 4). Two discriminators
  estimate log density ratios by logistic regression (Eqs. 7, 9): ``d(x, z, e)`` between encoded
  unlabelled images and generated ones, ``d'(x, z)`` between encoded reference images and images
  generated from ``e_r``; the encoders and the generator minimise their difference of expectations
  (Eq. 8) plus explicit reconstructions of images and of codes (Eq. 10). One training step is
  Algorithm 1 of App. B: each player has its own optimizer, a real min-max game.

Networks after App. D (Fig. 6), on dislib's pixel convention: the paper's images lie in
``[-1, 1]`` with a ``tanh`` output; ours lie in ``[0, 1]`` with a sigmoid output, the same map
(``tanh(a) = 2 sigmoid(2a) - 1``). An error on ``[-1, 1]`` is twice the error on ``[0, 1]``, so
the paper's Laplace scale 0.01 is 0.005 here: the same likelihood up to a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models.base import Budget, Codes, Disentangler, ImageConfig, register
from dislib.nn import GaussianHead, LatentDiscriminator, PoolingEncoder, UpsamplingGenerator, laplace_sample, reparameterize

PAPER_PIXEL_SCALE = 0.01 / 2
"""The paper's Laplace scale, 0.01 on ``[-1, 1]`` images, on dislib's ``[0, 1]`` pixels."""


@dataclass(frozen=True)
class ReferenceConfig(ImageConfig):
    """Settings shared by :class:`RbVAE` and :class:`SRbVAE`; the defaults are the paper's (Sec. 5.2, App. D).

    Parameters
    ----------
    specified_dim, unspecified_dim
        Sizes of ``e`` and ``z`` (paper: 32 and 32).
    widths
        Channels of the encoders' stages (paper: 32-64-128-256). The encoder is a 3x3
        convolution to ``widths[0]``, then, for each width, a 2x2 average pooling and 3x3
        convolutions ``w -> w -> next w`` (the last stage ``w -> w``), each followed by pixel-wise
        normalisation and LeakyReLU(0.2); fully connected heads give the mean and log-variance.
        The generator mirrors it with nearest-neighbour upsampling (Fig. 6).
    likelihood, pixel_scale
        ``-log p(x | z, e)`` (:func:`dislib.losses.image_nll`): a Laplace of scale 0.005 on
        ``[0, 1]`` pixels, the paper's 0.01 on ``[-1, 1]``.
    reconstruction_weight
        Weight of the image reconstruction terms (1: the paper).
    reference_label
        The label of reference images (styled-mnist: 1); every other label marks an unlabelled
        image. Any labelled dataset works: its class ``reference_label`` becomes the reference set.
    lr, betas, eps
        Adam for every player (paper: 1e-4, (0.5, 0.99), 1e-8).
    """

    image_channels: int = 3
    image_size: int = 64
    num_classes: int = 2
    specified_dim: int = 32
    unspecified_dim: int = 32
    widths: tuple[int, ...] = (32, 64, 128, 256)
    likelihood: str = "laplace"
    pixel_scale: float = PAPER_PIXEL_SCALE
    reconstruction_weight: float = 1.0
    reference_label: int = 1
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.99)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        losses.check_likelihood(self.likelihood, self.pixel_scale)
        if self.specified_dim < 1 or self.unspecified_dim < 1:
            raise ValueError(f"code sizes must be positive, got e={self.specified_dim}, z={self.unspecified_dim}")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be one or more positive channel counts, got {self.widths}")
        if self.image_size < 2 ** len(self.widths):
            raise ValueError(f"{len(self.widths)} poolings need images of at least {2 ** len(self.widths)} pixels, "
                             f"got {self.image_size}: use fewer widths")
        if not 0 <= self.reference_label < self.num_classes:
            raise ValueError(f"reference_label must be one of the {self.num_classes} labels, "
                             f"got {self.reference_label}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        check_weights(self)


def check_weights(config: ReferenceConfig) -> None:
    """Raise a clear error for a negative loss weight (every field ending in ``_weight``)."""
    for name, value in vars(config).items():
        if name.endswith("_weight") and not value >= 0:
            raise ValueError(f"{name} must be >= 0 (a weight of a term to minimise), got {value}")


@dataclass(frozen=True)
class RbVAEConfig(ReferenceConfig):
    """Settings of :class:`RbVAE`: those of :class:`ReferenceConfig` and

    Parameters
    ----------
    kl_weight
        Weight of the KL terms of Eq. 3 (1: the paper's bound).
    """

    kl_weight: float = 1.0


@dataclass(frozen=True)
class SRbVAEConfig(ReferenceConfig):
    """Settings of :class:`SRbVAE`: those of :class:`ReferenceConfig` and

    Parameters
    ----------
    discriminator_widths
        Channels of the image branch of ``d`` and ``d'``: the encoder's stages without
        normalisation (paper: as the encoder's).
    discriminator_image_features, discriminator_code_features, discriminator_hidden
        App. D: the image branch ends in "FC 64 - LeakyReLU", each code in "FC 32 - LeakyReLU",
        and the concatenation goes through "FC 128 - LeakyReLU" to a linear logit.
    input_drop
        App. D: the probability (0.25) with which, in training, each input of the layer after the
        concatenation, the image features and each code's features, is set to zero for an example
        (kept inputs are scaled by ``1 / (1 - p)``, as dropout does); see :class:`dislib.nn.InputDrop`.
    adversarial_weight
        Weight of Eq. 8 in the encoders' and generator's objective (1: the paper).
    code_reconstruction_weight
        Weight of Eq. 10's code reconstructions, ``-log q(z|x) - log q(e|x)`` on generated images
        (1: the paper; the image reconstructions take ``reconstruction_weight``).
    """

    discriminator_widths: tuple[int, ...] = (32, 64, 128, 256)
    discriminator_image_features: int = 64
    discriminator_code_features: int = 32
    discriminator_hidden: int = 128
    input_drop: float = 0.25
    adversarial_weight: float = 1.0
    code_reconstruction_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.input_drop < 1.0:
            raise ValueError(f"input_drop is a probability in [0, 1), got {self.input_drop}")
        if not self.discriminator_widths or min(self.discriminator_widths) < 1:
            raise ValueError(f"discriminator_widths must be one or more positive channel counts, "
                             f"got {self.discriminator_widths}")
        stages = len(self.discriminator_widths)
        if self.image_size < 2**stages:
            raise ValueError(f"{stages} poolings in the discriminators need images of at least {2**stages} pixels, "
                             f"got {self.image_size}: use fewer discriminator_widths")


LAPTOP = dict(widths=(16, 32, 64, 128))
"""Ours: the networks of the ``styled-mnist`` preset (32-pixel images), half as wide as the paper's."""
LAPTOP_DISCRIMINATORS = dict(discriminator_widths=(16, 32, 64, 128))


def rbvae_objective(terms: dict[str, Tensor], config: RbVAEConfig) -> Tensor:
    r"""Eq. 3, a scalar: the mean bound over the unlabelled images plus that over the reference images.

    .. math::
        \mathbb E_{p_u}\big[w_{KL}(\mathrm{KL}_z + \mathrm{KL}_e) + w_r\,\mathrm{NLL}(x \mid z, e)\big]
        + \mathbb E_{p_r}\big[w_{KL}\,\mathrm{KL}_z + w_r\,\mathrm{NLL}(x \mid z, e_r)\big]

    (:func:`dislib.losses.reference_vae_bound` with weights; both weights 1 is the paper).
    """
    w_rec, w_kl = config.reconstruction_weight, config.kl_weight
    unlabelled = losses.reference_vae_bound(w_rec * terms["reconstruction"], w_kl * terms["kl_z"], w_kl * terms["kl_e"])
    reference = losses.reference_vae_bound(w_rec * terms["reference_reconstruction"], w_kl * terms["reference_kl_z"])
    return unlabelled.mean() + reference.mean()


def srbvae_objective(terms: dict[str, Tensor], config: SRbVAEConfig) -> Tensor:
    r"""The encoders' and generator's objective, a scalar: Eq. 8 plus Eq. 10.

    .. math::
        \mathbb E\big[d(x, z, e) - d(\hat x, \hat z, \hat e)\big]
        + \mathbb E\big[d'(x_r, z_r) - d'(\hat x_r, \hat z_r)\big]
        - \mathbb E \log p(x \mid z, e) - \mathbb E \log p(x_r \mid z_r, e_r)
        - \mathbb E\big[\log q(\hat z \mid \hat x) + \log q(\hat e \mid \hat x)\big]
        - \mathbb E \log q(\hat z_r \mid \hat x_r)

    each term averaged over its images, the three kinds weighted by ``adversarial_weight``,
    ``reconstruction_weight`` and ``code_reconstruction_weight`` (all 1: the paper).
    """
    c = config
    unlabelled = (c.adversarial_weight * terms["adversarial"] + c.reconstruction_weight * terms["reconstruction"]
                  + c.code_reconstruction_weight * terms["code_reconstruction"])
    reference = (c.adversarial_weight * terms["reference_adversarial"]
                 + c.reconstruction_weight * terms["reference_reconstruction"]
                 + c.code_reconstruction_weight * terms["reference_code_reconstruction"])
    return unlabelled.mean() + reference.mean()


# the models --------------------------------------------------------------------------------
class ReferenceVAE(Disentangler):
    """What Rb-VAE and sRb-VAE share: ``q(e|x)``, ``q(z|x)``, ``G(z, e)``, ``e_r``, batches, evaluation.

    ``encode(x)`` returns ``q(e|x)`` (mean and log-variance) as the specified code and ``q(z|x)``
    as the unspecified one, for any image: the model reads ``e_r`` instead only where it knows an
    image is a reference image (training, :meth:`evaluate`). ``decode(e, z)`` is ``G(z, e)``.
    """

    Config = ReferenceConfig
    BUDGETS = {
        "smoke": Budget(steps=20, batch_size=36, eval_every=20, train_size=720, eval_size=200),
        "full": Budget(steps=3_000, batch_size=36, eval_every=500, eval_size=2_000),
    }

    def __init__(self, config: ReferenceConfig) -> None:
        super().__init__(config)
        c = config
        self.specified_dim = c.specified_dim
        self.unspecified_dim = c.unspecified_dim
        self.specified_encoder = self._encoder(c, c.specified_dim)
        self.unspecified_encoder = self._encoder(c, c.unspecified_dim)
        codes = c.specified_dim + c.unspecified_dim
        self.decoder = UpsamplingGenerator(codes, c.image_channels, c.image_size, c.widths[::-1])
        self.reference_code = nn.Parameter(torch.zeros(c.specified_dim))
        self.optimizers["autoencoder"] = self.adam(
            [*self.specified_encoder.parameters(), *self.unspecified_encoder.parameters(),
             *self.decoder.parameters(), self.reference_code]
        )
        self._sets: tuple[Tensor, Tensor, Tensor] | None = None

    @staticmethod
    def _encoder(c: ReferenceConfig, dim: int) -> nn.Sequential:
        trunk = PoolingEncoder(c.image_channels, c.image_size, c.widths)
        return nn.Sequential(trunk, GaussianHead(trunk.out_features, dim))

    def adam(self, params: list[nn.Parameter]) -> torch.optim.Adam:
        c = self.config
        return torch.optim.Adam(params, lr=c.lr, betas=c.betas, eps=c.eps)

    # the shared interface ----------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        """``q(e|x)`` as the specified code and ``q(z|x)`` as the unspecified one (means and log-variances)."""
        self.check_images(x)
        mu_e, logvar_e = self.specified_encoder(x)
        mu_z, logvar_z = self.unspecified_encoder(x)
        return Codes(specified=mu_e, unspecified=mu_z, unspecified_logvar=logvar_z, specified_logvar=logvar_e)

    def reference_codes(self, n: int) -> Tensor:
        """``e_r`` repeated ``n`` times, ``[n, specified_dim]``: the target code of every reference image."""
        return self.reference_code.expand(n, -1)

    def sample(self, unspecified: Tensor) -> Tensor:
        """Conditional synthesis (Sec. 5.4, Fig. 3): ``G(z, e)`` with ``e ~ N(0, I)``, one image per row of ``z``."""
        return self.decode(torch.randn(len(unspecified), self.specified_dim, device=unspecified.device), unspecified)

    # batches -----------------------------------------------------------------------------------
    def make_batch(self, data: ImageDataset, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Half the batch from each set: ``{"x_unlabelled", "x_reference"}`` (18 + 18 of a batch of 36).

        The drawn indices come first: up to ``n - n // 2`` unlabelled and ``n // 2`` reference
        images among them, in the order drawn, are kept; a set drawn too few times this step is
        topped up with images of that set drawn uniformly at random (``generator``). With both sets
        of about equal size (copies=1) nearly every image of an epoch is used once; with the
        paper's two unlabelled copies, the surplus unlabelled images of a step are left out and
        the reference images fill in, so that every step sees both sets equally.
        """
        c = self.config
        n = len(indices)
        n_reference = n // 2
        if n_reference < 1:
            raise ValueError(f"a {self.name} batch needs at least 2 images (half unlabelled, half reference), got {n}")
        if not c.reference_label < data.num_classes:
            raise ValueError(f"the data has {data.num_classes} classes, so no reference label {c.reference_label}: "
                             f"build the model with {type(self).__name__}.for_dataset(data)")
        if self._sets is None or self._sets[0] is not data.labels:
            is_reference = data.labels == c.reference_label
            self._sets = (data.labels, is_reference.nonzero().squeeze(1), (~is_reference).nonzero().squeeze(1))
        _, reference_pool, unlabelled_pool = self._sets
        for pool, what in ((reference_pool, f"reference images (label {c.reference_label})"),
                           (unlabelled_pool, f"unlabelled images (labels other than {c.reference_label})")):
            if len(pool) == 0:
                raise ValueError(f"the data has no {what}: a reference-based model learns from both sets; "
                                 "load a dataset with both, e.g. dislib.data.load('styled-mnist', 'train')")
        drawn_reference = data.labels[indices] == c.reference_label
        reference = _top_up(indices[drawn_reference][:n_reference], reference_pool, n_reference, generator)
        unlabelled = _top_up(indices[~drawn_reference][: n - n_reference], unlabelled_pool, n - n_reference, generator)
        batch = {"x_unlabelled": data.images[unlabelled], "x_reference": data.images[reference]}
        self.check_images(batch["x_unlabelled"][:1])
        return batch

    def check_batch(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The batch's unlabelled and reference images, after a clear error for a missing or empty set."""
        for key, what in (("x_reference", "reference images"), ("x_unlabelled", "unlabelled images")):
            if key not in batch or len(batch[key]) == 0:
                raise ValueError(
                    f"this {self.name} batch has no {what} ({key!r}; got keys {sorted(batch)}): each step needs both "
                    "sets, the reference term of Eq. 3 reads e_r and the other term q(e|x); build batches with "
                    "model.make_batch(data, indices, generator), which draws half of each"
                )
            self.check_images(batch[key])
        return batch["x_unlabelled"], batch["x_reference"]

    def posterior_samples(self, x: Tensor, x_reference: Tensor) -> dict[str, Tensor]:
        """``q(e|x)`` of the unlabelled images and ``q(z|x)`` of both sets (unlabelled first), with one
        reparameterised sample of each: ``mu_e, logvar_e, e, mu_z, logvar_z, z``."""
        mu_e, logvar_e = self.specified_encoder(x)
        mu_z, logvar_z = self.unspecified_encoder(torch.cat([x, x_reference]))
        return {"mu_e": mu_e, "logvar_e": logvar_e, "e": reparameterize(mu_e, logvar_e),
                "mu_z": mu_z, "logvar_z": logvar_z, "z": reparameterize(mu_z, logvar_z)}

    def reconstruction_terms(
        self, x: Tensor, x_reference: Tensor, posterior: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """``-log p(x | z, e)`` of the unlabelled images and ``-log p(x_r | z_r, e_r)`` of the reference ones,
        at the posterior samples, per image in nats."""
        c = self.config
        e = torch.cat([posterior["e"], self.reference_codes(len(x_reference)).to(posterior["e"].dtype)])
        output = self.decoder_output(e, posterior["z"])
        nll = losses.image_nll(output, torch.cat([x, x_reference]), c.likelihood, c.pixel_scale)
        return nll[: len(x)], nll[len(x) :]

    # evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: ImageDataset, batch_size: int = 500) -> dict[str, float]:
        """Held-out numbers of the model itself, in nats per image, for the sets present in ``data``:
        ``-log p(x | z, e)`` at one posterior sample (``e`` from ``q(e|x)`` for unlabelled images,
        ``e_r`` for reference ones), ``KL(q(e|x) || N(0, I))`` over the unlabelled images and
        ``KL(q(z|x) || N(0, I))`` over all. Probes and regressions are the caller's."""
        c = self.config
        sums = {"reconstruction": 0.0, "reference_reconstruction": 0.0, "kl_e": 0.0, "kl_z": 0.0}
        n_reference = 0
        for i in range(0, len(data), batch_size):
            x, y = data.images[i : i + batch_size], data.labels[i : i + batch_size]
            codes = self.encode(x)
            reference = (y == c.reference_label)[:, None]
            e = reparameterize(codes.specified, codes.specified_logvar)
            e = torch.where(reference, self.reference_codes(len(x)), e)
            z = reparameterize(codes.unspecified, codes.unspecified_logvar)
            nll = losses.image_nll(self.decoder_output(e, z), x, c.likelihood, c.pixel_scale).float()
            kl_e = losses.kl_normal_standard(codes.specified, codes.specified_logvar).float()
            reference = reference.squeeze(1)
            sums["reconstruction"] += nll[~reference].sum().item()
            sums["reference_reconstruction"] += nll[reference].sum().item()
            sums["kl_e"] += kl_e[~reference].sum().item()
            sums["kl_z"] += losses.kl_normal_standard(codes.unspecified, codes.unspecified_logvar).float().sum().item()
            n_reference += int(reference.sum())
        counts = {"reconstruction": len(data) - n_reference, "reference_reconstruction": n_reference,
                  "kl_e": len(data) - n_reference, "kl_z": len(data)}
        return {f"test_{k}": v / counts[k] for k, v in sums.items() if counts[k]}


def _top_up(chosen: Tensor, pool: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``chosen`` followed by ``n - len(chosen)`` indices drawn uniformly from ``pool``."""
    missing = n - len(chosen)
    if missing <= 0:
        return chosen
    u = torch.rand(missing, generator=generator, device=generator.device).to(pool.device)
    return torch.cat([chosen, pool[(u * len(pool)).long().clamp_max(len(pool) - 1)]])


@register
class RbVAE(ReferenceVAE):
    """Rb-VAE: the reference-based VAE trained on its variational bound, Eq. 3 (Sec. 4.2)."""

    name = "rbvae"
    Config = RbVAEConfig
    PRESETS = {
        "styled-mnist": RbVAEConfig(image_size=32, **LAPTOP),
        "styled-mnist-paper": RbVAEConfig(),
    }

    def bound_terms(self, x: Tensor, x_reference: Tensor) -> dict[str, Tensor]:
        """The per-image terms of Eq. 3 at one posterior sample: ``reconstruction``, ``kl_e``, ``kl_z``
        of the unlabelled images, ``reference_reconstruction`` and ``reference_kl_z`` of the
        reference images (their ``e`` is ``e_r``, without a KL), in nats."""
        posterior = self.posterior_samples(x, x_reference)
        reconstruction, reference_reconstruction = self.reconstruction_terms(x, x_reference, posterior)
        kl_z = losses.kl_normal_standard(posterior["mu_z"], posterior["logvar_z"])
        return {
            "reconstruction": reconstruction,
            "kl_e": losses.kl_normal_standard(posterior["mu_e"], posterior["logvar_e"]),
            "kl_z": kl_z[: len(x)],
            "reference_reconstruction": reference_reconstruction,
            "reference_kl_z": kl_z[len(x) :],
        }

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sec. 4.2: one SGVB step on Eq. 3 for the encoders, the generator and ``e_r``."""
        x, x_reference = self.check_batch(batch)
        with self.autocast():
            terms = self.bound_terms(x, x_reference)
            objective = rbvae_objective(terms, self.config)
        self.optimizer_step("autoencoder", objective)
        self.steps_done += 1
        return self.report({**terms, "objective": objective})


@register
class SRbVAE(ReferenceVAE):
    """sRb-VAE: the symmetric KL of Eq. 4 through two discriminators, Algorithm 1 (Sec. 4.3, App. B).

    ``d(x, z, e)`` and ``d'(x, z)`` are :class:`LatentDiscriminator` s, each with its own Adam.
    """

    name = "srbvae"
    Config = SRbVAEConfig
    PRESETS = {
        "styled-mnist": SRbVAEConfig(image_size=32, **LAPTOP, **LAPTOP_DISCRIMINATORS),
        "styled-mnist-paper": SRbVAEConfig(),
    }

    def __init__(self, config: SRbVAEConfig) -> None:
        super().__init__(config)
        c = config

        def discriminator(code_dims: tuple[int, ...]) -> LatentDiscriminator:
            return LatentDiscriminator(
                c.image_channels, c.image_size, c.discriminator_widths, code_dims, c.discriminator_image_features,
                c.discriminator_code_features, c.discriminator_hidden, c.input_drop,
            )

        self.discriminator = discriminator((c.unspecified_dim, c.specified_dim))  # d(x, z, e)
        self.reference_discriminator = discriminator((c.unspecified_dim,))  # d'(x, z)
        self.optimizers["discriminator"] = self.adam(list(self.discriminator.parameters()))
        self.optimizers["reference_discriminator"] = self.adam(list(self.reference_discriminator.parameters()))

    def generate(self, e: Tensor, z: Tensor) -> Tensor:
        """``x ~ p(x | z, e)``: a Laplace sample around ``G(z, e)``, reparameterised (values may leave
        ``[0, 1]`` by the noise, scale 0.005: what the discriminators and encoders read in training)."""
        return laplace_sample(torch.sigmoid(self.decoder_output(e, z)).float(), self.config.pixel_scale)

    def autoencoder_terms(self, x: Tensor, x_reference: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Algorithm 1, lines 2-14, with Eq. 10: the encoders' and generator's per-image terms, and the
        codes and images the discriminators judge next (``*_q`` encoded, ``*_p`` generated).

        Unlabelled images come first, then reference images, wherever the two are stacked.
        """
        n, n_reference = len(x), len(x_reference)
        # lines 2-6: e ~ q(e|x) for the unlabelled images, z ~ q(z|x) for both sets
        posterior = self.posterior_samples(x, x_reference)
        e, (z, z_reference) = posterior["e"], posterior["z"].split([n, n_reference])
        # lines 9-13: e^, z^, z^_r from the priors; x^ ~ p(x | z^, e^) and x^_r ~ p(x | z^_r, e_r)
        e_prior = torch.randn(e.shape, device=x.device)
        z_prior_all = torch.randn(n + n_reference, self.unspecified_dim, device=x.device)
        generated = self.generate(torch.cat([e_prior, self.reference_codes(n_reference)]), z_prior_all)
        x_prior, x_prior_reference = generated.split([n, n_reference])
        z_prior, z_prior_reference = z_prior_all.split([n, n_reference])
        # lines 7 and 14: Eq. 8 through d(x, z, e) and d'(x, z), encoded pairs against generated ones
        judged = {
            "x": torch.cat([x, x_prior]), "z": torch.cat([z, z_prior]), "e": torch.cat([e, e_prior]),
            "x_reference": torch.cat([x_reference, x_prior_reference]),
            "z_reference": torch.cat([z_reference, z_prior_reference]),
        }
        d_q, d_p = self.discriminator(judged["x"], judged["z"], judged["e"]).split(n)
        d_reference = self.reference_discriminator(judged["x_reference"], judged["z_reference"])
        d_q_reference, d_p_reference = d_reference.split(n_reference)
        # Eq. 10: the images rebuilt from their codes; the prior codes read back from the generated images
        reconstruction, reference_reconstruction = self.reconstruction_terms(x, x_reference, posterior)
        mu_e, logvar_e = self.specified_encoder(x_prior)
        mu_z, logvar_z = self.unspecified_encoder(generated)
        code_nll = losses.gaussian_code_nll(z_prior_all, mu_z, logvar_z)
        terms = {
            "adversarial": losses.symmetric_kl_adversarial(d_q, d_p),
            "reference_adversarial": losses.symmetric_kl_adversarial(d_q_reference, d_p_reference),
            "reconstruction": reconstruction,
            "reference_reconstruction": reference_reconstruction,
            "code_reconstruction": code_nll[:n] + losses.gaussian_code_nll(e_prior, mu_e, logvar_e),
            "reference_code_reconstruction": code_nll[n:],
        }
        return terms, {k: v.detach() for k, v in judged.items()}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Algorithm 1 (App. B), in order: the encoders' and generator's gradients (lines 1-14, with
        Eq. 10 added), then ``d``'s (line 16) and ``d'``'s (line 18), each player stepping its own Adam.

        Every gradient is taken at the weights the step started with, as in line 20's simultaneous
        update: the encoders and the generator (one Adam over both, which is elementwise, so the
        same as two on one objective) step with the discriminators frozen, and the discriminators
        then judge the same codes and images, detached.
        """
        x, x_reference = self.check_batch(batch)
        players = (self.discriminator, self.reference_discriminator)

        # lines 1-14: the encoders (phi), the generator (theta) and e_r on Eq. 8 + Eq. 10
        for d in players:
            d.requires_grad_(False)
        with self.autocast():
            terms, judged = self.autoencoder_terms(x, x_reference)
            objective = srbvae_objective(terms, self.config)
        self.optimizer_step("autoencoder", objective)
        for d in players:
            d.requires_grad_(True)

        # line 16: d (psi), logistic regression of encoded unlabelled pairs against generated ones (Eq. 9)
        with self.autocast():
            logits = self.discriminator(judged["x"], judged["z"], judged["e"])
            discriminator_loss = losses.density_ratio_loss(*logits.split(len(x))).mean()
        self.optimizer_step("discriminator", discriminator_loss)

        # line 18: d' (psi'), encoded reference pairs against pairs generated from e_r
        with self.autocast():
            logits = self.reference_discriminator(judged["x_reference"], judged["z_reference"])
            reference_discriminator_loss = losses.density_ratio_loss(*logits.split(len(x_reference))).mean()
        self.optimizer_step("reference_discriminator", reference_discriminator_loss)

        self.steps_done += 1
        return self.report({**terms, "objective": objective, "discriminator": discriminator_loss,
                            "reference_discriminator": reference_discriminator_loss})
