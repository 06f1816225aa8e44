"""Ruiz et al. (2019): the loss terms by hand, the blocks of App. D, the order of Algorithm 1, which
term trains which player, the batches of two sets, the discriminators' dropped inputs, and errors."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from dislib import losses
from dislib.data.base import ImageDataset
from dislib.models import RbVAE, RbVAEConfig, SRbVAE, SRbVAEConfig
from dislib.models.base import Model
from dislib.models.ruiz import BOUND_START, LIGHT_CODE_RECONSTRUCTION, NARROW_COMMON, SPLIT, bound_parts, rbvae_objective, rbvae_objective_parts, srbvae_objective, srbvae_objective_parts, stroke_drawn
from dislib.nn import InputDrop, PixelNorm, Zoom, laplace_sample

SMALL = dict(widths=(4, 8), specified_dim=3, unspecified_dim=5)
SMALL_DISCRIMINATORS = dict(discriminator_widths=(4, 8), discriminator_image_features=8, discriminator_code_features=4,
                            discriminator_hidden=8)
ENCODERS = ("specified_encoder", "unspecified_encoder", "decoder", "reference_code")
PLAYERS = ENCODERS + ("discriminator", "reference_discriminator")


def styled_like(n: int = 24, size: int = 16, seed: int = 0) -> ImageDataset:
    """Sparse random RGB images (a few lit pixels on black), labels alternating unlabelled (0) and
    reference (1), like styled-mnist's."""
    g = torch.Generator().manual_seed(seed)
    lit = (torch.rand(n, 1, size, size, generator=g) > 0.85).float()
    images = lit * torch.rand(n, 3, 1, 1, generator=g)
    return ImageDataset(images, torch.arange(n) % 2, 2, "styled-like", class_names=("unlabelled", "reference"))


def small(cls: type, data: ImageDataset | None = None, **overrides):
    torch.manual_seed(0)
    extra = SMALL_DISCRIMINATORS if cls is SRbVAE else {}
    return cls.for_dataset(data or styled_like(), **{**SMALL, **extra, **overrides})


def batch_of(model, data: ImageDataset | None = None, n: int = 8) -> dict[str, Tensor]:
    return model.make_batch(data or styled_like(), torch.arange(n), torch.Generator().manual_seed(1))


def _parameters(model, name: str) -> list[Tensor]:
    module = getattr(model, name)
    return list(module.parameters()) if isinstance(module, torch.nn.Module) else [module]


def _snapshot(model, names: tuple[str, ...]) -> dict[str, list[Tensor]]:
    return {name: [p.detach().clone() for p in _parameters(model, name)] for name in names}


# the loss terms, by hand ---------------------------------------------------------------------
def test_reference_vae_bound_by_hand():
    nll, kl_z, kl_e = torch.tensor([10.0]), torch.tensor([2.0]), torch.tensor([3.0])
    # unlabelled image: KL_z + KL_e + NLL = 2 + 3 + 10; reference image: no KL for e (a delta at e_r), 2 + 10
    assert losses.reference_vae_bound(nll, kl_z, kl_e).item() == 15.0
    assert losses.reference_vae_bound(nll, kl_z).item() == 12.0


def test_gaussian_code_nll_by_hand():
    code, mu, logvar = torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2), torch.tensor([[0.0, math.log(4.0)]])
    # 1/2 [(1 - 0)^2 / 1 + log 1 + log 2 pi] + 1/2 [0 / 4 + log 4 + log 2 pi] = 1/2 + log 2 + log 2 pi
    expected = 0.5 + math.log(2.0) + math.log(2 * math.pi)
    assert losses.gaussian_code_nll(code, mu, logvar).item() == pytest.approx(expected, rel=1e-6)
    # the same as torch's Normal log-density, negated and summed over the dimensions
    normal = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    by_torch = -normal.log_prob(code).sum().item()
    assert losses.gaussian_code_nll(code, mu, logvar).item() == pytest.approx(by_torch, rel=1e-6)


def test_symmetric_kl_adversarial_by_hand():
    # Eq. 8 per pair: d(x, z, e) - d(x^, z^, e^) = [2 - 0.5, -1 - 1]
    q, p = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.0])
    assert losses.symmetric_kl_adversarial(q, p).tolist() == [1.5, -2.0]


def test_density_ratio_loss_by_hand():
    q, p = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -2.0])
    # d = 0 on both sides: 1/2 (log 2 + log 2) = log 2
    # d_q = 2, d_p = -2: 1/2 (softplus(-2) + softplus(-2)) = log(1 + e^-2)
    expected = [math.log(2.0), math.log(1.0 + math.exp(-2.0))]
    torch.testing.assert_close(losses.density_ratio_loss(q, p), torch.tensor(expected))
    # Algorithm 1's sides: the loss falls as d grows on encoded pairs and shrinks on generated ones
    right, wrong = torch.tensor([3.0]), torch.tensor([-3.0])
    assert losses.density_ratio_loss(right, wrong) < losses.density_ratio_loss(wrong, right)


