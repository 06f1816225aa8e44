"""Loss terms as small pure functions.

Each function returns one value per sample (shape ``[N]``) so that a training step reads as a
weighted sum of named terms, ``loss = recon.mean() + beta * kl.mean()``. The docstring of each
carries the equation it implements and where it comes from.

Every loss computes in float32 (:func:`float32`), even inside a bfloat16 autocast region: the
networks' forward passes may run narrower (:mod:`dislib.precision`), their losses do not.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Loss = TypeVar("Loss", bound=Callable)


def _widened(value: object) -> object:
    if isinstance(value, Tensor) and value.is_floating_point() and value.dtype != torch.float64:
        return value.float()
    return value


def float32(loss: Loss) -> Loss:
    """Run ``loss`` in float32: its floating tensor arguments cast up (float64 kept), autocast off inside."""

    @functools.wraps(loss)
    def wrapped(*args: object, **kwargs: object) -> object:
        device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), "cpu")
        with torch.autocast(device, enabled=False):
            return loss(*map(_widened, args), **{k: _widened(v) for k, v in kwargs.items()})

    return wrapped  # type: ignore[return-value]


def _per_sample(t: Tensor) -> Tensor:
    return t.flatten(1).sum(1)


@float32
def kl_normal_standard(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""KL divergence from a diagonal Gaussian to the standard normal, in nats.

    .. math::
        \mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0, I)\big)
        = \tfrac12 \sum_j \big(\sigma_j^2 + \mu_j^2 - 1 - \log \sigma_j^2\big)

    Kingma & Welling (2014), Appendix B; the closed form behind Mathieu et al. (2016) Eq. 4
    and Zheng & Sun (2019) Eq. 3.
    """
    return _per_sample(kl_normal_standard_per_dimension(mu, logvar))


@float32
def kl_normal_standard_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""The terms of :func:`kl_normal_standard` before the sum over ``j``, shape ``[N, D]``:
    :math:`\tfrac12 (\sigma_j^2 + \mu_j^2 - 1 - \log \sigma_j^2)` nats in dimension ``j``."""
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar)


@float32
def per_unit_vae_terms(
    reconstruction: Tensor, kl: Tensor, reconstruction_weight: float, kl_weight: float, pixels: int, code_dim: int
) -> Tensor:
    r"""A VAE's two terms, each per unit of what it sums over, averaged over the batch: a scalar.

    .. math::
        rac{w_{rec}}{P}\,\overline{ig[-\log p(x \mid \cdot)ig]}
        + rac{w_{KL}}{D_z}\,\overline{\mathrm{KL}ig(q(z\mid x)\,\|\,\mathcal N(0, I)ig)}

    with ``P`` pixels (or coordinates) per input and ``D_z`` dimensions of ``z``: Zheng & Sun (2019,
    Sec. 4.2) scale their weights by "the number of image pixels" and "the dimension of z", and the
    authors' code takes the pixel-mean error and the dimension-mean KL (their Eqs. 2-3). Their model
    and the cVAE-GAN baseline share it.
    """
    return reconstruction_weight / pixels * reconstruction.mean() + kl_weight / code_dim * kl.mean()


@float32
def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    r"""Negative log-likelihood of images under independent Bernoulli pixels, in nats.

    .. math::
        -\log p(x\mid \ell) = -\sum_i \big[x_i \log \sigma(\ell_i) + (1 - x_i)\log(1-\sigma(\ell_i))\big]

    Written with logits :math:`\ell` for numerical stability; grey levels in ``[0, 1]`` are allowed
    (the "continuous Bernoulli" normaliser is left out, as in Kingma & Welling 2014).
    """
    return _per_sample(F.binary_cross_entropy_with_logits(logits, target, reduction="none"))


@float32
def gaussian_nll(mean: Tensor, target: Tensor, std: float) -> Tensor:
    r"""Negative log-likelihood of images under independent Gaussian pixels of fixed std, in nats.

    .. math::
        -\log p(x\mid m) = \sum_i \Big[\frac{(x_i - m_i)^2}{2\sigma^2} + \log\sigma
        + \tfrac12\log 2\pi\Big]
    """
    sq = (target - mean).pow(2) / (2.0 * std**2)
    return _per_sample(sq + math.log(std) + 0.5 * math.log(2 * math.pi))


@float32
def laplace_nll(mean: Tensor, target: Tensor, scale: float) -> Tensor:
    r"""Negative log-likelihood of images under independent Laplace pixels of fixed scale, in nats.

    .. math::
        -\log p(x\mid m) = \sum_i \Big[\frac{|x_i - m_i|}{b} + \log 2b\Big]

    An L1 reconstruction error in units of ``b``: Ruiz et al. (2019, App. D) use ``b = 0.01`` on
    images in ``[-1, 1]``, which is ``b = 0.005`` on dislib's ``[0, 1]`` pixels.
    """
    return _per_sample((target - mean).abs() / scale + math.log(2.0 * scale))


LIKELIHOODS = ("bernoulli", "gaussian", "laplace", "laplace-linear")


def check_likelihood(likelihood: str, scale: float) -> None:
    """Raise a clear error for an unknown likelihood or a non-positive pixel scale."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if likelihood != "bernoulli" and not scale > 0:
        raise ValueError(f"the {likelihood} likelihood needs a pixel scale > 0, got {scale}")


