import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dislib import quality
from dislib.data.base import ImageDataset
from dislib.models import VAE
from dislib.models.base import Codes, Disentangler, ImageConfig
from tests.helpers import tiny_images


class MeanFill(Disentangler):
    """z = the mean pixel of each image; the decoder paints the whole image with z."""

    name = "mean-fill"
    Config = ImageConfig
    BUDGETS = {}

    def __init__(self) -> None:
        super().__init__(ImageConfig(image_channels=1, image_size=8, num_classes=2))
        self.specified_dim, self.unspecified_dim = 0, 1
        self.anchor = nn.Parameter(torch.zeros(1))

    def encode(self, x: Tensor) -> Codes:
        return Codes(specified=None, unspecified=x.flatten(1).mean(1, keepdim=True))

    def decode(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        return unspecified[:, :, None, None].expand(-1, 1, 8, 8)


class LabelFill(MeanFill):
    """A conditional model: s = the label; the decoder paints the image with label / 10."""

    name = "label-fill"

    @property
    def label_is_code(self) -> bool:
        return True

    def encode(self, x: Tensor, labels: Tensor | None = None) -> Codes:
        return Codes(specified=labels[:, None].float(), unspecified=x.flatten(1).mean(1, keepdim=True))

    def decode(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        return (specified / 10)[:, :, None, None].expand(-1, 1, 8, 8)


# inception score --------------------------------------------------------------------------
def test_inception_score_of_certain_uniform_predictions_is_the_class_count():
    probabilities = torch.eye(7).repeat(10, 1)  # each split of 7 rows holds every class once
    mean, std = quality.inception_score(probabilities, splits=10)
    assert mean == pytest.approx(7.0) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_of_identical_predictions_is_one():
    probabilities = torch.tensor([[0.2, 0.5, 0.3]]).repeat(40, 1)
    assert quality.inception_score(probabilities, splits=4) == pytest.approx((1.0, 0.0))


def test_inception_score_of_two_equally_likely_halves():
    # p(y|x) is [1, 0] or [0.5, 0.5] equally often, so p(y) = [0.75, 0.25]
    rows = torch.tensor([[1.0, 0.0], [0.5, 0.5]]).repeat(5, 1)
    kl_certain = torch.log(torch.tensor(1 / 0.75))
    kl_even = 0.5 * torch.log(torch.tensor(0.5 / 0.75)) + 0.5 * torch.log(torch.tensor(0.5 / 0.25))
    assert quality.inception_score(rows, splits=1)[0] == pytest.approx(float(((kl_certain + kl_even) / 2).exp()))


@pytest.mark.parametrize("probabilities, message", [
    (torch.full((20, 3), 0.5), "rows summing to 1"),
    (torch.tensor([[1.5, -0.5]]).repeat(20, 1), "non-negative"),
    (torch.ones(20), r"\[N, K\]"),
    (torch.eye(3), "3 rows for 10 splits"),
])
def test_inception_score_rejects_bad_probabilities(probabilities, message):
    with pytest.raises(ValueError, match=message):
        quality.inception_score(probabilities)


# classifier ------------------------------------------------------------------------------
def test_train_classifier_runs_and_repeats_for_a_seed():
    data = tiny_images(n=40, size=28, classes=4)
    first, again = (quality.train_classifier(data, steps=3, batch_size=16, seed=1, progress=False) for _ in range(2))
    other = quality.train_classifier(data, steps=3, batch_size=16, seed=2, progress=False)
    for (name, a), b, c in zip(first.state_dict().items(), again.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, c) for a, c in zip(first.state_dict().values(), other.state_dict().values()))
    assert 0.0 <= quality.classifier_accuracy(first, data) <= 1.0
    assert first(data.images[:5]).shape == (5, 4)
    score, _ = quality.classifier_inception_score(first, data.images, splits=2)
    assert 1.0 <= score <= 4.0


def test_classifier_learns_an_easy_task():
    labels = torch.arange(64) % 2
    images = torch.zeros(64, 1, 28, 28)
    images[labels == 1, :, :14] = 1.0  # class 1: top half lit
    data = ImageDataset(images, labels, 2, "halves")
    net = quality.train_classifier(data, steps=30, batch_size=32, progress=False)
    assert quality.classifier_accuracy(net, data) == 1.0


def test_cached_classifier_trains_once_then_loads(tmp_path):
    data = tiny_images(n=32, size=28, classes=4)
    path = tmp_path / "classifiers" / "tiny.pt"
    trained = quality.cached_classifier(data, path, steps=2, batch_size=16, progress=False)
    assert path.exists()
    loaded = quality.cached_classifier(data, path, steps=2, batch_size=16, progress=False)
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    other_classes = tiny_images(n=32, size=28, classes=5)
    expected = r"tiny\.pt holds a classifier trained with num_classes 4 \(asked for: 5\): delete the file"
    with pytest.raises(ValueError, match=expected):
        quality.cached_classifier(other_classes, path, steps=2, batch_size=16, progress=False)


def test_cached_classifier_names_a_damaged_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_text("not a torch file")
    with pytest.raises(ValueError, match=r"broken\.pt is not a readable classifier file.*delete it"):
        quality.cached_classifier(tiny_images(n=32), path, steps=1)


# intra-class diversity --------------------------------------------------------------------
@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3), (64, 1)])
def test_diversity_is_zero_for_identical_images_and_positive_for_different_ones(size, channels):
    one = tiny_images(n=1, size=size, channels=channels).images
    identical = quality.intra_class_diversity(one.repeat(6, 1, 1, 1), torch.arange(6) % 2, pairs_per_class=10)
    assert identical["diversity"] == pytest.approx(0.0, abs=1e-5)
    assert set(identical["per_class"]) == {0, 1} and identical["skipped"] == {}
    varied = tiny_images(n=6, size=size, channels=channels)
    assert quality.intra_class_diversity(varied.images, varied.labels % 2, pairs_per_class=10)["diversity"] > 0.1