def test_rbvae_objective_weights_each_term_by_hand():
    config = RbVAEConfig(reconstruction_weight=2.0, kl_weight=3.0)
    terms = {"reconstruction": torch.tensor([1.0, 3.0]), "kl_e": torch.tensor([1.0, 1.0]),
             "kl_z": torch.tensor([2.0, 2.0]), "reference_reconstruction": torch.tensor([4.0]),
             "reference_kl_z": torch.tensor([1.0])}
    # unlabelled: mean(2 * [1, 3] + 3 * (1 + 2)) = 4 + 9 = 13; reference: 2 * 4 + 3 * 1 = 11; Eq. 3 adds the two
    assert rbvae_objective(terms, config).item() == pytest.approx(24.0)


def test_srbvae_objective_weights_each_term_by_hand():
    config = SRbVAEConfig(adversarial_weight=2.0, reconstruction_weight=3.0, code_reconstruction_weight=5.0)
    one = torch.ones(2)
    terms = {"adversarial": one, "reconstruction": one, "code_reconstruction": one,
             "reference_adversarial": -one[:1], "reference_reconstruction": one[:1],
             "reference_code_reconstruction": one[:1]}
    # unlabelled: 2 + 3 + 5 = 10; reference: -2 + 3 + 5 = 6
    assert srbvae_objective(terms, config).item() == pytest.approx(16.0)


def test_objective_parts_add_up_to_the_objective():
    torch.manual_seed(0)
    rb = {k: torch.rand(3) for k in ("reconstruction", "kl_e", "kl_z")} | {
        k: torch.rand(2) for k in ("reference_reconstruction", "reference_kl_z")}
    config = RbVAEConfig(reconstruction_weight=2.0, kl_weight=3.0)
    parts = rbvae_objective_parts(rb, config)
    assert set(parts) == {"reconstruction", "kl"}
    assert sum(parts.values()).item() == pytest.approx(rbvae_objective(rb, config).item())
    srb = {k: torch.rand(3) for k in ("adversarial", "reconstruction", "code_reconstruction")} | {
        k: torch.rand(2) for k in ("reference_adversarial", "reference_reconstruction", "reference_code_reconstruction")}
    config = SRbVAEConfig(adversarial_weight=2.0, reconstruction_weight=3.0, code_reconstruction_weight=5.0)
    parts = srbvae_objective_parts(srb, config)
    assert set(parts) == {"adversarial", "reconstruction", "code_reconstruction"}
    assert sum(parts.values()).item() == pytest.approx(srbvae_objective(srb, config).item())


def test_the_set_mmd_extension_is_one_more_part_and_pulls_z_of_the_two_sets_together():
    terms = {k: torch.ones(3) for k in ("reconstruction", "kl_e", "kl_z")} | {
        k: torch.ones(2) for k in ("reference_reconstruction", "reference_kl_z")} | {"set_mmd": torch.full((3,), 0.5)}
    config = RbVAEConfig(set_mmd_weight=4.0)
    parts = rbvae_objective_parts(terms, config)
    assert parts["set_mmd"].item() == pytest.approx(2.0)
    assert rbvae_objective(terms, config).item() == pytest.approx(sum(parts.values()).item())
    assert "set_mmd" not in rbvae_objective_parts(terms, RbVAEConfig())  # weight 0: the paper, no such part
    for cls in (RbVAE, SRbVAE):
        model = small(cls, set_mmd_weight=10.0)
        batch = batch_of(model)
        shares = model.diagnose(batch)
        assert shares["gradient_share_set_mmd"] > 0
        x, x_reference = model.check_batch(batch)
        posterior = model.posterior_samples(x, x_reference)
        mmd = model.reconstruction_terms(x, x_reference, posterior)["set_mmd"]
        assert mmd.shape == (len(x),) and mmd[0].item() > 0
        gradient = torch.autograd.grad(mmd[0], list(model.unspecified_encoder.parameters()))
        assert any(g.abs().sum() > 0 for g in gradient)  # it trains q(z|x)
        assert "set_mmd" not in small(cls).reconstruction_terms(x, x_reference, posterior)


def test_stroke_drawn_counts_the_reference_stroke_a_reconstruction_draws():
    x = torch.zeros(2, 3, 4, 4)
    x[0, :, 0, :] = 1.0  # a white stroke of four pixels
    drawn = torch.zeros_like(x)
    drawn[0, :, 0, :3] = 0.9  # three of them drawn
    drawn[0, :, 3, :] = 1.0  # and pixels off the stroke, which do not count
    assert stroke_drawn(drawn, x).tolist() == pytest.approx([0.75, 1.0])  # the second image has no stroke
    assert stroke_drawn(torch.zeros_like(x), x)[0].item() == 0.0


def test_diagnose_gives_each_objective_part_its_share_of_the_gradient():
    for cls, parts in ((RbVAE, {"reconstruction", "kl"}), (SRbVAE, {"adversarial", "reconstruction", "code_reconstruction"})):
        model = small(cls)
        before = _snapshot(model, ENCODERS)
        shares = model.diagnose(batch_of(model))
        assert set(shares) == {f"gradient_share_{p}" for p in parts}
        assert sum(shares.values()) == pytest.approx(1.0) and all(v > 0 for v in shares.values())
        after = _snapshot(model, ENCODERS)
        assert all(torch.equal(a, b) for k in ENCODERS for a, b in zip(before[k], after[k]))  # nothing steps
    # a part with a hundred times the weight takes a larger share
    light, heavy = (small(SRbVAE, adversarial_weight=w) for w in (1.0, 100.0))
    heavy.load_state_dict(light.state_dict())
    batch = batch_of(light)
    torch.manual_seed(1)
    first = light.diagnose(batch)["gradient_share_adversarial"]
    torch.manual_seed(1)
    assert heavy.diagnose(batch)["gradient_share_adversarial"] > first


