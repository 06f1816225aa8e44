"""The five unsupervised baselines of Ruiz et al. (2019, Sec. 5.2, Table 1) on the networks of their
reference-based models: VAE, beta-VAE, DIP-VAE-I, DIP-VAE-II and sVAE.

"For a fair comparison, we have developed our own implementation for all the evaluated methods in
order to use the same network architectures and hyper-parameters" (Sec. 5.2): here, the encoder
and generator of App. D (:class:`dislib.models.base.ruiz.RuizModel`: pooling encoder, upsampling
generator, pixel-wise normalisation, LeakyReLU 0.2), the Laplace likelihood of scale 0.005 on
dislib's ``[0, 1]`` pixels (the paper's 0.01 on ``[-1, 1]``), Adam (1e-4, betas (0.5, 0.99),
eps 1e-8), batches of 36 and the budgets of Rb-VAE and sRb-VAE.

Every latent forms one code ``z``: the specified code is empty (``specified_dim = 0``),
``encode(x)`` returns ``Codes(specified=None, unspecified=mu, unspecified_logvar=logvar)`` and
``decode(None, z)`` is ``G(z)``. The paper gives "32 latent variables" to the encoders of every
model, so each baseline has 32, which Table 1's regressors read ("all the latent variables"); a
reference model has 32 in each of its two encoders, ``e`` and ``z``.

* **VAE** (Kingma & Welling 2014), registered as ``ruizvae``: beta-VAE with ``beta = 1`` (the name
  ``vae`` is the book's VAE on its own networks).
* **beta-VAE** (Higgins et al. 2017), ``betavae``: the KL weighted by ``beta``.
* **DIP-VAE-I** and **DIP-VAE-II** (Kumar et al. 2018), ``dipvae1`` and ``dipvae2``: the negative
  ELBO plus :func:`dislib.losses.dip_regulariser`, which pulls the covariance of the encoder's means
  over the batch (type I), or that covariance plus the mean posterior variance (type II), towards
  the identity.
* **sVAE** (Pu et al. 2018), ``svae``: the symmetric KL through one latent discriminator ``d(x, z)``,
  which Ruiz et al. call "an unsupervised version of our method": their sRb-VAE without the
  reference set and without ``e``, with the same explicit reconstruction terms (Eq. 10), which
  they take from Pu et al. One batch follows their Algorithm 1 with the reference lines left out;
  ``d`` has its own Adam, a real min-max game.

The paper picks each weight (beta, lambda_od) as the best in ``[1, 50]``; the defaults here are
the middle of disentanglement_lib's sweeps (beta 4; lambda_od 10), to be swept by the caller.

The baselines learn without labels: each batch is drawn uniformly from all the training images,
reference and unlabelled alike, in the data's proportions (``Model.make_batch``; styled-mnist's
set label is ignored). The paper does not say which images its baselines saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models.base import Codes, check_weights, register
from dislib.models.base.ruiz import RUIZ_LAPTOP_DISCRIMINATORS, RUIZ_LAPTOP_SYMMETRIC, RuizConfig, RuizModel, SymmetricKLConfig, ruiz_presets
from dislib.nn import reparameterize


@dataclass(frozen=True)
class BaselineConfig(RuizConfig):
    """Settings every baseline shares: the networks, likelihood and optimiser of
    :class:`dislib.models.base.ruiz.RuizConfig` (the paper's by default) and

    Parameters
    ----------
    latent_dim
        Size of the one code ``z`` (paper: 32, as each encoder of Rb-VAE and sRb-VAE).
    """

    latent_dim: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {self.latent_dim}")


@dataclass(frozen=True)
class BetaVAEConfig(BaselineConfig):
    """Settings of :class:`BetaVAE`: those of :class:`BaselineConfig` and

    Parameters
    ----------
    beta
        Weight of the KL term (Higgins et al. 2017; 1 is the VAE's bound). The paper sweeps
        ``[1, 50]``; 4 is the middle of disentanglement_lib's sweep (1 to 16).
    """

    beta: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, also=("beta",))


@dataclass(frozen=True)
class RuizVAEConfig(BetaVAEConfig):
    """Settings of :class:`RuizVAE`: those of :class:`BetaVAEConfig` with ``beta = 1``, the only value it takes."""

    beta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta != 1.0:
            raise ValueError(f"ruizvae is the VAE, beta = 1 (got beta={self.beta}): train betavae for another beta")


@dataclass(frozen=True)
class DIPVAEConfig(BaselineConfig):
    """Settings of :class:`DIPVAEI` (and, with ``dip_type="ii"``, :class:`DIPVAEII`): those of
    :class:`BaselineConfig` and

    Parameters
    ----------
    dip_type
        ``"i"``: the covariance of the encoder's means; ``"ii"``: plus their mean posterior
        variance (:func:`dislib.losses.dip_covariance`).
    lambda_od
        Weight of the off-diagonal entries of the covariance (Kumar et al. 2018). The paper sweeps
        ``[1, 50]``; 10 is the middle of disentanglement_lib's sweep (1 to 50). The weight of the
        diagonal, :attr:`lambda_d`, follows from it as in disentanglement_lib: ``10 lambda_od``
        for type I, ``lambda_od`` for type II.
    """

    dip_type: str = "i"
    lambda_od: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dip_type not in losses.DIP_TYPES:
            raise ValueError(f"dip_type must be one of {losses.DIP_TYPES} (DIP-VAE-I or DIP-VAE-II), "
                             f"got {self.dip_type!r}")
        check_weights(self, also=("lambda_od",))

    @property
    def lambda_d(self) -> float:
        """Weight of the diagonal: ``10 lambda_od`` for type I, ``lambda_od`` for type II (disentanglement_lib)."""
        return (10.0 if self.dip_type == "i" else 1.0) * self.lambda_od


@dataclass(frozen=True)
class DIPVAEIIConfig(DIPVAEConfig):
    """Settings of :class:`DIPVAEII`: those of :class:`DIPVAEConfig` with ``dip_type="ii"``."""

    dip_type: str = "ii"


@dataclass(frozen=True)
class SVAEConfig(SymmetricKLConfig, BaselineConfig):
    """Settings of :class:`SVAE`: those of :class:`BaselineConfig`, those of the discriminator
    ``d(x, z)`` and of the adversarial and code reconstruction terms in
    :class:`dislib.models.base.ruiz.SymmetricKLConfig`, and

    Parameters
    ----------
    reconstruction_weight
        Weight of the image reconstruction term ``-log p(x | z)`` (1: as in sRb-VAE, Eq. 10).
    """

    reconstruction_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_discriminators()


def betavae_objective(terms: dict[str, Tensor], config: BetaVAEConfig) -> Tensor:
    r"""beta-VAE's objective (Higgins et al. 2017), a scalar: the mean over the batch of

    .. math:: -\mathbb E_{q(z|x)} \log p(x \mid z) + \beta\, \mathrm{KL}\big(q(z \mid x)\,\|\,\mathcal N(0, I)\big)

    the negative ELBO of Kingma & Welling (2014) when ``beta = 1``.
    """
    return (terms["reconstruction"] + config.beta * terms["kl"]).mean()


def dipvae_objective(terms: dict[str, Tensor]) -> Tensor:
    r"""DIP-VAE's objective (Kumar et al. 2018), a scalar: the mean negative ELBO plus the batch's
    regulariser ``terms["dip"]`` (:func:`dislib.losses.dip_regulariser`, which holds the weights).

    .. math:: \mathbb E_n\big[-\log p(x_n \mid z_n) + \mathrm{KL}(q(z \mid x_n)\,\|\,p(z))\big] + \mathcal R_{DIP}
    """
    return (terms["reconstruction"] + terms["kl"]).mean() + terms["dip"]


def svae_objective(terms: dict[str, Tensor], config: SVAEConfig) -> Tensor:
    r"""sVAE's encoder and generator objective, a scalar: Ruiz et al.'s Eq. 8 and Eq. 10 with one
    discriminator ``d(x, z)`` and no reference set, each term averaged over the batch:

    .. math::
        \mathbb E\big[d(x, z) - d(\hat x, \hat z)\big] - \mathbb E \log p(x \mid z)
        - \mathbb E \log q(\hat z \mid \hat x)

    with ``z ~ q(z|x)`` and ``x`` a training image, ``z^ ~ N(0, I)`` and ``x^ ~ p(x|z^)``; the three
    terms weighted by ``adversarial_weight``, ``reconstruction_weight`` and
    ``code_reconstruction_weight`` (all 1: the paper's sRb-VAE).
    """
    c = config
    return (c.adversarial_weight * terms["adversarial"] + c.reconstruction_weight * terms["reconstruction"]
            + c.code_reconstruction_weight * terms["code_reconstruction"]).mean()


# the models --------------------------------------------------------------------------------
class RuizBaseline(RuizModel):
    """What the five baselines share: ``q(z|x)``, ``G(z)``, the negative ELBO's terms, one training
    step on one optimizer, and the evaluation. Subclasses give :meth:`loss_terms` and :meth:`objective`
    (sVAE, a min-max game, its own :meth:`train_step`)."""

    Config = BaselineConfig

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__(config)
        self.specified_dim = 0
        self.unspecified_dim = config.latent_dim
        self.encoder = self.make_encoder(config.latent_dim)
        self.decoder = self.make_generator(config.latent_dim)
        self.optimizers["autoencoder"] = self.adam([*self.encoder.parameters(), *self.decoder.parameters()])

    # the shared interface ----------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        """``q(z|x)``: all latents as the unspecified code (mean and log-variance); no specified code."""
        self.check_images(x)
        mu, logvar = self.encoder(x)
        return Codes(specified=None, unspecified=mu, unspecified_logvar=logvar)

    def sample(self, n: int) -> Tensor:
        """``n`` images decoded from ``z ~ N(0, I)``."""
        return self.decode(None, torch.randn(n, self.unspecified_dim, device=self.device))

    # training ----------------------------------------------------------------------------------
    def negative_elbo(self, x: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``q(z|x)``'s mean and log-variance, and the negative ELBO's terms per image at one posterior
        sample, in nats: ``reconstruction`` (``-log p(x | z)``) and ``kl`` (``KL(q(z|x) || N(0, I))``)."""
        mu, logvar = self.encoder(x)
        output = self.decoder_output(None, reparameterize(mu, logvar))
        terms = {"reconstruction": self.reconstruction_nll(output, x), "kl": losses.kl_normal_standard(mu, logvar)}
        return mu, logvar, terms

    def loss_terms(self, x: Tensor) -> dict[str, Tensor]:
        """The terms of the objective on the batch ``x``, per image (or one value for the batch)."""
        return self.negative_elbo(x)[2]

    def objective(self, terms: dict[str, Tensor]) -> Tensor:
        """The scalar that the one optimizer minimises, from :meth:`loss_terms`."""
        raise NotImplementedError

    def batch_images(self, batch: dict[str, Tensor]) -> Tensor:
        """The batch's images (every image alike: the labels are not read), after a clear error for bad ones."""
        (x,) = self.require(batch, "x")
        self.check_images(x)
        return x

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One Adam step of the encoder and the generator on :meth:`objective`."""
        x = self.batch_images(batch)
        with self.autocast():
            terms = self.loss_terms(x)
            objective = self.objective(terms)
        self.optimizer_step("autoencoder", objective)
        self.steps_done += 1
        return self.report({**terms, "objective": objective})

    # evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: ImageDataset, batch_size: int = 500) -> dict[str, float]:
        """Held-out ``-log p(x | z)`` at one posterior sample and ``KL(q(z|x) || N(0, I))``, in nats per
        image, over every image of ``data`` (``test_reconstruction``, ``test_kl``). Regressions are the caller's."""
        sums = {"reconstruction": 0.0, "kl": 0.0}
        for i in range(0, len(data), batch_size):
            x = data.images[i : i + batch_size]
            self.check_images(x)
            for name, value in self.negative_elbo(x)[2].items():
                sums[name] += value.float().sum().item()
        return {f"test_{name}": total / len(data) for name, total in sums.items()}


@register
class BetaVAE(RuizBaseline):
    """beta-VAE (Higgins et al. 2017) on Ruiz et al.'s networks: the negative ELBO with the KL weighted by ``beta``."""

    name = "betavae"
    Config = BetaVAEConfig
    PRESETS = ruiz_presets(BetaVAEConfig)

    def objective(self, terms: dict[str, Tensor]) -> Tensor:
        return betavae_objective(terms, self.config)


@register
class RuizVAE(BetaVAE):
    """The VAE (Kingma & Welling 2014) on Ruiz et al.'s networks: :class:`BetaVAE` with ``beta = 1``,
    the plain negative ELBO. Registered as ``ruizvae``: ``vae`` is the book's VAE on its own networks."""

    name = "ruizvae"
    Config = RuizVAEConfig
    PRESETS = ruiz_presets(RuizVAEConfig)


@register
class DIPVAEI(RuizBaseline):
    """DIP-VAE-I (Kumar et al. 2018) on Ruiz et al.'s networks: the negative ELBO plus the DIP
    regulariser on the covariance of the encoder's means over the batch, ``lambda_d = 10 lambda_od``."""

    name = "dipvae1"
    Config = DIPVAEConfig
    PRESETS = ruiz_presets(DIPVAEConfig)

    def __init__(self, config: DIPVAEConfig) -> None:
        if config.dip_type != self.Config.dip_type:
            kind = {"i": "DIP-VAE-I (dipvae1)", "ii": "DIP-VAE-II (dipvae2)"}
            raise ValueError(f"{self.name} is {kind[self.Config.dip_type]}, but the config has dip_type="
                             f"{config.dip_type!r}: build {kind[config.dip_type]} for that type")
        super().__init__(config)

    def loss_terms(self, x: Tensor) -> dict[str, Tensor]:
        """The negative ELBO's terms per image and ``dip``, the batch's DIP regulariser (weights included)."""
        c = self.config
        mu, logvar, terms = self.negative_elbo(x)
        return {**terms, "dip": losses.dip_regulariser(mu, logvar, c.lambda_od, c.lambda_d, c.dip_type)}

    def objective(self, terms: dict[str, Tensor]) -> Tensor:
        return dipvae_objective(terms)


@register
class DIPVAEII(DIPVAEI):
    """DIP-VAE-II (Kumar et al. 2018) on Ruiz et al.'s networks: as :class:`DIPVAEI`, on the covariance
    of the encoder's means plus their mean posterior variance, ``lambda_d = lambda_od``."""

    name = "dipvae2"
    Config = DIPVAEIIConfig
    PRESETS = ruiz_presets(DIPVAEIIConfig)


@register
class SVAE(RuizBaseline):
    """sVAE (Pu et al. 2018) as Ruiz et al. compare with it: the symmetric KL between ``q(z|x) p(x)``
    and ``p(x|z) p(z)`` through one latent discriminator ``d(x, z)`` (a
    :class:`dislib.nn.LatentDiscriminator` with its own Adam), plus the reconstructions of images
    and of prior codes (:func:`svae_objective`)."""

    name = "svae"
    Config = SVAEConfig
    PRESETS = ruiz_presets(SVAEConfig, RUIZ_LAPTOP_DISCRIMINATORS, **RUIZ_LAPTOP_SYMMETRIC)

    def __init__(self, config: SVAEConfig) -> None:
        super().__init__(config)
        self.discriminator = self.make_discriminator((config.latent_dim,))  # d(x, z)
        self.optimizers["discriminator"] = self.adam(list(self.discriminator.parameters()))

    def symmetric_terms(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Algorithm 1 of Ruiz et al. without the reference set and ``e``: the encoder's and generator's
        per-image terms, and the images and codes ``d`` judges next (encoded first, generated second).

        ``z ~ q(z|x)``; ``z^ ~ N(0, I)`` and ``x^ ~ p(x|z^)``; ``adversarial`` is
        ``d(x, z) - d(x^, z^)``, ``reconstruction`` ``-log p(x | z)`` and ``code_reconstruction``
        ``-log q(z^ | x^)``, the prior code read back from the image generated from it.
        """
        n = len(x)
        z_prior = torch.randn(n, self.unspecified_dim, device=x.device)
        x_prior = self.generate(None, z_prior)
        mu, logvar = self.encoder(torch.cat([x, x_prior]))  # q(z|x) of the images, and of the generated ones
        z = reparameterize(mu[:n], logvar[:n])
        judged = {"x": torch.cat([x, x_prior]), "z": torch.cat([z, z_prior])}
        d_q, d_p = self.discriminator(judged["x"], judged["z"]).split(n)
        terms = {
            "adversarial": losses.symmetric_kl_adversarial(d_q, d_p),
            "reconstruction": self.reconstruction_nll(self.decoder_output(None, z), x),
            "code_reconstruction": losses.gaussian_code_nll(z_prior, mu[n:], logvar[n:]),
        }
        return terms, {k: v.detach() for k, v in judged.items()}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Ruiz et al.'s Algorithm 1 without its reference lines: the encoder's and generator's step on
        :func:`svae_objective` with ``d`` frozen, then ``d``'s step on the same pairs, detached
        (logistic regression of encoded pairs against generated ones, Eq. 9), each on its own Adam."""
        x = self.batch_images(batch)
        self.discriminator.requires_grad_(False)
        with self.autocast():
            terms, judged = self.symmetric_terms(x)
            objective = svae_objective(terms, self.config)
        self.optimizer_step("autoencoder", objective)
        self.discriminator.requires_grad_(True)

        with self.autocast():
            logits = self.discriminator(judged["x"], judged["z"])
            discriminator_loss = losses.density_ratio_loss(*logits.split(len(x))).mean()
        self.optimizer_step("discriminator", discriminator_loss)

        self.steps_done += 1
        return self.report({**terms, "objective": objective, "discriminator": discriminator_loss})
