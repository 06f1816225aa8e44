"""Mathieu et al. (2016): shapes, triplets, Algorithm 1's two players, losses, errors."""

import dataclasses

import pytest
import torch

from dislib.data.base import ImageDataset
from dislib.models import Mathieu, MathieuConfig
from dislib.models.base import Model
from dislib.models.mathieu import conditional_bound, generator_objective

SMALL = dict(widths=(4, 8, 8), discriminator_widths=(4, 8, 8), specified_dim=3, unspecified_dim=5)


def toy_data(n: int = 40, classes: int = 4) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % classes, classes, "toy")


def small_model(data: ImageDataset, **overrides) -> Mathieu:
    torch.manual_seed(0)
    return Mathieu.for_dataset(data, "mnist", **{**SMALL, **overrides})


def batch_of(model: Mathieu, data: ImageDataset, n: int = 8) -> dict[str, torch.Tensor]:
    return model.make_batch(data, torch.arange(n), torch.Generator().manual_seed(1))


def test_encode_decode_shapes_and_range():
    data = toy_data()
    model = small_model(data).eval()
    codes = model.encode(data.images[:6])
    assert codes.specified.shape == (6, 3)
    assert codes.unspecified.shape == codes.unspecified_logvar.shape == (6, 5)
    images = model.decode(codes.specified, codes.unspecified)
    assert images.shape == (6, 1, 28, 28)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert model.sample(codes.specified).shape == (6, 1, 28, 28)


def test_decode_rejects_codes_of_the_wrong_size():
    model = small_model(toy_data()).eval()
    with pytest.raises(ValueError, match="specified code of shape"):
        model.decode(torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="unspecified code of shape"):
        model.decode(torch.zeros(2, 3), torch.zeros(2, 6))


def test_triplets_pair_each_image_with_one_of_its_class():
    data = toy_data()
    batch = batch_of(small_model(data), data)
    same_labels = data.labels[[int((data.images == x).flatten(1).all(1).nonzero()) for x in batch["x1_same"]]]
    assert torch.equal(same_labels, batch["id1"])
    assert batch["x2"].shape == batch["x1"].shape and (batch["id2"] != batch["id1"]).all()


def test_make_batch_errors_are_clear():
    data = toy_data()
    model = small_model(data)
    lonely = ImageDataset(data.images[:5], torch.tensor([0, 0, 1, 1, 2]), 4, "toy")
    with pytest.raises(ValueError, match="same-class partner"):
        model.make_batch(lonely, torch.tensor([4]), torch.Generator())
    other = ImageDataset(data.images, data.labels, 5, "toy")
    with pytest.raises(ValueError, match="label tables have 4"):
        model.make_batch(other, torch.arange(4), torch.Generator())


def test_conditional_bound_is_the_reconstruction_plus_kl():
    x = torch.full((2, 1, 4, 4), 0.5)
    terms = conditional_bound(torch.zeros_like(x), x, torch.zeros(2, 3), torch.zeros(2, 3))
    assert torch.allclose(terms["reconstruction"], torch.full((2,), 16 * 0.6931), atol=1e-3)
    assert torch.allclose(terms["kl"], torch.zeros(2))
    terms = conditional_bound(torch.zeros_like(x), x, torch.ones(2, 3), torch.zeros(2, 3))
    assert torch.allclose(terms["kl"], torch.full((2,), 1.5))


def test_generator_objective_weights_each_term():
    config = MathieuConfig(reconstruction_weight=2.0, swap_reconstruction_weight=3.0, kl_weight=0.5, adversarial_weight=7.0)
    one = torch.ones(2)
    terms = {"reconstruction": one, "swap_reconstruction": one, "kl": one, "adversarial": one}
    assert torch.allclose(generator_objective(terms, config), torch.full((2,), 12.5))
    assert torch.allclose(generator_objective({**terms, "prior_adversarial": one}, config), torch.full((2,), 19.5))


def test_train_step_updates_both_players_and_reports_finite_terms():
    data = toy_data()
    model = small_model(data, prior_adversarial=True)
    encoder_before = model.trunk.convs[0].weight.clone()
    adversary_before = model.adversary.logit.weight.clone()
    out = model.train_step(batch_of(model, data))
    expected = {"reconstruction", "swap_reconstruction", "kl", "adversarial", "prior_adversarial",
                "adversary_loss", "adversary_accuracy"}
    assert set(out) == expected and all(torch.isfinite(v) for v in out.values())
    assert not torch.equal(encoder_before, model.trunk.convs[0].weight)
    assert not torch.equal(adversary_before, model.adversary.logit.weight)


def test_mismatched_negatives_add_real_images_with_wrong_labels_to_the_adversary_loss():
    data = toy_data()
    losses = {}
    for flag in (False, True):
        model = small_model(data, mismatched_negatives=flag)
        losses[flag] = model.train_step(batch_of(model, data))["adversary_loss"]
    assert losses[True] > losses[False]