def test_laplace_sample_has_the_mean_and_scale_and_passes_gradients():
    torch.manual_seed(0)
    mean = torch.full((200_000,), 0.5, requires_grad=True)
    x = laplace_sample(mean, 0.005)
    # a Laplace of scale b: median at the mean and E|x - mean| = b
    assert x.median().item() == pytest.approx(0.5, abs=2e-4)
    assert (x - 0.5).abs().mean().item() == pytest.approx(0.005, rel=0.02)
    x.sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean))  # reparameterised: dx / dmean = 1
    assert torch.isfinite(laplace_sample(torch.zeros(10, dtype=torch.bfloat16), 0.005)).all()


def test_paper_scale_is_halved_on_dislib_pixels():
    # the same images and means on [-1, 1] with b = 0.01, and on [0, 1] with b = 0.005: the errors halve with
    # the scale, so the NLLs differ only by the constant P log 2 (P pixels) of the normaliser log 2b
    target, mean = torch.tensor([[0.2, 0.9]]), torch.tensor([[0.25, 0.7]])
    paper = losses.laplace_nll(2 * mean - 1, 2 * target - 1, 0.01)
    ours = losses.laplace_nll(mean, target, RbVAEConfig().pixel_scale)
    assert (paper - ours).item() == pytest.approx(2 * math.log(2), rel=1e-5)


# the blocks of App. D ------------------------------------------------------------------------
def test_pixel_norm_by_hand():
    a = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)
    # the mean square over the channels is (9 + 16) / 2 = 12.5, so b = (3, 4) / sqrt(12.5)
    torch.testing.assert_close(PixelNorm()(a).flatten(), torch.tensor([3.0, 4.0]) / math.sqrt(12.5))
    assert PixelNorm()(torch.randn(4, 8, 3, 3)).pow(2).mean(1).allclose(torch.ones(4, 3, 3), atol=1e-5)


def test_input_drop_zeroes_whole_groups_with_probability_p_in_training_only():
    torch.manual_seed(0)
    drop = InputDrop(0.25).train()
    groups = [torch.ones(20_000, 3), torch.ones(20_000, 2)]
    out = drop(groups)
    for g in out:
        # a group is all zero or all 1 / (1 - 0.25) = 4/3, for each example
        values = g.unique()
        assert len(values) == 2 and values[0] == 0 and values[1].item() == pytest.approx(4 / 3)
        assert (g == g[:, :1]).all()
        assert (g[:, 0] == 0).float().mean().item() == pytest.approx(0.25, abs=0.015)
    both = ((out[0][:, 0] == 0) & (out[1][:, 0] == 0)).float().mean().item()
    assert both == pytest.approx(0.25**2, abs=0.01)  # independent per group
    drop.eval()
    assert all(torch.equal(a, b) for a, b in zip(drop(groups), groups))


def test_the_discriminators_drop_their_last_layers_inputs_at_train_time_only():
    model = small(SRbVAE)
    d = model.discriminator
    assert d.drop.p == 0.25 and model.reference_discriminator.drop.p == 0.25 == SRbVAEConfig().input_drop
    seen = []
    d.hidden.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach()))
    x, z, e = torch.rand(4_000, 3, 16, 16), torch.randn(4_000, 5), torch.randn(4_000, 3)
    with torch.no_grad():
        d.train()(x, z, e)
        d.eval()(x, z, e)
    trained, evaluated = seen
    # the hidden layer reads [image features (8), z's (4), e's (4)]:
    # in training each block is zero for a quarter of the examples
    for block in (slice(0, 8), slice(8, 12), slice(12, 16)):
        zero = (trained[:, block] == 0).all(1).float().mean().item()
        assert zero == pytest.approx(0.25, abs=0.03)
        assert not (evaluated[:, block] == 0).all(1).any()
    torch.testing.assert_close(d.eval()(x[:5], z[:5], e[:5]), d(x[:5], z[:5], e[:5]))  # deterministic in eval mode