def test_diversity_skips_classes_with_one_image():
    images = tiny_images(n=5).images
    result = quality.intra_class_diversity(images, torch.tensor([0, 0, 0, 1, 2]), pairs_per_class=4)
    assert set(result["per_class"]) == {0} and result["skipped"] == {1: 1, 2: 1}
    assert result["diversity"] == result["per_class"][0]


def test_enlarging_for_ms_ssim_keeps_the_images_at_the_second_scale():
    images = tiny_images(n=2).images
    enlarged = F.interpolate(images, scale_factor=2, mode="nearest")
    assert torch.equal(F.avg_pool2d(enlarged, 2), images)
    assert sum(quality.MSSSIM_WEIGHTS) == pytest.approx(1.0)


@pytest.mark.parametrize("images, labels, message", [
    (torch.rand(4, 1, 28, 28), torch.arange(4), "needs a class with at least 2 images"),
    (torch.rand(4, 1, 28, 28), torch.zeros(3, dtype=torch.long), r"labels must have shape \(4,\)"),
    (torch.rand(4, 28, 28), torch.zeros(4, dtype=torch.long), r"\[N, C, H, W\]"),
    (2 * torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), r"pixels must lie in \[0, 1\]"),
])
def test_diversity_rejects_bad_inputs(images, labels, message):
    with pytest.raises(ValueError, match=message):
        quality.intra_class_diversity(images, labels)


# inpainting -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, hidden", [
    ("right-half", (slice(None), slice(14, None))),
    ("bottom-half", (slice(14, None), slice(None))),
    ("centre", (slice(7, 21), slice(7, 21))),
])
def test_masks_hide_the_named_region(kind, hidden):
    mask = quality.inpainting_mask(kind, (3, 28, 28))
    assert mask.shape == (3, 28, 28)
    assert float(mask.mean()) == (0.5 if "half" in kind else 0.75)
    assert (mask[:, hidden[0], hidden[1]] == 0).all()


def test_unknown_mask_lists_the_kinds():
    with pytest.raises(ValueError, match="unknown inpainting mask 'eyes'; kinds: right-half, centre, bottom-half"):
        quality.inpainting_mask("eyes", (1, 28, 28))


def test_inpaint_keeps_known_pixels_and_fills_the_rest_from_the_decoder():
    images = torch.ones(3, 1, 8, 8)
    mask = quality.inpainting_mask("right-half", (1, 8, 8))
    once = quality.inpaint(MeanFill(), images, mask)
    assert (once[..., :4] == 1).all()
    assert torch.allclose(once[..., 4:], torch.tensor(0.5))  # the masked image's mean
    twice = quality.inpaint(MeanFill(), images, mask, iterations=2)
    assert torch.allclose(twice[..., 4:], torch.tensor(0.75))  # mean of the half-filled image
    assert quality.masked_error(images, once, mask) == pytest.approx(0.5)


def test_inpaint_with_a_real_vae_copies_the_kept_pixels_exactly():
    data = tiny_images(n=6, size=28)
    mask = quality.inpainting_mask("centre", data.image_shape)
    vae = VAE.for_dataset(data)
    filled = quality.inpaint(vae, data.images, mask)
    assert vae.training  # inpaint runs in eval mode and restores the mode
    assert torch.equal(filled * mask, data.images * mask)
    with torch.no_grad():
        decoded = vae.eval().decode(None, vae.encode(data.images * mask).unspecified)
    hole = mask == 0
    assert torch.allclose(filled[:, hole], decoded[:, hole])


def test_inpaint_passes_labels_to_a_label_is_code_model_and_asks_for_them():
    images, mask = torch.ones(2, 1, 8, 8), quality.inpainting_mask("bottom-half", (1, 8, 8))
    filled = quality.inpaint(LabelFill(), images, mask, labels=torch.tensor([3, 7]))
    assert torch.allclose(filled[:, :, 4:, :].flatten(1), torch.tensor([[0.3], [0.7]]))
    with pytest.raises(ValueError, match=r"label-fill encodes the label.*pass labels to inpaint"):
        quality.inpaint(LabelFill(), images, mask)


@pytest.mark.parametrize("mask, message", [
    (torch.ones(1, 8, 7), r"must have shape \[1, 8, 8\] or \[2, 1, 8, 8\] for images .*got \(1, 8, 7\)"),
    (torch.ones(3, 1, 8, 8), r"got \(3, 1, 8, 8\)"),
    (torch.ones(8, 8), r"got \(8, 8\)"),
    (torch.full((1, 8, 8), 0.5), "only 0 \\(missing\\) and 1 \\(kept\\)"),
])
def test_bad_masks_are_refused_with_the_expected_shape(mask, message):
    with pytest.raises(ValueError, match=message):
        quality.inpaint(MeanFill(), torch.ones(2, 1, 8, 8), mask)
    with pytest.raises(ValueError, match=message):
        quality.masked_error(torch.ones(2, 1, 8, 8), torch.ones(2, 1, 8, 8), mask)


def test_masked_error_needs_a_missing_region():
    images = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="hides no pixel"):
        quality.masked_error(images, images, torch.ones(1, 8, 8))


def test_inception_score_of_rows_sorted_by_class_is_the_class_count():
    # 10 classes, 20 certain predictions each, sorted by class: every split must still see every class
    probabilities = torch.eye(10).repeat_interleave(20, dim=0)
    score, spread = quality.inception_score(probabilities, splits=10)
    assert score == pytest.approx(10.0) and spread == pytest.approx(0.0, abs=1e-9)
