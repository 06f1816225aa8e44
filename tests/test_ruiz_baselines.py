"""Ruiz et al.'s unsupervised baselines (VAE, beta-VAE, DIP-VAE-I/II, sVAE): the DIP regulariser and the
objectives by hand, the DIP weights per type, bad weights, the codes, which optimizer moves what, a
few steps of training, the presets, the shared budgets, and that the module stands on shared pieces."""

import ast
import json
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from dislib import data, losses
from dislib import __main__ as cli
from dislib.data.base import ImageDataset
from dislib.models import (
    DIPVAEI, DIPVAEII, MODELS, SVAE, BetaVAE, BetaVAEConfig, DIPVAEConfig, DIPVAEIIConfig, RbVAE, RuizVAE,
    RuizVAEConfig, SRbVAE, SVAEConfig,
)
from dislib.models import ruiz_baselines
from dislib.models.base import Model
from dislib.models.ruiz_baselines import betavae_objective, dipvae_objective, svae_objective
from tests.helpers import tiny_images

BASELINES = (RuizVAE, BetaVAE, DIPVAEI, DIPVAEII, SVAE)
SMALL = dict(widths=(4, 8), latent_dim=5)
SMALL_DISCRIMINATOR = dict(discriminator_widths=(4, 8), discriminator_image_features=8, discriminator_code_features=4,
                           discriminator_hidden=8)
AUTOENCODER = ("encoder", "decoder")


def sparse_images(n: int = 64, size: int = 16, seed: int = 0) -> ImageDataset:
    """``tests.helpers.tiny_images`` with 3 channels, kept only where bright: a few lit pixels on black,
    like styled-mnist's edges, with its two labels (the baselines do not read them)."""
    tiny = tiny_images(n, channels=3, size=size, classes=2, seed=seed)
    images = tiny.images * (tiny.images.mean(1, keepdim=True) > 0.6)
    return ImageDataset(images, tiny.labels, 2, "styled-like", class_names=("unlabelled", "reference"))


def small(cls: type, data_: ImageDataset | None = None, **overrides) -> Model:
    torch.manual_seed(0)
    extra = SMALL_DISCRIMINATOR if cls is SVAE else {}
    return cls.for_dataset(data_ or sparse_images(), **{**SMALL, **extra, **overrides})


def batch_of(model: Model, data_: ImageDataset | None = None, n: int = 8) -> dict[str, Tensor]:
    return model.make_batch(data_ or sparse_images(), torch.arange(n), torch.Generator().manual_seed(1))


def _snapshot(model: Model, names: tuple[str, ...]) -> dict[str, list[Tensor]]:
    return {name: [p.detach().clone() for p in getattr(model, name).parameters()] for name in names}


def _changed(before: dict[str, list[Tensor]], after: dict[str, list[Tensor]]) -> set[str]:
    return {k for k in before if any(not torch.equal(a, b) for a, b in zip(before[k], after[k]))}


# the DIP regulariser and the objectives, by hand -----------------------------------------------
MU = torch.tensor([[1.0, 0.0], [-1.0, 2.0]])
# the mean is (0, 1); centred rows (1, -1) and (-1, 1); the covariance (1/N, N = 2) is [[1, -1], [-1, 1]]
LOGVAR = torch.log(torch.tensor([[0.5, 1.0], [0.5, 1.0]]))  # mean posterior variances (0.5, 1)