# the model -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [RbVAE, SRbVAE])
def test_encode_decode_sample_and_evaluate(cls):
    data = styled_like()
    model = small(cls, data).eval()
    codes = model.encode(data.images[:6])
    assert codes.specified.shape == codes.specified_logvar.shape == (6, 3)
    assert codes.unspecified.shape == codes.unspecified_logvar.shape == (6, 5)
    images = model.decode(codes.specified, codes.unspecified)
    assert images.shape == (6, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert model.sample(codes.unspecified).shape == (6, 3, 16, 16)
    assert isinstance(model.reference_code, torch.nn.Parameter) and model.reference_codes(2).shape == (2, 3)
    metrics = model.evaluate(data)
    assert set(metrics) == {"test_reconstruction", "test_reference_reconstruction", "test_kl_e", "test_kl_z"}
    unlabelled_only = data.subset(data.labels == 0)
    assert set(model.evaluate(unlabelled_only)) == {"test_reconstruction", "test_kl_e", "test_kl_z"}


def test_the_paper_preset_and_the_laptop_preset():
    data = styled_like(size=32)
    data = ImageDataset(data.images, data.labels, 2, "styled-mnist")
    for cls in (RbVAE, SRbVAE):
        paper = cls.PRESETS["styled-mnist-paper"]
        sizes = (paper.specified_dim, paper.unspecified_dim, paper.image_size, paper.widths)
        assert sizes == (32, 32, 64, (32, 64, 128, 256))
        optimiser_and_likelihood = (paper.lr, paper.betas, paper.eps, paper.pixel_scale, paper.likelihood)
        assert optimiser_and_likelihood == (1e-4, (0.5, 0.99), 1e-8, 0.005, "laplace-linear")  # ours: a linear location (losses.location)
        assert cls.budget("full").batch_size == 36
        laptop = cls.for_dataset(data)  # the dataset's own preset
        assert laptop.config.widths == (16, 32, 64, 128) and laptop.config.image_size == 32
        assert (laptop.config.likelihood, laptop.config.pixel_scale, laptop.config.lr) == ("gaussian", 0.05, 5e-4)
        literal = cls.PRESETS["styled-mnist-literal"]  # the paper's recipe on the laptop networks
        assert (literal.widths, literal.image_size) == ((16, 32, 64, 128), 32)
        assert (literal.lr, literal.betas, literal.eps, literal.pixel_scale, literal.likelihood) == optimiser_and_likelihood
        assert literal.set_mmd_weight == 0.0 == laptop.config.set_mmd_weight
        optimizer = laptop.optimizers["autoencoder"]
        assert optimizer.defaults["betas"] == (0.5, 0.99) and optimizer.defaults["eps"] == 1e-8
    assert SRbVAE.PRESETS["styled-mnist-paper"].discriminator_widths == (32, 64, 128, 256)
    laptop, literal = SRbVAE.PRESETS["styled-mnist"], SRbVAE.PRESETS["styled-mnist-literal"]
    assert (laptop.adversarial_weight, laptop.code_reconstruction_weight) == (100.0, 100.0)
    assert (literal.adversarial_weight, literal.code_reconstruction_weight) == (1.0, 1.0)
    assert literal.discriminator_widths == laptop.discriminator_widths == (16, 32, 64, 128)


def test_the_split_preset_is_the_laptop_recipe_with_the_named_extensions():
    like = styled_like(size=32)
    data = ImageDataset(like.images, like.labels, 2, "styled-mnist")
    for cls, extensions in ((RbVAE, NARROW_COMMON), (SRbVAE, {**NARROW_COMMON, **BOUND_START, **LIGHT_CODE_RECONSTRUCTION})):
        split = cls.for_dataset(data, SPLIT).config
        assert split == dataclasses.replace(cls.PRESETS["styled-mnist"], **extensions)
        assert (split.unspecified_dim, split.specified_dim) == (8, 32)
    assert SRbVAE.PRESETS[SPLIT].bound_steps == 1_000 and SRbVAE.PRESETS["styled-mnist"].bound_steps == 0
    assert (SRbVAE.PRESETS[SPLIT].code_reconstruction_weight, SRbVAE.PRESETS["styled-mnist"].code_reconstruction_weight) == (10.0, 100.0)
    with pytest.raises(KeyError, match="presets: .*'styled-mnist-split'"):
        RbVAE.for_dataset(data, "styled-mnist-splitt")


def test_rbvae_step_and_which_term_trains_which_player():
    model = small(RbVAE)
    batch = batch_of(model)
    steps = []
    original = model.optimizer_step

    def recording(name: str, loss: Tensor) -> None:
        before = _snapshot(model, ENCODERS)
        original(name, loss)
        after = _snapshot(model, ENCODERS)
        steps.append((name, {k for k in ENCODERS if any(not torch.equal(a, b) for a, b in zip(before[k], after[k]))}))

    model.optimizer_step = recording
    out = model.train_step(batch)
    assert steps == [("autoencoder", set(ENCODERS))]
    assert set(out) == {"reconstruction", "kl_e", "kl_z", "reference_reconstruction", "reference_kl_z", "objective",
                        "reference_stroke_drawn"}
    assert 0.0 <= out["reference_stroke_drawn"] <= 1.0
    assert int(model.steps_done) == 1
    terms = model.bound_terms(batch["x_unlabelled"], batch["x_reference"])
    reaches = {
        "reconstruction": {"specified_encoder", "unspecified_encoder", "decoder"},
        "kl_e": {"specified_encoder"},
        "kl_z": {"unspecified_encoder"},
        "reference_reconstruction": {"unspecified_encoder", "decoder", "reference_code"},  # e_r, never q(e|x)
        "reference_kl_z": {"unspecified_encoder"},
    }
    _assert_reaches(model, terms, reaches)


def _assert_reaches(model, terms: dict[str, Tensor], reaches: dict[str, set[str]]) -> None:
    for term, expected in reaches.items():
        reached = set()
        for name in ENCODERS:
            params = _parameters(model, name)
            grads = torch.autograd.grad(terms[term].sum(), params, retain_graph=True, allow_unused=True)
            if any(g is not None and g.abs().sum() > 0 for g in grads):
                reached.add(name)
        assert reached == expected, term


def test_srbvae_step_follows_algorithm_1_and_each_player_steps_its_own_optimizer():
    model = small(SRbVAE)
    batch = batch_of(model)
    steps = []
    original = model.optimizer_step

    def recording(name: str, loss: Tensor) -> None:
        discriminators = ("discriminator", "reference_discriminator")
        frozen = {k: not any(p.requires_grad for p in _parameters(model, k)) for k in discriminators}
        before = _snapshot(model, PLAYERS)
        original(name, loss)
        after = _snapshot(model, PLAYERS)
        changed = {k for k in PLAYERS if any(not torch.equal(a, b) for a, b in zip(before[k], after[k]))}
        steps.append((name, changed, frozen))

    model.optimizer_step = recording
    out = model.train_step(batch)
    assert [(name, changed) for name, changed, _ in steps] == [
        ("autoencoder", set(ENCODERS)),  # lines 1-14: the encoders, the generator and e_r
        ("discriminator", {"discriminator"}),  # line 16
        ("reference_discriminator", {"reference_discriminator"}),  # line 18
    ]
    assert steps[0][2] == {"discriminator": True, "reference_discriminator": True}  # frozen while the others step
    assert steps[1][2] == {"discriminator": False, "reference_discriminator": False}
    assert set(model.optimizers) == {"autoencoder", "discriminator", "reference_discriminator"}
    assert set(out) == {"adversarial", "reference_adversarial", "reconstruction", "reference_reconstruction",
                        "code_reconstruction", "reference_code_reconstruction", "objective", "discriminator",
                        "reference_discriminator", "reference_stroke_drawn", "kl_e", "kl_z", "reference_kl_z"}
    assert all(torch.isfinite(v) for v in out.values()) and int(model.steps_done) == 1


def test_srbvae_bound_steps_train_on_eq_3_first_and_the_game_after():
    """The extension's first ``bound_steps`` steps: the encoders and generator minimise Rb-VAE's bound
    (reconstructions + KLs, no adversarial or code term) while the discriminators step as usual."""
    model = small(SRbVAE, bound_steps=2)
    batch = batch_of(model)
    x, x_reference = model.check_batch(batch)
    objectives = []
    for _ in range(3):
        torch.manual_seed(3)
        parts = model.objective_parts(x, x_reference)
        torch.manual_seed(3)
        terms = model.autoencoder_terms(x, x_reference)[0]
        objectives.append((set(parts), terms))
        before = _snapshot(model, ("discriminator",))
        model.train_step(batch)
        assert any(not torch.equal(a, b) for a, b in zip(before["discriminator"], _snapshot(model, ("discriminator",))["discriminator"]))
    assert objectives[0][0] == objectives[1][0] == {"reconstruction", "kl"}
    assert objectives[2][0] == {"adversarial", "reconstruction", "code_reconstruction"}
    terms = objectives[0][1]
    expected = (terms["reconstruction"].mean() + terms["reference_reconstruction"].mean()
                + (terms["kl_z"] + terms["kl_e"]).mean() + terms["reference_kl_z"].mean())
    assert sum(bound_parts(terms).values()).item() == pytest.approx(expected.item())


def test_rbvae_objective_parts_are_the_bound_parts_with_its_weights():
    terms = {k: torch.tensor([v]) for k, v in dict(reconstruction=10.0, reference_reconstruction=4.0, kl_e=3.0, kl_z=2.0,
                                                   reference_kl_z=1.0).items()}
    config = RbVAEConfig(reconstruction_weight=2.0, kl_weight=0.5, kl_z_weight=3.0)
    assert {k: v.item() for k, v in rbvae_objective_parts(terms, config).items()} == {
        k: v.item() for k, v in bound_parts(terms, 2.0, 0.5, 3.0).items()} == {"reconstruction": 28.0, "kl": 6.0}


def test_each_srbvae_term_reaches_the_players_of_its_equation():
    model = small(SRbVAE)
    batch = batch_of(model)
    terms, judged = model.autoencoder_terms(batch["x_unlabelled"], batch["x_reference"])
    _assert_reaches(model, terms, {
        # Eq. 8: encoders through the encoded pair, the generator through the generated one
        "adversarial": {"specified_encoder", "unspecified_encoder", "decoder"},
        "reference_adversarial": {"unspecified_encoder", "decoder", "reference_code"},
        # Eq. 10
        "reconstruction": {"specified_encoder", "unspecified_encoder", "decoder"},
        "reference_reconstruction": {"unspecified_encoder", "decoder", "reference_code"},
        "code_reconstruction": {"specified_encoder", "unspecified_encoder", "decoder"},
        "reference_code_reconstruction": {"unspecified_encoder", "decoder", "reference_code"},
    })
    n, n_reference = len(batch["x_unlabelled"]), len(batch["x_reference"])
    assert judged["x"].shape[0] == judged["z"].shape[0] == judged["e"].shape[0] == 2 * n
    assert judged["x_reference"].shape[0] == judged["z_reference"].shape[0] == 2 * n_reference
    assert torch.equal(judged["x"][:n], batch["x_unlabelled"]) and not any(v.requires_grad for v in judged.values())
    # the generated reference images come from e_r: with e_r moved, they change
    torch.manual_seed(3)
    before = model.generate(model.reference_codes(2), torch.zeros(2, 5))
    with torch.no_grad():
        model.reference_code += 1.0
    torch.manual_seed(3)
    assert not torch.allclose(before, model.generate(model.reference_codes(2), torch.zeros(2, 5)))


def test_a_few_steps_fit_the_training_images():
    data = styled_like(n=16, size=16)
    for cls in (RbVAE, SRbVAE):
        model = small(cls, data, lr=3e-3)
        batch = batch_of(model, data, n=16)
        first = model.train_step(batch)["reconstruction"]
        for _ in range(30):
            last = model.train_step(batch)["reconstruction"]
        assert last < 0.9 * first, cls.name


# batches of two sets -------------------------------------------------------------------------
def test_make_batch_takes_half_from_each_set_drawn_ones_first():
    data = styled_like(n=40)
    model = small(RbVAE, data)
    indices = torch.tensor([0, 2, 4, 6, 8, 10, 1, 12])  # seven unlabelled images (even), one reference (odd)
    batch = model.make_batch(data, indices, torch.Generator().manual_seed(0))
    assert len(batch["x_unlabelled"]) == len(batch["x_reference"]) == 4
    assert torch.equal(batch["x_unlabelled"], data.images[[0, 2, 4, 6]])  # the first four drawn
    assert torch.equal(batch["x_reference"][0], data.images[1])  # the drawn reference image, then three more
    odd = data.images[1::2]
    assert all(any(torch.equal(image, r) for r in odd) for image in batch["x_reference"])
    again = model.make_batch(data, indices, torch.Generator().manual_seed(0))
    assert torch.equal(again["x_reference"], batch["x_reference"])  # the generator decides the top-up
    big = model.make_batch(styled_like(n=72), torch.arange(36), torch.Generator().manual_seed(0))
    assert len(big["x_unlabelled"]) == len(big["x_reference"]) == 18  # the paper's 18 + 18


def test_any_labelled_data_works_with_one_class_as_the_reference_set():
    data = styled_like(n=24)
    data = ImageDataset(data.images, torch.arange(24) % 4, 4, "four-classes")
    model = small(RbVAE, data, reference_label=3)
    batch = model.make_batch(data, torch.arange(8), torch.Generator().manual_seed(0))
    assert all(any(torch.equal(image, r) for r in data.images[3::4]) for image in batch["x_reference"])
    assert not any(any(torch.equal(image, r) for r in data.images[3::4]) for image in batch["x_unlabelled"])


# bad input -----------------------------------------------------------------------------------
def test_a_batch_without_reference_images_is_refused():
    model = small(RbVAE)
    batch = batch_of(model)
    with pytest.raises(ValueError, match="no reference images \\('x_reference'.*make_batch"):
        model.train_step({"x_unlabelled": batch["x_unlabelled"]})
    with pytest.raises(ValueError, match="no reference images"):
        model.train_step({**batch, "x_reference": batch["x_reference"][:0]})
    with pytest.raises(ValueError, match="no unlabelled images"):
        small(SRbVAE).train_step({"x_reference": batch["x_reference"]})
    only_unlabelled = styled_like()
    only_unlabelled = ImageDataset(only_unlabelled.images, torch.zeros(24, dtype=torch.long), 2, "no-reference")
    with pytest.raises(ValueError, match="the data has no reference images \\(label 1\\)"):
        batch_of(model, only_unlabelled)
    with pytest.raises(ValueError, match="at least 2 images"):
        model.make_batch(styled_like(), torch.arange(1), torch.Generator())


def test_images_outside_the_pixel_range_are_refused():
    model = small(SRbVAE)
    batch = batch_of(model)
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\].*\(x \+ 1\) / 2"):
        model.train_step({**batch, "x_reference": batch["x_reference"] * 2 - 1})
    with pytest.raises(ValueError, match="expects images of shape"):
        model.train_step({**batch, "x_unlabelled": batch["x_unlabelled"][:, :1]})