@float32
def image_nll(output: Tensor, target: Tensor, likelihood: str, scale: float = 0.1) -> Tensor:
    r"""``-log p(x | output)`` per image, in nats, for the decoder's pre-activation ``output``.

    .. math::
        -\log p(x \mid \ell) = \begin{cases}
        \text{Bernoulli with logits } \ell & \texttt{"bernoulli"} \\
        \text{Gaussian, mean } \sigma(\ell), \text{ std } \texttt{scale} & \texttt{"gaussian"} \\
        \text{Laplace, location } \sigma(\ell), \text{ scale } \texttt{scale} & \texttt{"laplace"} \\
        \text{Laplace, location } \ell, \text{ scale } \texttt{scale} & \texttt{"laplace-linear"}
        \end{cases}

    Every image lies in ``[0, 1]``; the location is :func:`location` (a ``tanh`` output on
    ``[-1, 1]`` is the sigmoid's map: :math:`\tanh(a) = 2\sigma(2a) - 1`). See
    :func:`bernoulli_nll`, :func:`gaussian_nll` and :func:`laplace_nll` for each equation.
    """
    check_likelihood(likelihood, scale)
    if likelihood == "bernoulli":
        return bernoulli_nll(output, target)
    mean = location(output, likelihood)
    return gaussian_nll(mean, target, scale) if likelihood == "gaussian" else laplace_nll(mean, target, scale)


def location(output: Tensor, likelihood: str) -> Tensor:
    r"""The mean (Laplace: the location) of ``p(x | output)``: :math:`\sigma(\ell)`, except for
    ``"laplace-linear"``, whose location is the pre-activation :math:`\ell` itself.

    Why a linear location: the gradient of :math:`|x - m| / b` is :math:`\pm 1/b` however small the
    error, so a black pixel (``x = 0``) pushes a squashed location :math:`\sigma(\ell) > 0` down
    at a constant rate for ever; the pre-activations of the background run off to
    :math:`-\infty`, the output saturates and carries no gradient. On sparse images (edge maps)
    the generator then draws black images whatever its codes (Ruiz et al.'s chapter shows the run).
    A linear location stops at the data: a pixel on either side of ``x`` is pushed back to it.
    """
    return output if likelihood == "laplace-linear" else torch.sigmoid(output)


def mean_image(output: Tensor, likelihood: str) -> Tensor:
    """The image a decoder shows for its pre-activation ``output``: :func:`location`, in ``[0, 1]``."""
    mean = location(output, likelihood)
    return mean.clamp(0.0, 1.0) if likelihood == "laplace-linear" else mean