def test_generator_step_leaves_the_adversary_alone():
    data = toy_data()
    model = small_model(data, adversary_accuracy_cap=0.0)
    before = {k: v.clone() for k, v in model.adversary.state_dict().items() if "running" not in k and "num_batches" not in k}
    model.train_step(batch_of(model, data))
    after = model.adversary.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.requires_grad for p in model.adversary.parameters())


def test_checkpoint_round_trip():
    data = toy_data()
    model = small_model(data)
    model.train_step(batch_of(model, data))
    copy = Model.from_checkpoint(model.checkpoint()).eval()
    model.eval()
    x = data.images[:3]
    assert torch.allclose(copy.encode(x).specified, model.encode(x).specified)


def test_presets_follow_the_paper():
    assert (Mathieu.PRESETS["mnist"].specified_dim, Mathieu.PRESETS["mnist"].unspecified_dim) == (16, 16)
    assert (Mathieu.PRESETS["sprites"].specified_dim, Mathieu.PRESETS["sprites"].unspecified_dim) == (64, 512)
    with pytest.raises(ValueError, match="non-negative"):
        MathieuConfig(adversarial_weight=-1.0)
    assert dataclasses.replace(MathieuConfig(), adversarial_weight=0.0).adversarial_weight == 0.0


def test_label_adversary_extension_trains_its_own_classifier():
    data = ImageDataset(torch.rand(40, 1, 28, 28), torch.arange(40) % 4, 4, "tiny")
    model = Mathieu.for_dataset(data, label_adversary_weight=1.0, widths=(8, 8, 8), discriminator_widths=(8, 8, 8))
    batch = model.make_batch(data, torch.arange(8), torch.Generator().manual_seed(0))
    before = [p.clone() for p in model.label_adversary.parameters()]
    out = model.train_step(batch)
    assert {"label_adversarial", "label_adversary_loss"} <= set(out)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.label_adversary.parameters()))
    plain = Mathieu.for_dataset(data, widths=(8, 8, 8), discriminator_widths=(8, 8, 8))
    assert plain.label_adversary is None and "label_adversary" not in plain.optimizers


def test_label_adversary_takes_its_steps_on_the_codes_of_the_whole_triplet():
    data = toy_data()
    model = small_model(data, label_adversary_weight=1.0, label_adversary_steps=3)
    batch = batch_of(model, data)
    calls = []
    model.label_adversary.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    model.train_step(batch)
    # one read by the generator's uniform-target term, then three classifier updates, each on 3 x 8 codes
    assert calls == [24, 24, 24, 24]
    with pytest.raises(ValueError, match="label_adversary_steps must be >= 1"):
        MathieuConfig(label_adversary_steps=0)


def test_pretrained_specified_encoder_is_trained_first_then_frozen():
    data = toy_data()
    model = small_model(data, specified_pretraining_steps=2)
    assert model.unspecified_trunk is not None and not model.specified_frozen
    batch = batch_of(model, data)
    decoder_before = next(model.decoder.parameters()).clone()
    trunk_before = model.trunk.convs[0].weight.clone()
    first = model.train_step(batch)
    assert set(first) == {"classification", "classification_accuracy"}
    assert not torch.equal(trunk_before, model.trunk.convs[0].weight), "pre-training trains the specified encoder"
    assert torch.equal(decoder_before, next(model.decoder.parameters())), "the decoder waits during pre-training"
    model.train_step(batch)
    assert model.specified_frozen and not model.trunk.training
    model.train()
    assert not model.trunk.training and model.unspecified_trunk.training
    trunk_frozen = model.trunk.convs[0].weight.clone()
    unspecified_before = model.unspecified_trunk.convs[0].weight.clone()
    out = model.train_step(batch)
    assert "adversarial" in out
    assert torch.equal(trunk_frozen, model.trunk.convs[0].weight), "the specified encoder stays frozen"
    assert not torch.equal(unspecified_before, model.unspecified_trunk.convs[0].weight)
    copy = Model.from_checkpoint(model.checkpoint())
    assert copy.specified_frozen and int(copy.steps_done) == 3


def test_class_mmd_extension_adds_a_batch_term_to_every_image():
    data = toy_data()
    model = small_model(data, class_mmd_weight=5.0)
    terms, _, _ = model.generator_terms(batch_of(model, data))
    assert terms["class_mmd"].shape == (8,) and (terms["class_mmd"] == terms["class_mmd"][0]).all()
    one = torch.ones(2)
    base = {"reconstruction": one, "swap_reconstruction": one, "kl": one, "adversarial": one}
    config = MathieuConfig(class_mmd_weight=5.0)
    assert torch.allclose(generator_objective({**base, "class_mmd": one}, config), generator_objective(base, config) + 5.0)