@pytest.mark.parametrize(
    "cls, overrides, message",
    [
        (RbVAEConfig, dict(kl_weight=-1.0), "kl_weight must be >= 0"),
        (RbVAEConfig, dict(set_mmd_weight=float("inf")), "set_mmd_weight must be >= 0 and finite"),
        (RbVAEConfig, dict(reconstruction_weight=-0.5), "reconstruction_weight must be >= 0"),
        (SRbVAEConfig, dict(adversarial_weight=-1.0), "adversarial_weight must be >= 0"),
        (SRbVAEConfig, dict(code_reconstruction_weight=float("nan")), "code_reconstruction_weight must be >= 0"),
        (SRbVAEConfig, dict(input_drop=1.0), r"input_drop is a probability in \[0, 1\)"),
        (SRbVAEConfig, dict(bound_steps=-1), r"bound_steps is a number of steps \(>= 0\)"),
        (RbVAEConfig, dict(reference_label=2), "reference_label must be one of the 2 labels"),
        (RbVAEConfig, dict(pixel_scale=0.0), "pixel scale > 0"),
        (RbVAEConfig, dict(image_size=8), "need images of at least 16 pixels"),
    ],
)
def test_bad_settings_are_named(cls, overrides, message):
    with pytest.raises(ValueError, match=message):
        cls(**overrides)