@float32
def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""The discriminator's side of the GAN game (Goodfellow et al. 2014, Eq. 1), to minimise.

    .. math::
        \mathcal L_D = -\log D(x) - \log\big(1 - D(G(z))\big),
        \qquad D = \sigma(\text{logit})

    Since :math:`-\log\sigma(a) = \mathrm{softplus}(-a)` and :math:`-\log(1-\sigma(a)) =
    \mathrm{softplus}(a)`, this is ``softplus(-real) + softplus(fake)``.
    """
    return F.softplus(-real_logits) + F.softplus(fake_logits)


@float32
def generator_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    r"""The non-saturating generator loss (Goodfellow et al. 2014, Sec. 3).

    .. math:: \mathcal L_G = -\log D(G(z)) = \mathrm{softplus}(-\text{logit})

    Same fixed point as the minimax loss :func:`generator_loss_minimax`, but strong gradients
    early in training when the discriminator rejects every sample.
    """
    return F.softplus(-fake_logits)


@float32
def generator_loss_minimax(fake_logits: Tensor) -> Tensor:
    r"""The generator's side of the original minimax game (Goodfellow et al. 2014, Eq. 1).

    .. math:: \mathcal L_G = \log\big(1 - D(G(z))\big) = -\mathrm{softplus}(\text{logit})

    Kept to show in the book why it saturates: its gradient vanishes when ``D(G(z))`` is near 0.
    """
    return -F.softplus(fake_logits)


@float32
def hinge_discriminator_loss(real_logits: Tensor, *fake_logits: Tensor) -> Tensor:
    r"""The discriminator's hinge loss (Lim & Ye 2017; Miyato et al. 2018, Eq. 16), to minimise.

    .. math::
        \mathcal L_D = \max(0, 1 - D(x)) + \sum_k \max(0, 1 + D(G_k))

    with :math:`D` the raw logit and one term per kind of fake, each counted once: Zheng & Sun's
    pixel discriminator (Eq. 10, trained with this loss in their public code) and the cVAE-GAN's
    judge reconstructions and samples, ``hinge_discriminator_loss(real, reconstructed, sampled)``.
    """
    if not fake_logits:
        raise ValueError("the hinge loss needs the logits of at least one kind of fake")
    return F.relu(1.0 - real_logits) + sum(F.relu(1.0 + fake) for fake in fake_logits)


@float32
def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    r"""The generator's side of the hinge game (Miyato et al. 2018, Eq. 17): :math:`\mathcal L_G = -D(G(z))`."""
    return -fake_logits


@float32
def uniform_target_cross_entropy(logits: Tensor) -> Tensor:
    r"""Cross-entropy of a classifier's prediction to the uniform target :math:`1/C`.

    .. math:: \mathcal L_{adv} = -\frac1C \sum_{k=1}^{C} \log C(k \mid z)

    Zheng & Sun (2019), Eq. 5: the encoder minimises it so that a classifier reading ``z`` can do
    no better than chance. Its minimum, :math:`\log C`, is reached by the uniform prediction.
    """
    return -torch.log_softmax(logits, dim=1).mean(1)


def standardised(codes: Tensor) -> Tensor:
    r"""Each dimension of a batch of codes ``[N, D]`` at mean 0 and standard deviation 1 over the batch,
    :math:`(c - \bar c) / (s_c + 10^{-6})`, so that shrinking a direction does not hide it."""
    return (codes - codes.mean(0)) / (codes.std(0) + 1e-6)


def mean_target_squared_error(predictions: Tensor) -> Tensor:
    r"""Squared distance of a regressor's predictions of a standardised target from its mean, 0.

    .. math:: \mathcal L_{adv} = \frac1D \sum_{j=1}^{D} R_j(z)^2

    The regression form of :func:`uniform_target_cross_entropy`: a regressor ``R`` that predicts
    a target standardised over the batch (:func:`standardised`: mean 0, standard deviation 1 in each
    of its ``D`` dimensions) from a code that knows nothing of it can do no better than predict its mean, so the
    code's encoder minimises this to leave the regressor nothing to read. Not in any of the three
    papers of this book; used by the Ruiz et al. chapter's target regressor.
    """
    return predictions.pow(2).mean(1)