def test_dip_covariance_by_hand():
    torch.testing.assert_close(losses.dip_covariance(MU, LOGVAR, "i"), torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    # type II adds the mean posterior variance to the diagonal: 1 + 0.5, 1 + 1
    torch.testing.assert_close(losses.dip_covariance(MU, LOGVAR, "ii"), torch.tensor([[1.5, -1.0], [-1.0, 2.0]]))
    # the biased batch covariance of the means, as torch computes it
    torch.testing.assert_close(losses.dip_covariance(MU, LOGVAR, "i"), torch.cov(MU.T, correction=0))


def test_dip_regulariser_by_hand():
    # type I: off-diagonal (-1)^2 + (-1)^2 = 2, diagonal (1 - 1)^2 + (1 - 1)^2 = 0: 3 * 2 + 30 * 0 = 6
    assert losses.dip_regulariser(MU, LOGVAR, 3.0, 30.0, "i").item() == pytest.approx(6.0)
    # type II: off-diagonal 2, diagonal (1.5 - 1)^2 + (2 - 1)^2 = 1.25: 3 * 2 + 3 * 1.25 = 9.75
    assert losses.dip_regulariser(MU, LOGVAR, 3.0, 3.0, "ii").item() == pytest.approx(9.75)
    # codes already white (covariance I) cost nothing; bfloat16 codes are regularised in float32
    white = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert losses.dip_regulariser(white, torch.zeros(4, 2), 1.0, 1.0, "i").item() == 0.0
    assert losses.dip_regulariser(MU.bfloat16(), LOGVAR, 3.0, 30.0, "i").dtype == torch.float32


def test_dip_regulariser_refuses_negative_weights_and_unknown_types():
    with pytest.raises(ValueError, match="DIP weights must be >= 0.*lambda_od=-1.0"):
        losses.dip_regulariser(MU, LOGVAR, -1.0, 10.0, "i")
    with pytest.raises(ValueError, match="lambda_d=-0.5"):
        losses.dip_regulariser(MU, LOGVAR, 1.0, -0.5, "ii")
    with pytest.raises(ValueError, match=r"dip_type must be one of \('i', 'ii'\)"):
        losses.dip_regulariser(MU, LOGVAR, 1.0, 1.0, "iii")


def test_objectives_weight_each_term_by_hand():
    terms = {"reconstruction": torch.tensor([10.0, 20.0]), "kl": torch.tensor([1.0, 3.0]), "dip": torch.tensor(7.0)}
    # beta-VAE: mean(15 + 4 * 2) = 23; the VAE (beta = 1): 15 + 2 = 17
    assert betavae_objective(terms, BetaVAEConfig(beta=4.0)).item() == pytest.approx(23.0)
    assert betavae_objective(terms, RuizVAEConfig()).item() == pytest.approx(17.0)
    # DIP-VAE: the mean negative ELBO 17, plus the batch's regulariser 7
    assert dipvae_objective(terms).item() == pytest.approx(24.0)
    # sVAE: 2 * mean[1, -1] + 3 * mean[10, 20] + 5 * mean[2, 4] = 0 + 45 + 15
    config = SVAEConfig(adversarial_weight=2.0, reconstruction_weight=3.0, code_reconstruction_weight=5.0)
    svae_terms = {"adversarial": torch.tensor([1.0, -1.0]), "reconstruction": torch.tensor([10.0, 20.0]),
                  "code_reconstruction": torch.tensor([2.0, 4.0])}
    assert svae_objective(svae_terms, config).item() == pytest.approx(60.0)


# settings -----------------------------------------------------------------------------------
def test_dip_weights_follow_the_type_as_in_disentanglement_lib():
    assert DIPVAEConfig(lambda_od=3.0).lambda_d == 30.0  # type I: lambda_d = 10 lambda_od
    assert DIPVAEIIConfig(lambda_od=3.0).lambda_d == 3.0  # type II: lambda_d = lambda_od
    assert (DIPVAEI.Config().dip_type, DIPVAEII.Config().dip_type) == ("i", "ii")
    x = sparse_images().images[:8]
    for cls, lambda_d in ((DIPVAEI, 30.0), (DIPVAEII, 3.0)):
        model = small(cls, lambda_od=3.0)
        mu, logvar = model.encoder(x)
        expected = losses.dip_regulariser(mu, logvar, 3.0, lambda_d, model.config.dip_type)
        torch.testing.assert_close(model.loss_terms(x)["dip"], expected)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: DIPVAEConfig(lambda_od=-1.0), "lambda_od must be >= 0"),
        (lambda: DIPVAEIIConfig(lambda_od=float("nan")), "lambda_od must be >= 0"),
        (lambda: BetaVAEConfig(beta=-2.0), "beta must be >= 0"),
        (lambda: SVAEConfig(adversarial_weight=-1.0), "adversarial_weight must be >= 0"),
        (lambda: SVAEConfig(reconstruction_weight=-1.0), "reconstruction_weight must be >= 0"),
        (lambda: SVAEConfig(input_drop=1.0), r"input_drop is a probability in \[0, 1\)"),
        (lambda: DIPVAEConfig(dip_type="iii"), r"dip_type must be one of \('i', 'ii'\)"),
        (lambda: RuizVAEConfig(beta=4.0), "ruizvae is the VAE, beta = 1.*train betavae"),
        (lambda: BetaVAEConfig(latent_dim=0), "latent_dim must be positive"),
        (lambda: BetaVAEConfig(image_size=8), "need images of at least 16 pixels"),
        (lambda: DIPVAEI(DIPVAEIIConfig()), r"dipvae1 is DIP-VAE-I.*dip_type='ii'.*DIP-VAE-II \(dipvae2\)"),
    ],
)
def test_bad_settings_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_the_paper_preset_the_laptop_preset_and_rbvaes_budgets():
    for cls in BASELINES:
        paper = cls.PRESETS["styled-mnist-paper"]
        assert (paper.latent_dim, paper.image_size, paper.widths) == (32, 64, (32, 64, 128, 256))
        assert paper.latent_dim == RbVAE.PRESETS["styled-mnist-paper"].specified_dim  # 32 latents for every encoder
        assert (paper.lr, paper.betas, paper.eps, paper.pixel_scale, paper.likelihood) == (
            1e-4, (0.5, 0.99), 1e-8, 0.005, "laplace-linear")
        laptop = cls.PRESETS["styled-mnist"]
        assert (laptop.image_size, laptop.widths, laptop.latent_dim) == (32, RbVAE.PRESETS["styled-mnist"].widths, 32)
        assert cls.BUDGETS is RbVAE.BUDGETS and cls.budget("full").batch_size == 36
    assert SVAE.PRESETS["styled-mnist"].discriminator_widths == SRbVAE.PRESETS["styled-mnist"].discriminator_widths
    assert SVAE.PRESETS["styled-mnist-paper"].input_drop == 0.25
    model = small(SVAE)
    for optimizer in model.optimizers.values():
        assert optimizer.defaults["betas"] == (0.5, 0.99) and optimizer.defaults["eps"] == 1e-8