def test_checkpoint_round_trip_keeps_e_r_and_the_discriminators():
    data = styled_like()
    model = small(SRbVAE, data)
    model.train_step(batch_of(model, data))
    copy = Model.from_checkpoint(model.checkpoint()).eval()
    model.eval()
    assert isinstance(copy, SRbVAE) and int(copy.steps_done) == 1
    torch.testing.assert_close(copy.reference_code, model.reference_code)
    x, z, e = data.images[:3], torch.randn(3, 5), torch.randn(3, 3)
    torch.testing.assert_close(copy.discriminator(x, z, e), model.discriminator(x, z, e))
    torch.testing.assert_close(copy.encode(x).specified, model.encode(x).specified)
    assert F.mse_loss(copy.decode(e, z), model.decode(e, z)).item() == 0.0


def test_the_loop_records_the_gradient_shares_at_every_evaluation():
    from dislib.models.base import Budget
    from dislib.train import fit

    data = styled_like(n=60)
    model = small(RbVAE, data)
    history = fit(model, data, data, budget=Budget(steps=4, batch_size=8, eval_every=2), progress=False)
    assert history.steps == [2, 4]
    for metrics in history.metrics:
        assert metrics["gradient_share_reconstruction"] + metrics["gradient_share_kl"] == pytest.approx(1.0)
    assert all(0.0 <= losses_["reference_stroke_drawn"] <= 1.0 for losses_ in history.losses)