BANDWIDTHS = (0.5, 1.0, 2.0, 4.0)


def _gaussian_kernels(squared: Tensor, dim: int, bandwidths: tuple[float, ...]) -> Tensor:
    return sum(torch.exp(-squared / (2.0 * h**2 * dim)) for h in bandwidths)


@float32
def class_mmd(codes: Tensor, labels: Tensor, marginals: bool = True, bandwidths: tuple[float, ...] = BANDWIDTHS) -> Tensor:
    r"""How much the distribution of a code depends on the class: the mean over classes of the
    squared maximum mean discrepancy between the codes of one class and those of the whole batch.

    .. math::
        \mathcal L_{MMD} = \frac{1}{|K|} \sum_{k \in K} \mathrm{MMD}^2\big(\{c_i : y_i = k\}, \{c_i\}\big),
        \qquad \mathrm{MMD}^2(A, B) = \mathbb E\,k(a, a') + \mathbb E\,k(b, b') - 2\,\mathbb E\,k(a, b)

    with :math:`k(u, v) = \sum_h \exp\big(-\lVert u - v\rVert^2 / (2 h^2 d)\big)` on ``d``
    dimensions, and the biased (V-statistic) estimator of Gretton et al. (2012). ``K`` holds the
    classes with at least two codes in the batch. The codes are standardised with the batch's mean
    and standard deviation first, so that shrinking a direction does not hide it, and the
    bandwidths ``h`` are relative to that unit scale. With ``marginals``, the mean of the same
    discrepancy over each dimension alone (``d = 1``) is added: a kernel on all dimensions at once
    hardly notices a small shift in each of many dimensions, which a probe adds up. The
    Variational Fair Autoencoder (Louizos et al. 2016, Sec. 2.3) removes a nuisance variable from
    a latent code with an MMD penalty; it is not in any of the three papers of this book.
    """
    standard = standardised(codes)
    classes, counts = labels.unique(return_counts=True)
    kept = classes[counts >= 2]
    if len(kept) == 0:
        return codes.new_zeros(())
    within = (labels[:, None] == kept[None]).to(codes.dtype)
    within = within / within.sum(0)  # [N, K]: the average over each class
    everyone = torch.full_like(standard[:, 0], 1.0 / len(standard))  # [N]: the average over the batch
    squared = (standard[:, None] - standard[None]).pow(2)  # [N, N, D]

    def per_class(kernel: Tensor) -> Tensor:  # kernel [N, N, M] -> MMD^2 [K, M]
        return (torch.einsum("ak,abm,bk->km", within, kernel, within)
                + torch.einsum("a,abm,b->m", everyone, kernel, everyone)
                - 2.0 * torch.einsum("ak,abm,b->km", within, kernel, everyone))

    total = per_class(_gaussian_kernels(squared.sum(-1, keepdim=True), codes.shape[1], bandwidths)).mean()
    if marginals:
        total = total + per_class(_gaussian_kernels(squared, 1, bandwidths)).mean()
    return total


@float32
def image_mmd(images: Tensor, other: Tensor, bandwidths: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8)) -> Tensor:
    r"""How far apart two sets of images lie as distributions: the squared maximum mean discrepancy
    between them, on images averaged over 2x2 pixel blocks (so that an edge one pixel off still
    counts as near), a scalar.

    .. math::
        \mathrm{MMD}^2(A, B) = \mathbb E\,k(a, a') + \mathbb E\,k(b, b') - 2\,\mathbb E\,k(a, b), \qquad
        k(u, v) = \sum_h \exp\big(-\lVert u - v\rVert^2 / (2 h^2 d)\big)

    on ``d`` pixel values in ``[0, 1]`` (the biased estimator of Gretton et al. 2012; bandwidths in
    pixel units, a root mean square difference of 0.1 to 0.8). Not in the three papers: the
    reference swap of :mod:`dislib.models.ruiz`, an extension, compares images decoded from
    ``e_r`` with the reference images through it.
    """
    if len(images) == 0 or len(other) == 0 or images.shape[1:] != other.shape[1:]:
        raise ValueError(f"image_mmd compares two non-empty sets of images of one shape, got {tuple(images.shape)} "
                         f"and {tuple(other.shape)}")
    a, b = (F.avg_pool2d(x, 2).flatten(1) if x.shape[-1] >= 2 else x.flatten(1) for x in (images, other))
    both = torch.cat([a, b])
    squared = torch.cdist(both, both).pow(2)
    kernel = _gaussian_kernels(squared, both.shape[1], bandwidths)
    n = len(a)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2.0 * kernel[:n, n:].mean()