# the model ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", BASELINES)
def test_one_code_encode_decode_sample_and_evaluate(cls):
    data_ = sparse_images(24)
    model = small(cls, data_).eval()
    codes = model.encode(data_.images[:6])
    assert codes.specified is None and codes.specified_logvar is None and model.specified_dim == 0
    assert codes.unspecified.shape == codes.unspecified_logvar.shape == (6, 5)
    images = model.decode(None, codes.unspecified)
    assert images.shape == (6, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert model.sample(4).shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match="has no specified code: pass None"):
        model.decode(codes.unspecified, codes.unspecified)
    metrics = model.evaluate(data_)
    assert set(metrics) == {"test_reconstruction", "test_kl"}
    # the KL is exact (no sample): the mean over the images of KL(q(z|x) || N(0, I)), in nats
    all_codes = model.encode(data_.images)
    kl = losses.kl_normal_standard(all_codes.unspecified, all_codes.unspecified_logvar).mean().item()
    assert metrics["test_kl"] == pytest.approx(kl, rel=1e-5)


@pytest.mark.parametrize("cls", (RuizVAE, BetaVAE, DIPVAEI, DIPVAEII))
def test_one_optimizer_moves_the_encoder_and_the_generator(cls):
    model = small(cls)
    before = _snapshot(model, AUTOENCODER)
    out = model.train_step(batch_of(model))
    assert _changed(before, _snapshot(model, AUTOENCODER)) == set(AUTOENCODER)
    assert set(model.optimizers) == {"autoencoder"} and int(model.steps_done) == 1
    expected = {"reconstruction", "kl", "objective"} | ({"dip"} if cls in (DIPVAEI, DIPVAEII) else set())
    assert set(out) == expected and all(torch.isfinite(v) for v in out.values())