@pytest.mark.parametrize("cls", [RbVAE, SRbVAE])
def test_the_set_classifier_extension_trains_its_own_player_and_pulls_on_z(cls):
    model = small(cls, set_adversary_weight=10.0, set_adversary_steps=3)
    batch = batch_of(model)
    before = [p.detach().clone() for p in model.set_classifier.parameters()]
    assert model.diagnose(batch)["gradient_share_set_adversarial"] > 0
    out = model.train_step(batch)
    assert 0 < out["set_classifier"].item() < 10 and out["set_adversarial"].item() > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.set_classifier.parameters()))  # it learns
    assert "set_classifier" not in small(cls).optimizers and not hasattr(small(cls), "set_classifier")  # 0: the paper


@pytest.mark.parametrize("cls", [RbVAE, SRbVAE])
def test_the_reference_swap_extension_waits_for_its_start_then_trains_the_encoder_and_generator(cls):
    model = small(cls, reference_swap_weight=10.0, reference_cycle_weight=1.0, extension_start=2)
    batch = batch_of(model)
    assert not {"gradient_share_reference_swap", "gradient_share_reference_cycle"} & set(model.diagnose(batch))
    model.train_step(batch)
    model.train_step(batch)
    shares = model.diagnose(batch)
    assert shares["gradient_share_reference_swap"] > 0 and shares["gradient_share_reference_cycle"] > 0
    x, x_reference = model.check_batch(batch)
    terms = model.reconstruction_terms(x, x_reference, model.posterior_samples(x, x_reference))
    assert terms["reference_swap"].shape == terms["reference_cycle"].shape == (len(x),)
    gradient = torch.autograd.grad(terms["reference_swap"][0], [model.reference_code])
    assert gradient[0].abs().sum() > 0  # the swapped images are decoded from e_r


def test_image_mmd_is_zero_for_one_set_and_grows_with_the_difference():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 8, 8, generator=g)
    assert losses.image_mmd(images, images).item() == pytest.approx(0.0, abs=1e-6)
    near, far = losses.image_mmd(images, (images + 0.05).clamp(0, 1)), losses.image_mmd(images, torch.zeros_like(images))
    assert 0 < near.item() < far.item()


@pytest.mark.parametrize("setting", [dict(set_adversary_steps=0), dict(extension_start=-1)])
def test_the_extensions_refuse_impossible_settings(setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        RbVAEConfig(**setting)


def test_the_kl_of_z_weight_multiplies_only_the_kl_of_z_of_both_sets():
    terms = {k: torch.ones(3) for k in ("reconstruction", "kl_e", "kl_z")} | {
        k: torch.ones(2) for k in ("reference_reconstruction", "reference_kl_z")}
    assert rbvae_objective_parts(terms, RbVAEConfig())["kl"].item() == pytest.approx(3.0)
    parts = rbvae_objective_parts(terms, RbVAEConfig(kl_z_weight=4.0))
    assert parts["kl"].item() == pytest.approx(4.0 + 1.0 + 4.0)  # KL_z, KL_e of the unlabelled images, KL_z of the reference ones
    assert rbvae_objective(terms, RbVAEConfig(kl_z_weight=4.0)).item() == pytest.approx(sum(parts.values()).item())


def test_reference_stroke_is_the_share_of_the_reference_stroke_the_reference_branch_draws():
    model = small(RbVAE).eval()
    data = styled_like()
    reference = data.images[data.labels == 1]
    drawn = model.reference_stroke(reference)
    with torch.no_grad():
        rebuilt = model.decode(model.reference_codes(len(reference)), model.encode(reference).unspecified)
    assert 0.0 <= drawn <= 1.0 and drawn == pytest.approx(stroke_drawn(rebuilt, reference).mean().item())


def test_the_extensions_refuse_bad_input_with_the_fix():
    with pytest.raises(TypeError, match=r"RbVAEConfig.set_adversary_steps takes a whole number, got '5' \(str\)"):
        RbVAEConfig(set_adversary_steps="5")
    with pytest.raises(ValueError, match="two non-empty sets of images of one shape"):
        losses.image_mmd(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 16, 16))
    with pytest.raises(ValueError, match="two non-empty sets"):
        losses.image_mmd(torch.rand(0, 3, 8, 8), torch.rand(4, 3, 8, 8))
    with pytest.raises(ValueError, match="at least one reference image"):
        small(RbVAE).reference_stroke(torch.zeros(0, 3, 16, 16))


