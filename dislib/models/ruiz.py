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
``[-1, 1]`` with a ``tanh`` output; ours lie in ``[0, 1]``. An error on ``[-1, 1]`` is twice the
error on ``[0, 1]``, so the paper's Laplace scale 0.01 is 0.005 here: the same likelihood up to a
constant. The Laplace location is the generator's linear output, not a squashed one (the paper's
``tanh``, our sigmoid, saturates under the L1 loss: :func:`dislib.losses.location`). The networks,
likelihood, optimiser and budgets live in :mod:`dislib.models.base.ruiz` (:class:`RuizConfig`,
:class:`RuizModel`), which the unsupervised baselines of :mod:`dislib.models.ruiz_baselines` share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models.base import Codes, gradient_shares, register
from dislib.models.base.ruiz import RUIZ_LAPTOP_DISCRIMINATORS, RUIZ_LAPTOP_SYMMETRIC, RuizConfig, RuizModel, SymmetricKLConfig, ruiz_presets
from dislib.nn import CodeClassifier, CodeRegressor, Zoom, reparameterize


TARGET_REGRESSOR = dict(target_adversary_weight=10_000.0, extension_start=1_000)
"""Ours, an extension: the target regressor of weight 10,000 from step 1,000 (:class:`ReferenceConfig`):
``z`` is asked to forget what ``e`` says."""

BOTH_REGRESSORS = dict(**TARGET_REGRESSOR, common_adversary_weight=10_000.0)
"""Ours, an extension: both code regressors of weight 10,000 from step 1,000: ``z`` forgets what ``e``
says and ``e`` what ``z`` says."""

BOUND_START = dict(bound_steps=1_000)
"""Ours, an extension of sRb-VAE: its first 1,000 steps on Rb-VAE's bound (Eq. 3), so that the game of
Eq. 8 starts with both codes in use (:class:`SRbVAEConfig`)."""

NARROW_COMMON = dict(unspecified_dim=8)
"""Ours, an extension: ``z`` of 8 dimensions (the paper's 32; ``e`` keeps 32). A reference image can
take its digit only from ``z``, an unlabelled image its style from either code: a ``z`` with little
room keeps what only it can carry."""

LIGHT_CODE_RECONSTRUCTION = dict(code_reconstruction_weight=10.0)
"""Ours, for sRb-VAE: the code reconstructions of Eq. 10 weighted 10 instead of the ``styled-mnist``
preset's 100 (the paper: 1). In the book's sweep, with :data:`NARROW_COMMON` and :data:`BOUND_START`,
sRb-VAE's ``e`` then read the style better than Rb-VAE's on three seeds (bfloat16 forward passes);
trained again on the same seeds in float32 it did not, and over both trainings the two tie. Weighted
more, the code reconstructions take more of the encoders' gradient and ``e`` reads it worse."""

SPLIT = "styled-mnist-split"
"""Ours, a preset of extensions: the ``styled-mnist`` recipe with :data:`NARROW_COMMON` (and, for
sRb-VAE, :data:`BOUND_START` and :data:`LIGHT_CODE_RECONSTRUCTION`), the settings under which both
reference models split the style from ``z`` on styled MNIST in the book's sweep."""


def with_split_preset(presets: dict[str, Any], **extensions: Any) -> dict[str, Any]:
    """``presets`` and the :data:`SPLIT` preset: their ``styled-mnist`` one with ``extensions``."""
    return {**presets, SPLIT: replace(presets["styled-mnist"], **extensions)}