@float32
def mahalanobis_distances(codes: Tensor, means: Tensor, log_precisions: Tensor) -> Tensor:
    r"""Half the squared Mahalanobis distance of every code to every Gaussian of a mixture, ``[N, K]``.

    .. math::
        d_k(s) = \tfrac12 (s - \mu_k)^\top \Sigma_k^{-1} (s - \mu_k)
               = \tfrac12 \sum_j \lambda_{kj}\,(s_j - \mu_{kj})^2,
        \qquad \Sigma_k = \mathrm{diag}(1 / \lambda_k)

    The distance of Zheng & Sun (2019), Eqs. 7-8 (after Wan et al. 2018). ``codes`` are ``[N, D]``,
    ``means`` and ``log_precisions`` (:math:`\log\lambda_{kj}`, which must be finite) ``[K, D]``.
    The differences are formed one by one, not expanded as :math:`s^2 - 2 s\mu + \mu^2`, which
    loses every digit to cancellation for large codes.
    """
    return 0.5 * (log_precisions.exp() * (codes[:, None, :] - means).pow(2)).sum(-1)


@float32
def gm_logits(codes: Tensor, means: Tensor, log_precisions: Tensor, labels: Tensor | None = None, margin: float = 0.0) -> Tensor:
    r"""The log-posterior of each class under the Gaussian mixture, up to a constant, ``[N, K]``.

    .. math::
        \ell_k(s) = -\big(1 + \alpha\,[k = y]\big)\, d_k(s) - \tfrac12 \log\lvert\Sigma_k\rvert,
        \qquad -\tfrac12 \log\lvert\Sigma_k\rvert = \tfrac12 \sum_j \log\lambda_{kj}

    With equal class priors :math:`p(k) = 1/C`, :math:`\mathrm{softmax}_k\,\ell_k(s) = p(k \mid s)`
    when :math:`\alpha = 0`; the margin :math:`\alpha \ge 0` (Wan et al. 2018, the L-GM loss)
    enlarges the distance to the true class ``labels`` (needed only when ``margin > 0``). The
    argmax over ``k`` of the logits without margin is the mixture's own classifier.
    """
    distances = mahalanobis_distances(codes, means, log_precisions)
    if margin:
        if labels is None:
            raise ValueError("a margin enlarges the distance to the true class: pass the labels")
        distances = distances * (1.0 + margin * F.one_hot(labels, len(means)).to(distances.dtype))
    return 0.5 * log_precisions.sum(1) - distances


@float32
def gm_likelihood_loss(codes: Tensor, labels: Tensor, means: Tensor, log_precisions: Tensor) -> Tensor:
    r"""The likelihood regularisation of a code under its class's Gaussian (Zheng & Sun 2019, Eq. 7).

    .. math::
        \mathcal L_{lkd} = d_y(s) + \tfrac12 \log\lvert\Sigma_y\rvert
        = \tfrac12 \sum_j \lambda_{yj} (s_j - \mu_{yj})^2 - \tfrac12 \sum_j \log \lambda_{yj}

    :math:`-\log \mathcal N(s; \mu_y, \Sigma_y)` without the constant :math:`\tfrac D2 \log 2\pi`:
    the KL divergence from a delta posterior at ``s`` to the class prior, up to constants (App. A.2).
    """
    own = log_precisions[labels]
    return 0.5 * (own.exp() * (codes - means[labels]).pow(2)).sum(1) - 0.5 * own.sum(1)