def test_svae_steps_each_player_on_its_own_optimizer_in_order():
    model = small(SVAE)
    players = AUTOENCODER + ("discriminator",)
    steps = []
    original = model.optimizer_step

    def recording(name: str, loss: Tensor) -> None:
        frozen = not any(p.requires_grad for p in model.discriminator.parameters())
        before = _snapshot(model, players)
        original(name, loss)
        steps.append((name, _changed(before, _snapshot(model, players)), frozen))

    model.optimizer_step = recording
    out = model.train_step(batch_of(model))
    assert steps == [
        ("autoencoder", set(AUTOENCODER), True),  # the encoder and the generator, d frozen
        ("discriminator", {"discriminator"}, False),  # then d alone, on the same pairs
    ]
    assert set(model.optimizers) == {"autoencoder", "discriminator"}
    assert {id(p) for p in model.optimizers["discriminator"].param_groups[0]["params"]} == {
        id(p) for p in model.discriminator.parameters()}
    assert not {id(p) for p in model.optimizers["autoencoder"].param_groups[0]["params"]} & {
        id(p) for p in model.discriminator.parameters()}
    assert set(out) == {"adversarial", "reconstruction", "code_reconstruction", "objective", "discriminator"}
    assert all(torch.isfinite(v) for v in out.values()) and int(model.steps_done) == 1


def test_svae_judges_encoded_pairs_against_generated_ones():
    model = small(SVAE)
    x = batch_of(model)["x"]
    terms, judged = model.symmetric_terms(x)
    assert judged["x"].shape[0] == judged["z"].shape[0] == 2 * len(x)
    assert torch.equal(judged["x"][: len(x)], x) and not any(v.requires_grad for v in judged.values())
    assert all(terms[k].shape == (len(x),) for k in ("adversarial", "reconstruction", "code_reconstruction"))
    # each term reaches the encoder and the generator (Eq. 8: through the encoded and the generated pair)
    for name, term in terms.items():
        for module in AUTOENCODER:
            grads = torch.autograd.grad(term.sum(), list(getattr(model, module).parameters()), retain_graph=True,
                                        allow_unused=True)
            assert any(g is not None and g.abs().sum() > 0 for g in grads), (name, module)


def test_a_few_steps_fit_the_training_images():
    data_ = sparse_images(64)
    for cls in BASELINES:
        model = small(cls, data_, lr=3e-3)
        batch = batch_of(model, data_, n=64)
        first = model.train_step(batch)["reconstruction"]
        for _ in range(15):
            last = model.train_step(batch)["reconstruction"]
        assert last < 0.8 * first, cls.name


def test_bad_batches_are_refused():
    model = small(BetaVAE)
    batch = batch_of(model)
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\]"):
        model.train_step({"x": batch["x"] * 2 - 1})
    with pytest.raises(ValueError, match="batch has no 'x'.*make_batch"):
        model.train_step({"x_unlabelled": batch["x"]})


def test_checkpoint_round_trip():
    data_ = sparse_images(16)
    for cls in (DIPVAEII, SVAE):
        model = small(cls, data_, lambda_od=2.0) if cls is DIPVAEII else small(cls, data_)
        model.train_step(batch_of(model, data_))
        copy = Model.from_checkpoint(model.checkpoint()).eval()
        model.eval()
        assert type(copy) is cls and copy.config == model.config and int(copy.steps_done) == 1
        x = data_.images[:3]
        torch.testing.assert_close(copy.encode(x).unspecified, model.encode(x).unspecified)
        if cls is SVAE:
            z = torch.randn(3, 5)
            torch.testing.assert_close(copy.discriminator(x, z), model.discriminator(x, z))


def test_the_module_imports_no_other_model_module():
    tree = ast.parse(Path(ruiz_baselines.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    models = {m for m in imported if m and m.startswith("dislib.models")}
    assert models == {"dislib.models.base", "dislib.models.base.ruiz"}  # shared blocks only
    names = {cls.name for cls in BASELINES}
    assert names == {"ruizvae", "betavae", "dipvae1", "dipvae2", "svae"} and names <= set(MODELS)


def test_the_command_line_trains_and_evaluates_a_baseline(monkeypatch, tmp_path, capsys):
    loader = lambda split, root: sparse_images(32, size=16, seed=int(split == "test"))  # noqa: E731
    monkeypatch.setitem(data._LOADERS, "styled-like", loader)
    out = tmp_path / "svae"
    args = ["train", "svae", "--dataset", "styled-like", "--preset", "styled-mnist", "--budget", "smoke",
            "--out", str(out)]
    assert cli.main(args) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"] == "svae" and trained["steps"] == 20
    assert cli.main(["evaluate", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["model"] == "svae" and math.isfinite(evaluated["test_reconstruction"])
    assert math.isfinite(evaluated["test_kl"])