@dataclass(frozen=True)
class ReferenceConfig(RuizConfig):
    """Settings shared by :class:`RbVAE` and :class:`SRbVAE`: the networks, likelihood and optimiser of
    :class:`dislib.models.base.ruiz.RuizConfig` (the paper's by default, Sec. 5.2, App. D) and

    Parameters
    ----------
    specified_dim, unspecified_dim
        Sizes of ``e`` and ``z`` (paper: 32 and 32).
    reconstruction_weight
        Weight of the image reconstruction terms (1: the paper).
    reference_label
        The label of reference images (styled-mnist: 1); every other label marks an unlabelled
        image. Any labelled dataset works: its class ``reference_label`` becomes the reference set.
    set_mmd_weight
        **Extension, not in the paper** (0 = the paper): weight of :func:`dislib.losses.class_mmd`
        between the posterior means of ``z`` of the unlabelled and of the reference images of a batch,
        a penalty (no second player) on how much the distribution of ``z`` tells the two sets apart.
        The target factors are what tells them apart, so a ``z`` whose distribution is the same in
        both sets cannot carry them in the way the reference set shows them (the Variational Fair
        Autoencoder's MMD, Louizos et al. 2016, with the set as the nuisance variable).
    set_adversary_weight, set_adversary_steps
        **Extension, not in the paper** (0 = the paper): a classifier ``C(y | mu_z)`` (an MLP on the
        posterior mean of ``z``, :class:`dislib.nn.CodeClassifier`) learns which set an image came
        from, ``set_adversary_steps`` updates per step on the step's codes, and the encoders minimise
        ``set_adversary_weight`` times its cross-entropy to the uniform target
        (:func:`dislib.losses.uniform_target_cross_entropy`, Zheng & Sun's Eq. 5 with the set as the
        label): the same aim as ``set_mmd_weight``, through a second player.
    reference_swap_weight, reference_cycle_weight
        **Extension, not in the paper** (0 = the paper): the *reference swap*. Each unlabelled
        image's ``z`` is decoded with ``e_r``, ``x_s = G(z, e_r)``: the image as the reference set
        would show it. ``reference_swap_weight`` weighs :func:`dislib.losses.image_mmd` between these
        images and the batch's reference images (they should look like reference images), and
        ``reference_cycle_weight`` the code NLL ``-log q(z | x_s)`` (``z`` should read back from
        them). Together they leave ``z`` only what a reference image shows: a ``z`` holding the size
        would draw the reference image small, or read back full size.
    target_adversary_weight, common_adversary_weight, regressor_steps
        **Extension, not in the paper** (0 = the paper): code regressors, MLPs on the posterior means
        of the unlabelled images (:class:`dislib.nn.CodeRegressor`), each learning to predict one code
        from the other, standardised over the batch, ``regressor_steps`` updates per step. With
        ``target_adversary_weight``, the *target regressor* ``R(mu_z)`` predicts ``e`` and the encoder
        of ``z`` minimises that weight times the square of its prediction
        (:func:`dislib.losses.mean_target_squared_error`; from a ``z`` that knows nothing of ``e``
        the best prediction is ``e``'s mean): ``z`` is asked to forget what ``e`` says. With
        ``common_adversary_weight``, the *common regressor* ``R'(mu_e)`` predicts ``z`` and the encoder
        of ``e`` is asked the same of ``z``. Each regressor's target is detached: a code is pushed only
        by the regressor that reads it.
    extension_start
        Steps before the set classifier's, the code regressors' and the reference swap's terms apply
        (the adversaries learn from the first step): from the start, the encoders answer them by emptying ``z``,
        before the reference branch has learnt to draw.
    target_zoom
        **Extension, not in the paper** (False = the paper): ``G(z, e)``'s output is zoomed about its
        centre by a factor that ``e`` sets (:class:`dislib.nn.Zoom`, the identity at the start). The
        paper's generator has to draw a digit's size from both codes together; with the zoom, ``e``
        can set it alone, so that ``z`` may describe the digit at the one size of the reference set.
    """

    specified_dim: int = 32
    unspecified_dim: int = 32
    reconstruction_weight: float = 1.0
    reference_label: int = 1
    set_mmd_weight: float = 0.0
    set_adversary_weight: float = 0.0
    set_adversary_steps: int = 5
    reference_swap_weight: float = 0.0
    reference_cycle_weight: float = 0.0
    target_adversary_weight: float = 0.0
    common_adversary_weight: float = 0.0
    regressor_steps: int = 5
    extension_start: int = 0
    target_zoom: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.specified_dim < 1 or self.unspecified_dim < 1:
            raise ValueError(f"code sizes must be positive, got e={self.specified_dim}, z={self.unspecified_dim}")
        if not 0 <= self.reference_label < self.num_classes:
            raise ValueError(f"reference_label must be one of the {self.num_classes} labels, "
                             f"got {self.reference_label}")
        if self.extension_start < 0:
            raise ValueError(f"extension_start is a number of steps (>= 0), got {self.extension_start}")
        for name in ("set_adversary_steps", "regressor_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is a number of updates per step (>= 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class RbVAEConfig(ReferenceConfig):
    """Settings of :class:`RbVAE`: those of :class:`ReferenceConfig` and

    Parameters
    ----------
    kl_weight
        Weight of the KL terms of Eq. 3 (1: the paper's bound).
    kl_z_weight
        **Extension, not in the paper** (1 = the paper): a further weight on the KL of ``z`` alone, of
        both sets. Above 1, a factor costs more nats in ``z`` than in ``e``, so a factor that either
        code could carry for the unlabelled images (the size, the width) is cheaper in ``e``; the
        digit, which the reference images can only take from ``z``, stays there.
    """

    kl_weight: float = 1.0
    kl_z_weight: float = 1.0


@dataclass(frozen=True)
class SRbVAEConfig(SymmetricKLConfig, ReferenceConfig):
    """Settings of :class:`SRbVAE`: those of :class:`ReferenceConfig`, and those of the discriminators
    ``d(x, z, e)`` and ``d'(x, z)`` and of the terms of Eq. 8 and Eq. 10 in
    :class:`dislib.models.base.ruiz.SymmetricKLConfig` (the code reconstructions are
    ``-log q(z|x) - log q(e|x)`` on generated images; the image reconstructions take
    ``reconstruction_weight``), and

    Parameters
    ----------
    bound_steps
        **Extension, not in the paper** (0 = the paper): for the first ``bound_steps`` steps the
        encoders, the generator and ``e_r`` minimise Rb-VAE's bound (Eq. 3, :func:`bound_parts`)
        instead of Eq. 8 plus Eq. 10; the discriminators learn from the first step, as in Algorithm 1.
        From a fresh start, the game of Eq. 8 tends to empty one code within the first 500 steps
        (the other then carries the image): the bound's two KLs keep both codes in use while the
        reference branch learns to draw from ``z``, and the game takes over from there.
    """

    bound_steps: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_discriminators()
        if self.bound_steps < 0:
            raise ValueError(f"bound_steps is a number of steps (>= 0), got {self.bound_steps}")


def bound_parts(terms: dict[str, Tensor], reconstruction_weight: float = 1.0, kl_weight: float = 1.0,
                kl_z_weight: float = 1.0) -> dict[str, Tensor]:
    r"""Eq. 3 in two parts, scalars: the reconstructions and the KLs, each the mean over the unlabelled
    images plus that over the reference images.

    .. math::
        \underbrace{\mathbb E_{p_u}\big[w_r\,\mathrm{NLL}(x \mid z, e)\big] + \mathbb E_{p_r}\big[w_r\,\mathrm{NLL}(x \mid z, e_r)\big]}_{\text{reconstruction}}
        + \underbrace{\mathbb E_{p_u}\big[w_{KL}(w_z \mathrm{KL}_z + \mathrm{KL}_e)\big] + \mathbb E_{p_r}\big[w_{KL} w_z\,\mathrm{KL}_z\big]}_{\text{kl}}

    All weights 1 is the paper (``w_z`` is Rb-VAE's extension ``kl_z_weight``).
    """
    w_rec, w_kl, w_z = reconstruction_weight, kl_weight, kl_z_weight
    return {
        "reconstruction": w_rec * (terms["reconstruction"].mean() + terms["reference_reconstruction"].mean()),
        "kl": w_kl * ((w_z * terms["kl_z"] + terms["kl_e"]).mean() + w_z * terms["reference_kl_z"].mean()),
    }


def rbvae_objective_parts(terms: dict[str, Tensor], config: RbVAEConfig) -> dict[str, Tensor]:
    """Eq. 3 in two parts, scalars that add up to :func:`rbvae_objective`: :func:`bound_parts` with the
    config's weights, and the extensions' parts where their weights are set (:func:`extension_parts`)."""
    c = config
    return {**bound_parts(terms, c.reconstruction_weight, c.kl_weight, c.kl_z_weight), **extension_parts(terms, c)}


def rbvae_objective(terms: dict[str, Tensor], config: RbVAEConfig) -> Tensor:
    r"""Eq. 3, a scalar: the mean bound over the unlabelled images plus that over the reference images.

    .. math::
        \mathbb E_{p_u}\big[w_{KL}(\mathrm{KL}_z + \mathrm{KL}_e) + w_r\,\mathrm{NLL}(x \mid z, e)\big]
        + \mathbb E_{p_r}\big[w_{KL}\,\mathrm{KL}_z + w_r\,\mathrm{NLL}(x \mid z, e_r)\big]

    (:func:`dislib.losses.reference_vae_bound` with weights; all weights 1 is the paper, ``kl_z_weight``
    multiplies ``KL_z``), plus the extensions' :func:`extension_parts` where they are set: the sum of
    :func:`rbvae_objective_parts`.
    """
    w_rec, w_kl, w_z = config.reconstruction_weight, config.kl_weight, config.kl_z_weight
    unlabelled = losses.reference_vae_bound(w_rec * terms["reconstruction"], w_kl * w_z * terms["kl_z"], w_kl * terms["kl_e"])
    reference = losses.reference_vae_bound(w_rec * terms["reference_reconstruction"], w_kl * w_z * terms["reference_kl_z"])
    return unlabelled.mean() + reference.mean() + sum(extension_parts(terms, config).values())


def extension_parts(terms: dict[str, Tensor], config: ReferenceConfig) -> dict[str, Tensor]:
    r"""The extensions' penalties as objective parts, each absent where its weight is 0 (the paper):
    ``{"set_mmd": w * MMD^2}`` with ``w = set_mmd_weight``,

    .. math::
        w \, \tfrac12 \sum_{y \in \{0, 1\}} \mathrm{MMD}^2\big(\{\mu_z(x) : y(x) = y\}, \{\mu_z(x)\}\big)

    over the posterior means of ``z`` of a batch's unlabelled and reference images
    (:func:`dislib.losses.class_mmd`), and ``{"set_adversarial": w' * L_adv}`` with
    ``w' = set_adversary_weight``, the mean over both sets of
    :math:`L_{adv} = -\tfrac12 \sum_{y} \log C(y \mid \mu_z(x))`
    (:func:`dislib.losses.uniform_target_cross_entropy`); the reference swap's ``reference_swap``
    and ``reference_cycle``; and the code regressors' ``{"target_adversarial": w_t * L_R}`` and
    ``{"common_adversarial": w_c * L_R'}``, the mean over the unlabelled images of
    :math:`L_R = \tfrac1D \sum_j R_j(\mu_z(x))^2` and :math:`L_{R'} = \tfrac1D \sum_j R'_j(\mu_e(x))^2`
    (:func:`dislib.losses.mean_target_squared_error`).
    """
    parts = {}
    if config.set_mmd_weight:
        parts["set_mmd"] = config.set_mmd_weight * terms["set_mmd"].mean()
    if config.set_adversary_weight and "set_adversarial" in terms:
        parts["set_adversarial"] = config.set_adversary_weight * terms["set_adversarial"].mean()
    if config.reference_swap_weight and "reference_swap" in terms:
        parts["reference_swap"] = config.reference_swap_weight * terms["reference_swap"].mean()
    if config.reference_cycle_weight and "reference_cycle" in terms:
        parts["reference_cycle"] = config.reference_cycle_weight * terms["reference_cycle"].mean()
    for code in ("target", "common"):
        weight = getattr(config, f"{code}_adversary_weight")
        if weight and f"{code}_adversarial" in terms:
            parts[f"{code}_adversarial"] = weight * terms[f"{code}_adversarial"].mean()
    return parts


def srbvae_objective_parts(terms: dict[str, Tensor], config: SRbVAEConfig) -> dict[str, Tensor]:
    r"""The encoders' and generator's objective (Eq. 8 plus Eq. 10) in its three kinds of terms, scalars
    whose sum is :func:`srbvae_objective`, each term averaged over its images:

    .. math::
        \underbrace{\mathbb E\big[d(x, z, e) - d(\hat x, \hat z, \hat e)\big]
        + \mathbb E\big[d'(x_r, z_r) - d'(\hat x_r, \hat z_r)\big]}_{\text{adversarial (Eq. 8)}}
        \underbrace{- \mathbb E \log p(x \mid z, e) - \mathbb E \log p(x_r \mid z_r, e_r)}_{\text{reconstruction}}
        \underbrace{- \mathbb E\big[\log q(\hat z \mid \hat x) + \log q(\hat e \mid \hat x)\big]
        - \mathbb E \log q(\hat z_r \mid \hat x_r)}_{\text{code reconstruction (Eq. 10)}}

    weighted by ``adversarial_weight``, ``reconstruction_weight`` and ``code_reconstruction_weight``
    (all 1: the paper), and the extensions' parts where their weights are set
    (:func:`extension_parts`).
    """
    c = config
    return {
        "adversarial": c.adversarial_weight * (terms["adversarial"].mean() + terms["reference_adversarial"].mean()),
        "reconstruction": c.reconstruction_weight
        * (terms["reconstruction"].mean() + terms["reference_reconstruction"].mean()),
        "code_reconstruction": c.code_reconstruction_weight
        * (terms["code_reconstruction"].mean() + terms["reference_code_reconstruction"].mean()),
        **extension_parts(terms, c),
    }


def srbvae_objective(terms: dict[str, Tensor], config: SRbVAEConfig) -> Tensor:
    """The encoders' and generator's objective, a scalar: Eq. 8 plus Eq. 10, the sum of
    :func:`srbvae_objective_parts`."""
    return sum(srbvae_objective_parts(terms, config).values())


def stroke_drawn(reconstruction: Tensor, x: Tensor, threshold: float = 0.5) -> Tensor:
    """Per image, the fraction of ``x``'s stroke pixels (channel mean above ``threshold``) that
    ``reconstruction`` draws (its channel mean above ``threshold`` there too); 1 for an image without
    stroke. On a reference digit (white one-pixel edges) 0 means the branch draws nothing."""
    stroke = x.float().mean(1) > threshold
    drawn = (reconstruction.float().mean(1) > threshold) & stroke
    count = stroke.flatten(1).sum(1)
    return torch.where(count > 0, drawn.flatten(1).sum(1) / count.clamp_min(1), torch.ones_like(count, dtype=torch.float32))


# the models --------------------------------------------------------------------------------
class ReferenceVAE(RuizModel):
    """What Rb-VAE and sRb-VAE share: ``q(e|x)``, ``q(z|x)``, ``G(z, e)``, ``e_r``, batches, evaluation.

    ``encode(x)`` returns ``q(e|x)`` (mean and log-variance) as the specified code and ``q(z|x)``
    as the unspecified one, for any image: the model reads ``e_r`` instead only where it knows an
    image is a reference image (training, :meth:`evaluate`). ``decode(e, z)`` is ``G(z, e)``.
    """

    Config = ReferenceConfig
    specified_symbol = "e"

    def __init__(self, config: ReferenceConfig) -> None:
        super().__init__(config)
        c = config
        self.specified_dim = c.specified_dim
        self.unspecified_dim = c.unspecified_dim
        self.specified_encoder = self.make_encoder(c.specified_dim)
        self.unspecified_encoder = self.make_encoder(c.unspecified_dim)
        self.decoder = self.make_generator(c.specified_dim + c.unspecified_dim)
        self.reference_code = nn.Parameter(torch.zeros(c.specified_dim))
        self.zoom = Zoom(c.specified_dim) if c.target_zoom else None
        self.optimizers["autoencoder"] = self.adam(
            [*self.specified_encoder.parameters(), *self.unspecified_encoder.parameters(),
             *self.decoder.parameters(), self.reference_code, *(self.zoom.parameters() if self.zoom else [])]
        )
        if c.set_adversary_weight:
            self.set_classifier = CodeClassifier(c.unspecified_dim, 2, hidden=64)
            self.optimizers["set_classifier"] = self.adam(list(self.set_classifier.parameters()))
        self.regressors = nn.ModuleDict({name: CodeRegressor(reads, predicts, hidden=64) for name, weight, reads, predicts in (
            ("target_regressor", c.target_adversary_weight, c.unspecified_dim, c.specified_dim),
            ("common_regressor", c.common_adversary_weight, c.specified_dim, c.unspecified_dim)) if weight})
        for name, regressor in self.regressors.items():
            self.optimizers[name] = self.adam(list(regressor.parameters()))
        self._sets: tuple[Tensor, Tensor, Tensor] | None = None

    # the shared interface ----------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        """``q(e|x)`` as the specified code and ``q(z|x)`` as the unspecified one (means and log-variances)."""
        self.check_images(x)
        mu_e, logvar_e = self.specified_encoder(x)
        mu_z, logvar_z = self.unspecified_encoder(x)
        return Codes(specified=mu_e, unspecified=mu_z, unspecified_logvar=logvar_z, specified_logvar=logvar_e)

    def decoder_output(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        """``G(z, e)``'s pre-activation output, zoomed by ``e`` where ``target_zoom`` is set."""
        output = super().decoder_output(specified, unspecified)
        return output if self.zoom is None else self.zoom(output, specified)

    @torch.no_grad()
    def zoom_factors(self, x: Tensor) -> Tensor:
        """``[N]``: the factor by which ``G`` zooms its output for each image of ``x``, read from the mean
        of its ``e`` (``target_zoom``; above 1 draws smaller); ones for a model without the zoom."""
        specified = self.encode(x).specified
        if self.zoom is None:
            return torch.ones(len(x), device=specified.device)
        return self.zoom.factor(specified)

    def reference_codes(self, n: int) -> Tensor:
        """``e_r`` repeated ``n`` times, ``[n, specified_dim]``: the target code of every reference image."""
        return self.reference_code.expand(n, -1)

    @torch.no_grad()
    def reference_stroke(self, x_reference: Tensor) -> float:
        """How much of the reference images' stroke the reference branch draws: the mean of
        :func:`stroke_drawn` over ``x_reference``, each rebuilt from its mean of ``z`` and ``e_r``."""
        if len(x_reference) == 0:
            raise ValueError("reference_stroke needs at least one reference image, got none: pass the reference "
                             "set's images, e.g. data.images[data.labels == 1]")
        unspecified = self.encode(x_reference).unspecified
        rebuilt = self.decode(self.reference_codes(len(x_reference)), unspecified)
        return stroke_drawn(rebuilt, x_reference).mean().item()

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

    @staticmethod
    def kl_terms(posterior: dict[str, Tensor], n: int) -> dict[str, Tensor]:
        """Per image, in nats: ``kl_e`` and ``kl_z``, ``KL(q || N(0, I))`` of the ``n`` unlabelled images'
        codes, and ``reference_kl_z`` of the reference images' ``z`` (their ``e`` is ``e_r``, without a
        KL), from :meth:`posterior_samples`."""
        kl_z = losses.kl_normal_standard(posterior["mu_z"], posterior["logvar_z"])
        return {"kl_e": losses.kl_normal_standard(posterior["mu_e"], posterior["logvar_e"]),
                "kl_z": kl_z[:n], "reference_kl_z": kl_z[n:]}

    def reconstruction_terms(
        self, x: Tensor, x_reference: Tensor, posterior: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Per image, at the posterior samples: ``reconstruction``, ``-log p(x | z, e)`` of the unlabelled
        images, and ``reference_reconstruction``, ``-log p(x_r | z_r, e_r)`` of the reference ones, in
        nats; and ``reference_stroke_drawn``, the fraction of each reference digit's stroke that its
        reconstruction draws (:func:`stroke_drawn`; a number to watch, not a loss); with the
        extension's ``set_mmd_weight``, ``set_mmd``, :func:`dislib.losses.class_mmd` between the
        means of ``z`` of the two sets (one number, repeated per unlabelled image); with
        ``set_adversary_weight``, ``set_adversarial``, the set classifier's cross-entropy to the
        uniform target on each image's mean of ``z`` (both sets, unlabelled first)."""
        c = self.config
        e = torch.cat([posterior["e"], self.reference_codes(len(x_reference)).to(posterior["e"].dtype)])
        output = self.decoder_output(e, posterior["z"])
        nll = losses.image_nll(output, torch.cat([x, x_reference]), c.likelihood, c.pixel_scale)
        drawn = stroke_drawn(losses.mean_image(output[len(x) :].detach(), c.likelihood), x_reference)
        terms = {"reconstruction": nll[: len(x)], "reference_reconstruction": nll[len(x) :], "reference_stroke_drawn": drawn}
        if c.set_mmd_weight:
            is_reference = torch.arange(len(e), device=e.device) >= len(x)
            terms["set_mmd"] = losses.class_mmd(posterior["mu_z"], is_reference.long()).expand(len(x))
        extending = (c.set_adversary_weight or self.regressors or c.reference_swap_weight
                     or c.reference_cycle_weight) and bool(self.steps_done >= c.extension_start)  # one device sync
        if extending and c.set_adversary_weight:
            terms["set_adversarial"] = losses.uniform_target_cross_entropy(self.set_classifier(posterior["mu_z"]))
        if extending and "target_regressor" in self.regressors:
            prediction = self.regressors["target_regressor"](posterior["mu_z"][: len(x)])
            terms["target_adversarial"] = losses.mean_target_squared_error(prediction)
        if extending and "common_regressor" in self.regressors:
            prediction = self.regressors["common_regressor"](posterior["mu_e"])
            terms["common_adversarial"] = losses.mean_target_squared_error(prediction)
        if extending and (c.reference_swap_weight or c.reference_cycle_weight):
            z = posterior["z"][: len(x)]
            swapped = losses.location(self.decoder_output(self.reference_codes(len(x)).to(z.dtype), z), c.likelihood)
            terms["reference_swap"] = losses.image_mmd(swapped, x_reference).expand(len(x))
            mu_z, logvar_z = self.unspecified_encoder(swapped)
            terms["reference_cycle"] = losses.gaussian_code_nll(z.detach(), mu_z, logvar_z)
        return terms

    def set_adversary_update(self, x: Tensor, x_reference: Tensor) -> dict[str, Tensor]:
        """The extension's second player (``set_adversary_weight``): ``set_adversary_steps`` updates of
        the set classifier on the current posterior means of ``z`` of the batch, labelled 1 for a
        reference image; ``{}`` without the extension, else its last loss, ``set_classifier``."""
        c = self.config
        if not c.set_adversary_weight:
            return {}
        with torch.no_grad(), self.autocast():
            mu_z = self.unspecified_encoder(torch.cat([x, x_reference]))[0].float()
        is_reference = (torch.arange(len(mu_z), device=mu_z.device) >= len(x)).long()
        for _ in range(c.set_adversary_steps):
            loss = nn.functional.cross_entropy(self.set_classifier(mu_z), is_reference)
            self.optimizer_step("set_classifier", loss)
        return {"set_classifier": loss}

    def regressor_updates(self, x: Tensor) -> dict[str, Tensor]:
        """The extension's code regressors (``target_adversary_weight``, ``common_adversary_weight``):
        ``regressor_steps`` updates of each on the current posterior means of the unlabelled images,
        the target regressor from ``z`` to ``e``, the common regressor from ``e`` to ``z``, the code
        it predicts standardised over the batch. Returns each one's last loss, ``target_regressor``
        and ``common_regressor`` (1: it reads nothing, 0: it reads its code exactly; ``{}`` for the
        paper's models)."""
        if not self.regressors:
            return {}
        with torch.no_grad(), self.autocast():
            means = {"z": self.unspecified_encoder(x)[0].float(), "e": self.specified_encoder(x)[0].float()}
        reads = {"target_regressor": ("z", "e"), "common_regressor": ("e", "z")}
        losses_ = {}
        for name, regressor in self.regressors.items():
            features, target = (means[code] for code in reads[name])
            target = losses.standardised(target)
            for _ in range(self.config.regressor_steps):
                losses_[name] = (regressor(features) - target).pow(2).mean()
                self.optimizer_step(name, losses_[name])
        return losses_

    def objective_parts(self, x: Tensor, x_reference: Tensor) -> dict[str, Tensor]:
        """The parts of the encoders' and generator's objective on one batch (scalars that add up to it)."""
        raise NotImplementedError

    def diagnose(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Each part of the encoders' and generator's objective (:meth:`objective_parts`): its share of
        their gradient on ``batch`` (:func:`dislib.models.base.gradient_shares`), which says whether a
        term moves training at all, whatever its value."""
        x, x_reference = self.check_batch(batch)
        params = [p for group in self.optimizers["autoencoder"].param_groups for p in group["params"]]
        return gradient_shares(self.objective_parts(x, x_reference), params)

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
            nll = losses.image_nll(self.decoder_output(e, z), x, c.likelihood, c.pixel_scale)
            kl_e = losses.kl_normal_standard(codes.specified, codes.specified_logvar)
            reference = reference.squeeze(1)
            sums["reconstruction"] += nll[~reference].sum().item()
            sums["reference_reconstruction"] += nll[reference].sum().item()
            sums["kl_e"] += kl_e[~reference].sum().item()
            sums["kl_z"] += losses.kl_normal_standard(codes.unspecified, codes.unspecified_logvar).sum().item()
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
    PRESETS = with_split_preset(ruiz_presets(RbVAEConfig), **NARROW_COMMON)

    def bound_terms(self, x: Tensor, x_reference: Tensor) -> dict[str, Tensor]:
        """The per-image terms of Eq. 3 at one posterior sample: ``reconstruction``, ``kl_e``, ``kl_z``
        of the unlabelled images, ``reference_reconstruction`` and ``reference_kl_z`` of the
        reference images (their ``e`` is ``e_r``, without a KL), in nats, and ``reference_stroke_drawn``."""
        posterior = self.posterior_samples(x, x_reference)
        return {**self.reconstruction_terms(x, x_reference, posterior), **self.kl_terms(posterior, len(x))}

    def objective_parts(self, x: Tensor, x_reference: Tensor) -> dict[str, Tensor]:
        """:func:`rbvae_objective_parts` on one batch: the reconstructions and the KLs."""
        return rbvae_objective_parts(self.bound_terms(x, x_reference), self.config)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sec. 4.2: one SGVB step on Eq. 3 for the encoders, the generator and ``e_r``."""
        x, x_reference = self.check_batch(batch)
        with self.autocast():
            terms = self.bound_terms(x, x_reference)
            objective = rbvae_objective(terms, self.config)
        self.optimizer_step("autoencoder", objective)
        adversary = self.set_adversary_update(x, x_reference) | self.regressor_updates(x)
        self.steps_done += 1
        return self.report({**terms, "objective": objective, **adversary})


@register
class SRbVAE(ReferenceVAE):
    """sRb-VAE: the symmetric KL of Eq. 4 through two discriminators, Algorithm 1 (Sec. 4.3, App. B).

    ``d(x, z, e)`` and ``d'(x, z)`` are :class:`LatentDiscriminator` s, each with its own Adam.
    """

    name = "srbvae"
    Config = SRbVAEConfig
    PRESETS = with_split_preset(ruiz_presets(SRbVAEConfig, RUIZ_LAPTOP_DISCRIMINATORS, **RUIZ_LAPTOP_SYMMETRIC),
                                **NARROW_COMMON, **BOUND_START, **LIGHT_CODE_RECONSTRUCTION)

    def __init__(self, config: SRbVAEConfig) -> None:
        super().__init__(config)
        c = config
        self.discriminator = self.make_discriminator((c.unspecified_dim, c.specified_dim))  # d(x, z, e)
        self.reference_discriminator = self.make_discriminator((c.unspecified_dim,))  # d'(x, z)
        self.optimizers["discriminator"] = self.adam(list(self.discriminator.parameters()))
        self.optimizers["reference_discriminator"] = self.adam(list(self.reference_discriminator.parameters()))

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
        mu_e, logvar_e = self.specified_encoder(x_prior)
        mu_z, logvar_z = self.unspecified_encoder(generated)
        code_nll = losses.gaussian_code_nll(z_prior_all, mu_z, logvar_z)
        terms = {
            "adversarial": losses.symmetric_kl_adversarial(d_q, d_p),
            "reference_adversarial": losses.symmetric_kl_adversarial(d_q_reference, d_p_reference),
            **self.reconstruction_terms(x, x_reference, posterior),
            "code_reconstruction": code_nll[:n] + losses.gaussian_code_nll(e_prior, mu_e, logvar_e),
            "reference_code_reconstruction": code_nll[n:],
            **self.kl_terms(posterior, n),
        }
        return terms, {k: v.detach() for k, v in judged.items()}

    def phase_parts(self, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """The objective's parts at this step: :func:`srbvae_objective_parts` (the paper), or during the
        extension's first ``bound_steps`` steps :func:`bound_parts` (Eq. 3) and the extensions' parts."""
        c = self.config
        if c.bound_steps and bool(self.steps_done < c.bound_steps):  # one device sync, only with the extension
            return {**bound_parts(terms, c.reconstruction_weight), **extension_parts(terms, c)}
        return srbvae_objective_parts(terms, c)

    def objective_parts(self, x: Tensor, x_reference: Tensor) -> dict[str, Tensor]:
        """:meth:`phase_parts` on one batch: the adversarial terms, the image and the code
        reconstructions (Rb-VAE's bound during the extension's ``bound_steps``)."""
        return self.phase_parts(self.autoencoder_terms(x, x_reference)[0])

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

        # lines 1-14: the encoders (phi), the generator (theta) and e_r on Eq. 8 + Eq. 10 (Eq. 3 during bound_steps)
        for d in players:
            d.requires_grad_(False)
        with self.autocast():
            terms, judged = self.autoencoder_terms(x, x_reference)
            objective = sum(self.phase_parts(terms).values())
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

        adversary = self.set_adversary_update(x, x_reference) | self.regressor_updates(x)  # the extensions' players, where set
        self.steps_done += 1
        return self.report({**terms, "objective": objective, "discriminator": discriminator_loss,
                            "reference_discriminator": reference_discriminator_loss, **adversary})