@float32
def gm_classification_loss(
    codes: Tensor, labels: Tensor, means: Tensor, log_precisions: Tensor, margin: float = 0.0
) -> Tensor:
    r"""Cross-entropy of the mixture's class posterior with margin (Zheng & Sun 2019, Eq. 8).

    .. math::
        \mathcal L_{cls} = -\log \frac{\exp \ell_y(s)}{\sum_k \exp \ell_k(s)},
        \qquad \ell_k(s) = -\big(1 + \alpha\,[k = y]\big)\, d_k(s) - \tfrac12 \log\lvert\Sigma_k\rvert

    (see :func:`gm_logits`). Computed with a log-softmax, which subtracts the largest logit before
    exponentiating: the authors' code forms :math:`\exp(-d_k)` itself and underflows to
    :math:`0/0` once codes lie a few tens of units from every mean.
    """
    return F.cross_entropy(gm_logits(codes, means, log_precisions, labels, margin), labels, reduction="none")


@float32
def gm_loss(
    codes: Tensor, labels: Tensor, means: Tensor, log_precisions: Tensor, margin: float = 0.0, likelihood_weight: float = 0.1
) -> Tensor:
    r"""The Gaussian-mixture loss that trains ``E_s`` and the mixture (Zheng & Sun 2019, Eq. 9).

    .. math:: \mathcal L_{GM} = \mathcal L_{cls} + \lambda_{lkd}\, \mathcal L_{lkd}

    :func:`gm_classification_loss` (Eq. 8) plus :func:`gm_likelihood_loss` (Eq. 7) weighted by
    :math:`\lambda_{lkd}` (0.1 in the authors' code).
    """
    classification = gm_classification_loss(codes, labels, means, log_precisions, margin)
    return classification + likelihood_weight * gm_likelihood_loss(codes, labels, means, log_precisions)