def test_zoom_starts_as_the_identity_and_a_factor_of_two_draws_the_image_at_half_size():
    zoom = Zoom(3)
    images = torch.zeros(2, 1, 16, 16)
    images[:, :, 4:12, 4:12] = 1.0  # a square of 8 pixels in the middle
    code = torch.randn(2, 3)
    assert torch.allclose(zoom(images, code), images, atol=1e-5)
    torch.nn.init.constant_(zoom.log_factor.bias, math.log(2.0))
    smaller = zoom(images, code)
    assert smaller[:, :, 6:10, 6:10].min() > 0.99 and smaller[:, :, :5].max() < 1e-5  # 4 pixels, centred
    assert smaller.sum().item() == pytest.approx(images.sum().item() / 4, rel=0.1)
    zoom(torch.rand(2, 1, 16, 16), code).sum().backward()
    assert zoom.log_factor.bias.grad.abs() > 0


@pytest.mark.parametrize("cls", [RbVAE, SRbVAE])
def test_target_zoom_lets_e_set_the_size_and_is_trained_with_the_autoencoder(cls):
    data = styled_like()
    assert small(cls, data).zoom is None  # the paper: no zoom
    model = small(cls, data, target_zoom=True)
    codes = model.eval().encode(data.images[:4])
    plain = small(cls, data)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("zoom.")})
    assert torch.allclose(model.decode(codes.specified, codes.unspecified), plain.decode(codes.specified, codes.unspecified),
                          atol=1e-5)  # the identity at the start
    assert torch.equal(model.zoom_factors(data.images[:4]), torch.ones(4))  # the identity at the start
    assert torch.equal(plain.zoom_factors(data.images[:4]), torch.ones(4))
    before = model.zoom.log_factor.weight.detach().clone()
    model.train().train_step(batch_of(model, data))
    assert not torch.equal(model.zoom.log_factor.weight, before)


def test_mean_target_squared_error_is_the_mean_square_of_the_prediction():
    predictions = torch.tensor([[1.0, -3.0], [0.0, 0.0]])
    assert losses.mean_target_squared_error(predictions).tolist() == [5.0, 0.0]  # (1 + 9) / 2, and 0 at the mean
    standard = losses.standardised(torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]]))
    assert torch.allclose(standard[:, 0], torch.tensor([-1.0, 0.0, 1.0])) and torch.equal(standard[:, 1], torch.zeros(3))


@pytest.mark.parametrize("cls", [RbVAE, SRbVAE])
def test_the_code_regressors_wait_for_their_start_learn_and_push_only_the_code_they_read(cls):
    model = small(cls, target_adversary_weight=10.0, common_adversary_weight=10.0, regressor_steps=3, extension_start=1)
    batch = batch_of(model)
    assert not {"gradient_share_target_adversarial", "gradient_share_common_adversarial"} & set(model.diagnose(batch))
    before = {name: [p.detach().clone() for p in r.parameters()] for name, r in model.regressors.items()}
    out = model.train_step(batch)
    assert 0 < out["target_regressor"].item() and 0 < out["common_regressor"].item()
    for name, regressor in model.regressors.items():  # each regressor learns on its own optimiser
        assert any(not torch.equal(a, b) for a, b in zip(before[name], regressor.parameters()))
    shares = model.diagnose(batch)
    assert shares["gradient_share_target_adversarial"] > 0 and shares["gradient_share_common_adversarial"] > 0
    x, x_reference = model.check_batch(batch)
    terms = model.reconstruction_terms(x, x_reference, model.posterior_samples(x, x_reference))
    assert terms["target_adversarial"].shape == terms["common_adversarial"].shape == (len(x),)
    for term, pushed, kept in (("target_adversarial", "unspecified_encoder", "specified_encoder"),
                               ("common_adversarial", "specified_encoder", "unspecified_encoder")):
        grads = torch.autograd.grad(terms[term].sum(), [*_parameters(model, pushed), *_parameters(model, kept)],
                                    retain_graph=True, allow_unused=True)
        n = len(_parameters(model, pushed))
        assert any(g is not None and g.abs().sum() > 0 for g in grads[:n])  # the code it reads is pushed
        assert all(g is None or g.abs().sum() == 0 for g in grads[n:])  # the code it predicts is only its target
    paper = small(cls)
    assert len(paper.regressors) == 0 and paper.regressor_updates(x) == {}  # weights 0: the paper


def test_the_regressors_refuse_impossible_settings():
    with pytest.raises(ValueError, match="regressor_steps is a number of updates per step"):
        RbVAEConfig(regressor_steps=0)
    with pytest.raises(ValueError, match="target_adversary_weight must be >= 0"):
        RbVAEConfig(target_adversary_weight=-1.0)
