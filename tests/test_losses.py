"""Each loss against a closed form or a value computed by hand."""

import math

import pytest
import torch

from dislib import losses


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form():
    zero = losses.kl_normal_standard(torch.zeros(3, 4), torch.zeros(3, 4))
    assert torch.allclose(zero, torch.zeros(3))
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[math.log(4.0), 0.0]])
    # 0.5 * [(4 + 1 - 1 - log 4) + (1 + 4 - 1 - 0)]
    expected = 0.5 * ((4 + 1 - 1 - math.log(4)) + 4)
    assert torch.allclose(losses.kl_normal_standard(mu, logvar), torch.tensor([expected]))


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(5, 7), torch.ones(5, 7))
    assert torch.allclose(losses.kl_normal_standard(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1), atol=1e-5)


def test_bernoulli_nll_by_hand():
    logits = torch.tensor([[[[0.0, 2.0]]]])
    x = torch.tensor([[[[1.0, 0.0]]]])
    expected = -math.log(0.5) - math.log(1 - 1 / (1 + math.exp(-2.0)))
    assert torch.allclose(losses.bernoulli_nll(logits, x), torch.tensor([expected]))


def test_gaussian_nll_matches_torch_distributions():
    mean, x = torch.rand(2, 1, 3, 3), torch.rand(2, 1, 3, 3)
    expected = -torch.distributions.Normal(mean, 0.1).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(losses.gaussian_nll(mean, x, 0.1), expected, atol=1e-4)


def test_gan_losses_by_hand():
    real, fake = torch.tensor([0.0, 3.0]), torch.tensor([0.0, -1.0])
    sigmoid = torch.sigmoid
    expected_d = -torch.log(sigmoid(real)) - torch.log(1 - sigmoid(fake))
    assert torch.allclose(losses.discriminator_loss(real, fake), expected_d, atol=1e-6)
    assert torch.allclose(losses.generator_loss_nonsaturating(fake), -torch.log(sigmoid(fake)), atol=1e-6)
    assert torch.allclose(losses.generator_loss_minimax(fake), torch.log(1 - sigmoid(fake)), atol=1e-6)


def test_minimax_generator_loss_saturates_where_nonsaturating_does_not():
    fake = torch.tensor([-8.0], requires_grad=True)  # D(G(z)) ~ 3e-4: the discriminator wins
    (g_minimax,) = torch.autograd.grad(losses.generator_loss_minimax(fake).sum(), fake)
    (g_ns,) = torch.autograd.grad(losses.generator_loss_nonsaturating(fake).sum(), fake)
    assert abs(g_minimax.item()) < 1e-3 < abs(g_ns.item())


def test_uniform_target_cross_entropy_is_log_c_at_uniform_and_larger_elsewhere():
    uniform = losses.uniform_target_cross_entropy(torch.zeros(2, 10))
    assert torch.allclose(uniform, torch.full((2,), math.log(10)))
    peaked = losses.uniform_target_cross_entropy(torch.tensor([[5.0, 0.0, 0.0]]))
    assert peaked.item() > math.log(3)
    # by hand: -(1/3) * sum log softmax
    logp = torch.log_softmax(torch.tensor([5.0, 0.0, 0.0]), 0)
    assert torch.allclose(peaked, -logp.mean())


def _mmd_by_definition(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    kernel = lambda u, v: sum(torch.exp(-torch.cdist(u, v).pow(2) / (2 * h**2 * dim)) for h in losses.BANDWIDTHS).mean()
    return kernel(a, a) + kernel(b, b) - 2 * kernel(a, b)


def test_class_mmd_is_the_mean_over_classes_of_the_mmd_of_each_class_to_the_batch():
    g = torch.Generator().manual_seed(0)
    codes, labels = torch.randn(60, 3, generator=g), torch.arange(60) % 3
    standard = (codes - codes.mean(0)) / codes.std(0)
    joint = torch.stack([_mmd_by_definition(standard[labels == k], standard, 3) for k in range(3)]).mean()
    assert torch.allclose(losses.class_mmd(codes, labels, marginals=False), joint, atol=1e-5)
    marginal = torch.stack([
        torch.stack([_mmd_by_definition(standard[labels == k][:, j : j + 1], standard[:, j : j + 1], 1) for j in range(3)]).mean()
        for k in range(3)
    ]).mean()
    assert torch.allclose(losses.class_mmd(codes, labels), joint + marginal, atol=1e-5)
    shifted = codes + labels[:, None].float()
    assert losses.class_mmd(shifted, labels) > 5 * losses.class_mmd(codes, labels)


def test_class_mmd_sees_a_label_hidden_in_a_direction_of_small_scale():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(400) % 4
    codes = torch.randn(400, 6, generator=g)
    leaky = codes.clone()
    leaky[:, 5] = 1e-3 * (labels.float() + 0.1 * torch.randn(400, generator=g))
    assert losses.class_mmd(leaky, labels) > 3 * losses.class_mmd(codes, labels)
    leaky.requires_grad_(True)
    losses.class_mmd(leaky, labels).backward()
    assert torch.isfinite(leaky.grad).all()
    assert losses.class_mmd(codes[:3], torch.tensor([0, 1, 2])).item() == 0.0


def test_laplace_linear_puts_the_location_at_the_output_and_shows_it_clipped():
    output, target = torch.tensor([[-0.2, 0.5, 1.3]]), torch.tensor([[0.0, 0.5, 1.0]])
    expected = ((target - output).abs() / 0.1 + math.log(0.2)).sum(1)
    assert torch.allclose(losses.image_nll(output, target, "laplace-linear", 0.1), expected)
    assert losses.mean_image(output, "laplace-linear").tolist() == [[0.0, 0.5, 1.0]]
    assert torch.allclose(losses.mean_image(output, "laplace"), torch.sigmoid(output))


def test_a_black_pixel_pushes_a_sigmoid_location_down_for_ever_but_a_linear_one_back_to_zero():
    """Why Ruiz et al.'s models use ``laplace-linear``: the L1 gradient never shrinks with the error."""
    logits = torch.tensor([-8.0, -0.05, 0.05], requires_grad=True)
    target = torch.zeros(3)
    losses.image_nll(logits[None], target[None], "laplace", 0.005).sum().backward()
    assert (logits.grad > 0).all()  # even at sigmoid(-8) = 0.0003 the background is pushed further down
    logits.grad = None
    losses.image_nll(logits[None], target[None], "laplace-linear", 0.005).sum().backward()
    assert logits.grad.tolist() == [-200.0, -200.0, 200.0]  # below the data: up; above: down


def test_per_unit_vae_terms_divide_each_weight_by_what_its_term_sums_over():
    reconstruction, kl = torch.tensor([100.0, 300.0]), torch.tensor([4.0, 8.0])
    value = losses.per_unit_vae_terms(reconstruction, kl, 10.0, 2.0, pixels=50, code_dim=4)
    assert value.item() == pytest.approx(10 / 50 * 200 + 2 / 4 * 6)