@float32
def mixture_moments(means: Tensor, log_precisions: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean and log-precision ``[D]`` of the one diagonal Gaussian with the mixture's mean and variance.

    .. math::
        \bar\mu = \frac1C \sum_k \mu_k, \qquad
        \bar\sigma^2 = \frac1C \sum_k \sigma_k^2 + \frac1C \sum_k (\mu_k - \bar\mu)^2

    with equal class priors, per dimension (the law of total variance): the "ambiguous" Gaussian of
    Zheng & Sun (2019), Eq. 11, whose equation the text lost; ours is the moment-matched reading.
    """
    variance = (-log_precisions).exp().mean(0) + means.var(0, unbiased=False)
    return means.mean(0), -variance.log()


@float32
def unlabelled_likelihood_loss(codes: Tensor, means: Tensor, log_precisions: Tensor) -> Tensor:
    r"""The likelihood regularisation of an unlabelled code (Zheng & Sun 2019, Sec. 3.6, Eq. 11).

    .. math::
        \mathcal L_{lkd}^{u} = \tfrac12 (s - \bar\mu)^\top \bar\Sigma^{-1} (s - \bar\mu)
        + \tfrac12 \log\lvert\bar\Sigma\rvert

    :func:`gm_likelihood_loss` against the single Gaussian :math:`\mathcal N(\bar\mu, \bar\Sigma)`
    of :func:`mixture_moments`, for images whose class is unknown or outside the mixture.
    """
    mean, log_precision = mixture_moments(means, log_precisions)
    labels = torch.zeros(len(codes), dtype=torch.long, device=codes.device)
    return gm_likelihood_loss(codes, labels, mean[None], log_precision[None])


@float32
def reference_vae_bound(nll: Tensor, kl_unspecified: Tensor, kl_specified: Tensor | None = None) -> Tensor:
    r"""One image's term of the Rb-VAE objective (Ruiz et al. 2019, Eq. 3), in nats, to minimise.

    .. math::
        x \sim p_u:& \quad \mathrm{KL}\big(q(z|x)\,q(e|x)\,\|\,p(z)\,p(e)\big)
            - \mathbb E_{q(z|x)q(e|x)} \log p(x|z, e)
            = \texttt{kl\_unspecified + kl\_specified + nll} \\
        x \sim p_r:& \quad \mathrm{KL}\big(q(z|x)\,\|\,p(z)\big) - \mathbb E_{q(z|x)} \log p(x|z, e_r)
            = \texttt{kl\_unspecified + nll}

    The KL of a product of independent posteriors to a product of priors is the sum of the two
    KLs (:func:`kl_normal_standard` of each code). A reference image (``kl_specified=None``) has
    no KL for ``e``: ``q(e | x, y = 1)`` and ``p(e | y = 1)`` are the same delta at ``e_r``
    (App. A). ``nll`` is :math:`-\log p(x \mid z, e)` at one posterior sample (:func:`image_nll`).
    """
    bound = nll + kl_unspecified
    return bound if kl_specified is None else bound + kl_specified


@float32
def gaussian_code_nll(code: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    r"""Negative log-density of a code under a diagonal Gaussian posterior, per sample, in nats.

    .. math::
        -\log \mathcal N\big(c;\, \mu, \mathrm{diag}\,\sigma^2\big)
        = \tfrac12 \sum_j \Big[\frac{(c_j - \mu_j)^2}{\sigma_j^2} + \log \sigma_j^2 + \log 2\pi\Big]

    The latent reconstruction terms of Ruiz et al. (2019, Eq. 10): codes drawn from the prior,
    ``z, e ~ p``, decoded to ``x ~ p(x | z, e)`` and read back by the encoders,
    :math:`-\log q(z \mid x) - \log q(e \mid x)`; sVAE's (Pu et al. 2018) :math:`-\log q(z \mid x)`.
    """
    return 0.5 * ((code - mu).pow(2) * (-logvar).exp() + logvar + math.log(2 * math.pi)).sum(1)


@float32
def symmetric_kl_adversarial(q_logits: Tensor, p_logits: Tensor) -> Tensor:
    r"""The encoders' and generator's adversarial estimate of the symmetric KL (Ruiz et al. 2019, Eq. 8), per pair.

    .. math::
        \mathbb E_{q(e, z|x)p_u(x)}\, d(x, z, e) - \mathbb E_{p(x|z, e)p(z)p(e)}\, d(x, z, e)

    with ``d`` the discriminator's logit, which estimates the log density ratio
    :math:`\log \frac{q(e, z|x)\,p_u(x)}{p(x|e, z)\,p(z)\,p(e)}` (Eq. 7): the first expectation
    estimates :math:`\mathrm{KL}(q\,\|\,p)`, minus the second :math:`\mathrm{KL}(p\,\|\,q)`.
    ``q_logits`` are ``d`` on encoded real images (``x, z ~ q(z|x), e ~ q(e|x)``), ``p_logits``
    on generated ones (``z, e ~`` prior, ``x ~ p(x|z, e)``). The reference pair
    ``d'(x, z)`` is the same expression, and so is sVAE's ``d(x, z)`` (Pu et al. 2018; without a
    reference set or ``e``, :mod:`dislib.models.ruiz_baselines`). Minimised by the encoders
    (through ``q_logits``) and the generator (through ``p_logits``); ``d`` itself learns by
    :func:`density_ratio_loss` (Eq. 9).
    """
    return q_logits - p_logits


@float32
def density_ratio_loss(q_logits: Tensor, p_logits: Tensor) -> Tensor:
    r"""The discriminator's loss, a logistic regression of a log density ratio (Ruiz et al. 2019, Eq. 9), per pair.

    .. math::
        -\tfrac12 \Big[\log \sigma\big(d(x, z, e)\big) + \log\big(1 - \sigma(d(\hat x, \hat z, \hat e))\big)\Big]
        = \tfrac12 \Big[\mathrm{softplus}(-d_q) + \mathrm{softplus}(d_p)\Big]

    with :math:`(x, z, e)` from the encoders (``q_logits``) and :math:`(\hat x, \hat z, \hat e)`
    from the prior and the generator (``p_logits``); at its optimum
    :math:`d = \log q / p`, the ratio of Eq. 7 (Bickel et al. 2009). Algorithm 1 gives ``q`` the
    :math:`\log\sigma` side, which is what Eq. 7 needs; the text of Eq. 9 has the two sides
    swapped, which would estimate :math:`\log p / q` instead. The factor 1/2 is Algorithm 1's
    :math:`\frac{1}{2m}\sum_m` (App. B, lines 16 and 18). sVAE's ``d(x, z)`` learns by the same loss.
    """
    return 0.5 * (F.softplus(-q_logits) + F.softplus(p_logits))


DIP_TYPES = ("i", "ii")


@float32
def dip_covariance(mu: Tensor, logvar: Tensor, dip_type: str) -> Tensor:
    r"""The covariance that DIP-VAE pulls towards the identity (Kumar et al. 2018), ``[D, D]``.

    .. math::
        \text{type I:}\quad \mathrm{Cov}_{p(x)}\big[\mu(x)\big]
            = \frac1N \sum_n (\mu_n - \bar\mu)(\mu_n - \bar\mu)^\top, \qquad
        \text{type II:}\quad \mathrm{Cov}_{q(z)}[z]
            = \mathrm{Cov}_{p(x)}\big[\mu(x)\big] + \frac1N \sum_n \mathrm{diag}\,\sigma_n^2

    over the ``N`` images of a batch, with :math:`\mu_n` and :math:`\log\sigma_n^2` the posterior
    ``q(z | x_n)``'s mean and log-variance. Type I reads the covariance of the encoder's means;
    type II that of the aggregate posterior :math:`q(z) = \frac1N \sum_n q(z \mid x_n)`, by the law
    of total covariance. Both are the biased (``1 / N``) batch estimates, as in disentanglement_lib.
    Computed in float32 however narrow the inputs, as every loss here (:func:`float32`).
    """
    if dip_type not in DIP_TYPES:
        raise ValueError(f"dip_type must be one of {DIP_TYPES} (DIP-VAE-I or DIP-VAE-II), got {dip_type!r}")
    centred = mu - mu.mean(0)
    covariance = centred.T @ centred / len(mu)
    if dip_type == "ii":
        covariance = covariance + torch.diag(logvar.exp().mean(0))
    return covariance


@float32
def dip_regulariser(mu: Tensor, logvar: Tensor, lambda_od: float, lambda_d: float, dip_type: str) -> Tensor:
    r"""DIP-VAE's regulariser (Kumar et al. 2018), a 0-d tensor for the batch, to minimise beside the
    negative ELBO.

    .. math::
        \mathcal R_{DIP} = \lambda_{od} \sum_{i \ne j} C_{ij}^2 + \lambda_d \sum_i (C_{ii} - 1)^2

    with :math:`C` the covariance of :func:`dip_covariance` for ``dip_type`` ``"i"`` (the encoder's
    means) or ``"ii"`` (the aggregate posterior): the off-diagonal entries are pulled to 0 and the
    diagonal ones to 1, so that the inferred codes match the factorised prior ``N(0, I)`` in their
    second moments. A statistic of the whole batch, not one value per image: DIP-VAE's objective
    is :math:`\mathbb E_n[-\mathrm{ELBO}(x_n)] + \mathcal R_{DIP}`. disentanglement_lib sets
    :math:`\lambda_d = 10\,\lambda_{od}` for type I and :math:`\lambda_d = \lambda_{od}` for type II.
    """
    if not (lambda_od >= 0 and lambda_d >= 0):
        raise ValueError(f"the DIP weights must be >= 0 (weights of a penalty to minimise), "
                         f"got lambda_od={lambda_od}, lambda_d={lambda_d}")
    covariance = dip_covariance(mu, logvar, dip_type)
    diagonal = torch.diagonal(covariance)
    off_diagonal = covariance.pow(2).sum() - diagonal.pow(2).sum()
    return lambda_od * off_diagonal + lambda_d * (diagonal - 1.0).pow(2).sum()
