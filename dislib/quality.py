"""How good and how varied generated images are, and how well a model fills in missing pixels.

The evaluation of Zheng & Sun (2019) beyond the probes of :mod:`dislib.evaluate`:

* Sec. 4.2, realism and variety between classes: the *inception score* (Salimans et al., 2016) of
  generated images under a classifier trained on real images. The paper uses Inception networks
  on faces and CIFAR; for MNIST and Fashion-MNIST dislib trains its own small CNN
  (:func:`train_classifier`, cached on disk by :func:`cached_classifier`).
* Sec. 4.2, variety within a class: the mean ``1 - MS-SSIM`` over random pairs of images of the
  same class (:func:`intra_class_diversity`, the metric of Odena et al., 2017).
* Sec. 4.5, inpainting: encode an image whose region is missing, decode, and paste the decoded
  pixels into the hole (:func:`inpainting_mask`, :func:`inpaint`, :func:`masked_error`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import Tensor, nn
from tqdm.auto import tqdm

from dislib import settings
from dislib.data.base import ImageDataset, LabelledData, check_pixels
from dislib.data.cache import write_atomically
from dislib.evaluate import inference
from dislib.models.base import Disentangler, Model

MSSSIM_WIN_SIZE = 3
"""Side of MS-SSIM's Gaussian window. With the package's default, 11, ``ms_ssim`` refuses images of
160 pixels or fewer (see :data:`MSSSIM_MIN_SIDE`), and the window would be wider than a 28x28 image
at its coarser scales; 3 is the smallest odd window that still measures local contrast."""

MSSSIM_WIN_SIGMA = 1.5
"""Standard deviation of the window, in pixels (the package's and Wang et al.'s default)."""

_FINEST_FOUR = (0.0448, 0.2856, 0.3001, 0.2363)  # the first four of pytorch_msssim's (and Wang et al.'s) weights
MSSSIM_WEIGHTS = tuple(w / sum(_FINEST_FOUR) for w in _FINEST_FOUR)
"""Weights of the four finest of the five scales of Wang et al. (2003), renormalised to sum to 1.
Four scales compare a 28x28 image (enlarged 2x, see :data:`MSSSIM_MIN_SIDE`) at 56, 28, 14 and 7
pixels and a 64x64 one at 64, 32, 16 and 8, the coarsest still twice the window; a fifth scale
would compare 4x4 images, hardly more than one window."""

MSSSIM_MIN_SIDE = (MSSSIM_WIN_SIZE - 1) * 2**4
"""``pytorch_msssim.ms_ssim`` asserts that images are larger than ``(win_size - 1) * 2**4`` pixels
(32 for a window of 3) whatever the number of scales, so 28x28 and 32x32 images are refused as
they are. :func:`ms_ssim_pairs` first enlarges smaller images by the smallest integer factor that
passes, repeating each pixel (nearest neighbour): that adds no detail, and MS-SSIM's own 2x2
average pooling turns a 2x-enlarged image back into the original exactly, so the scales after the
first are those of the original image."""

INPAINTING_MASKS = ("right-half", "centre", "bottom-half")

_CLASSIFIER_KEYS = ("dataset", "image_shape", "num_classes", "steps", "batch_size", "seed")


# classifier -------------------------------------------------------------------------------
def classifier_network(image_shape: tuple[int, int, int], num_classes: int) -> nn.Sequential:
    """Two 3x3 convolutions (16 and 32 channels, each followed by 2x2 max pooling), then a
    128-unit hidden layer: logits ``[N, num_classes]`` for images ``[N, *image_shape]``."""
    channels, height, width = image_shape
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), 128), nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def train_classifier(
    train: ImageDataset,
    steps: int = 1500,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> nn.Module:
    """Train :func:`classifier_network` on ``train`` with Adam and cross-entropy; returned in eval mode.

    The learning rate starts at 3e-3 and decays to 0 along a cosine. The weights and every batch
    (shuffled epochs without replacement) follow from ``seed``, so a seed gives the same classifier
    on the same machine. The defaults reach about 99% test accuracy on MNIST and 90% on
    Fashion-MNIST in about a minute on one CPU thread.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    dev = settings.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = classifier_network(train.image_shape, train.num_classes).to(dev)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    batches = _shuffled_batches(len(train), batch_size, generator)
    net.train()
    with tqdm(range(steps), desc="classifier", disable=not progress, leave=False) as bar:
        for step in bar:
            rows = next(batches)
            loss = F.cross_entropy(net(train.images[rows].to(dev)), train.labels[rows].to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
    return net.eval()


def _shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless batches of indices: epoch after epoch of a fresh permutation of ``range(n)``."""
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, max(n - batch_size, 0) + 1, batch_size):
            yield order[i : i + batch_size]


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def classifier_probabilities(classifier: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """Softmax outputs ``p(y|x)`` of ``classifier`` for ``images`` in batches (eval mode, no gradients), on the CPU."""
    check_pixels("classifier input", images)
    dev = _device_of(classifier)
    with inference(classifier):
        parts = [classifier(images[i : i + batch_size].to(dev)).float().softmax(1).cpu()
                 for i in range(0, len(images), batch_size)]
    return torch.cat(parts)


def classifier_accuracy(classifier: nn.Module, data: LabelledData, batch_size: int = 1000) -> float:
    """Fraction of the images of ``data`` whose most probable class is their label."""
    predicted = classifier_probabilities(classifier, data.inputs, batch_size).argmax(1)
    return float((predicted == data.labels.cpu()).float().mean())


def cached_classifier(train: ImageDataset, path: str | Path, **kwargs: Any) -> nn.Module:
    """The classifier saved at ``path``, or one trained with :func:`train_classifier` and saved there.

    The file holds the weights and what they were trained with (dataset name, image shape, class
    count, steps, batch size, seed); a file trained otherwise is refused with the difference named.
    ``kwargs`` go to :func:`train_classifier`.
    """
    path = Path(path)
    wanted = _classifier_record(train, kwargs)
    if not path.exists():
        net = train_classifier(train, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**wanted, "weights": {k: v.cpu() for k, v in net.state_dict().items()}}
        write_atomically(path, lambda tmp: torch.save(record, tmp))
        return net
    saved = _read_classifier(path)
    differences = [f"{k} {saved.get(k)!r} (asked for: {wanted[k]!r})"
                   for k in _CLASSIFIER_KEYS if saved.get(k) != wanted[k]]
    if differences:
        raise ValueError(f"{path} holds a classifier trained with {'; '.join(differences)}: delete the file to train "
                         "a new one, or ask for what it was trained with (evaluate --classifier-steps; the "
                         "keyword arguments of cached_classifier)")
    net = classifier_network(train.image_shape, train.num_classes)
    net.load_state_dict(saved["weights"])
    return net.to(settings.device(kwargs.get("device"))).eval()


def _classifier_record(train: ImageDataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a cached classifier is checked against: the data it reads and how it was trained."""
    parameters = inspect.signature(train_classifier).parameters
    defaults = {k: p.default for k, p in parameters.items() if k != "train"}
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"cached_classifier got unknown arguments {sorted(unknown)}; it takes {sorted(defaults)}")
    chosen = {**defaults, **kwargs}
    return {"dataset": train.name, "image_shape": list(train.image_shape), "num_classes": train.num_classes,
            **{k: chosen[k] for k in ("steps", "batch_size", "seed")}}


def _read_classifier(path: Path) -> dict[str, Any]:
    """The record saved by :func:`cached_classifier`; a ValueError naming the file if it is not one."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds on truncated or foreign files
        why = f"{path} is not a readable classifier file ({type(err).__name__})"
        raise ValueError(f"{why}: delete it to train anew") from err
    if not isinstance(saved, dict) or not {*_CLASSIFIER_KEYS, "weights"} <= set(saved):
        raise ValueError(f"{path} is not a classifier saved by dislib.quality.cached_classifier: "
                         "delete it to train anew")
    return saved


# inception score --------------------------------------------------------------------------
def inception_score(probabilities: Tensor, splits: int = 10) -> tuple[float, float]:
    r"""The inception score of Salimans et al. (2016): mean and standard deviation over ``splits``.

    .. math::
        \mathrm{IS} = \exp\Big(\mathbb E_x\, \mathrm{KL}\big(p(y|x)\,\|\,p(y)\big)\Big),
        \qquad p(y) = \mathbb E_x\, p(y|x)

    computed on each of ``splits`` near-equal parts of the rows (each with its own marginal
    ``p(y)``), in float64. Row ``i`` goes to part ``i mod splits``: rows ordered by class (all
    samples of class 0, then of class 1, ...) still give every part every class, where consecutive
    parts would each hold one class and score about 1. It lies in ``[1, K]``: 1 when every image gets the same
    prediction, ``K`` when each prediction is certain and the ``K`` classes are equally frequent.

    Parameters
    ----------
    probabilities
        ``[N, K]`` class probabilities ``p(y|x)``, non-negative rows summing to 1, ``N >= splits``.
    """
    p = _check_probabilities(probabilities, splits)
    scores = []
    for part in (p[i::splits] for i in range(splits)):
        marginal = part.mean(0, keepdim=True)
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal)).sum(1)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def _check_probabilities(probabilities: Tensor, splits: int) -> Tensor:
    """``probabilities`` as float64 after checking they are ``[N, K]`` distributions with ``N >= splits >= 1``."""
    if probabilities.ndim != 2 or not probabilities.is_floating_point():
        raise ValueError(f"probabilities must be a float tensor [N, K], got {probabilities.dtype} "
                         f"{tuple(probabilities.shape)}")
    if splits < 1 or len(probabilities) < splits:
        raise ValueError(f"the inception score needs splits >= 1 and at least one row per split: "
                         f"got {len(probabilities)} rows for {splits} splits")
    p = probabilities.double().cpu()
    sums = p.sum(1)
    if (p < 0).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
        raise ValueError(f"probabilities must be non-negative rows summing to 1 (softmax outputs), got entries in "
                         f"[{float(p.min()):.4g}, {float(p.max()):.4g}] and row sums in [{float(sums.min()):.4g}, "
                         f"{float(sums.max()):.4g}]")
    return p


def classifier_inception_score(
    classifier: nn.Module, images: Tensor, splits: int = 10, batch_size: int = 500
) -> tuple[float, float]:
    """:func:`inception_score` of ``images`` under ``classifier`` (e.g. from :func:`cached_classifier`)."""
    return inception_score(classifier_probabilities(classifier, images, batch_size), splits)


# intra-class diversity --------------------------------------------------------------------
def ms_ssim_pairs(first: Tensor, second: Tensor) -> Tensor:
    """MS-SSIM of each pair ``(first[i], second[i])`` of images in ``[0, 1]``, ``[N]``.

    With the settings ``MSSSIM_*`` of this module; images of at most :data:`MSSSIM_MIN_SIDE`
    pixels are enlarged first by repeating pixels (see there).
    """
    factor = MSSSIM_MIN_SIDE // min(first.shape[-2:]) + 1
    if factor > 1:
        first, second = (F.interpolate(x, scale_factor=factor, mode="nearest") for x in (first, second))
    return ms_ssim(first, second, data_range=1.0, size_average=False, win_size=MSSSIM_WIN_SIZE,
                   win_sigma=MSSSIM_WIN_SIGMA, weights=list(MSSSIM_WEIGHTS))


def intra_class_diversity(images: Tensor, labels: Tensor, pairs_per_class: int = 100, seed: int = 0) -> dict[str, Any]:
    """Mean ``1 - MS-SSIM`` over random pairs of two different images of the same class.

    0 when a class's images are all alike, larger when they vary (Zheng & Sun 2019, Table 2;
    Odena et al. 2017). ``pairs_per_class`` pairs are drawn with replacement in each class, the
    two images of a pair always at different positions.

    Returns
    -------
    dict
        ``"diversity"``: the mean over the classes, each counting equally; ``"per_class"``:
        ``{label: diversity}``; ``"skipped"``: ``{label: count}`` of the classes with a single image.
    """
    _check_diversity_inputs(images, labels, pairs_per_class)
    generator = torch.Generator().manual_seed(seed)
    per_class, skipped = {}, {}
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().squeeze(1)
        n = len(members)
        if n < 2:
            skipped[label] = n
            continue
        i = torch.randint(n, (pairs_per_class,), generator=generator)
        j = (i + torch.randint(1, n, (pairs_per_class,), generator=generator)) % n
        similarity = ms_ssim_pairs(images[members[i]], images[members[j]])
        per_class[label] = float((1 - similarity).mean())
    if not per_class:
        raise ValueError(f"intra_class_diversity needs a class with at least 2 images; every class has one: {skipped}")
    return {"diversity": float(np.mean(list(per_class.values()))), "per_class": per_class, "skipped": skipped}


def _check_diversity_inputs(images: Tensor, labels: Tensor, pairs_per_class: int) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    check_pixels("intra_class_diversity", images)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), one per image, got {tuple(labels.shape)}")
    if pairs_per_class < 1:
        raise ValueError(f"pairs_per_class must be >= 1, got {pairs_per_class}")


# inpainting -------------------------------------------------------------------------------
def inpainting_mask(kind: str, image_shape: tuple[int, int, int]) -> Tensor:
    """A float32 mask ``[C, H, W]``: 1 where a pixel is kept, 0 where it is missing (Zheng & Sun 2019, Sec. 4.5).

    ``"right-half"`` hides the columns from ``W // 2`` on, ``"bottom-half"`` the rows from ``H // 2``
    on, ``"centre"`` the middle ``H // 2`` x ``W // 2`` rectangle (a square for square images).
    """
    if kind not in INPAINTING_MASKS:
        raise ValueError(f"unknown inpainting mask {kind!r}; kinds: {', '.join(INPAINTING_MASKS)}")
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (channels, height, width), got {tuple(image_shape)}")
    _, height, width = image_shape
    mask = torch.ones(image_shape)
    if kind == "right-half":
        mask[:, :, width // 2 :] = 0
    elif kind == "bottom-half":
        mask[:, height // 2 :, :] = 0
    else:
        top, left = (height - height // 2) // 2, (width - width // 2) // 2
        mask[:, top : top + height // 2, left : left + width // 2] = 0
    return mask


def _check_mask(mask: Tensor, images: Tensor) -> Tensor:
    """``mask`` expanded to ``images``' shape, after checking its shape and that it holds only 0 and 1."""
    n, c, h, w = images.shape
    channels = "1" if c == 1 else f"1 or {c}"
    expected = f"[{channels}, {h}, {w}] or [{n}, {channels}, {h}, {w}]"
    leading = {3: ((1, c),), 4: ((1, n), (1, c))}.get(mask.ndim)
    if leading is None or mask.shape[-2:] != (h, w) or any(d not in ok for d, ok in zip(mask.shape, leading)):
        raise ValueError(f"the mask must have shape {expected} for images {tuple(images.shape)}, "
                         f"got {tuple(mask.shape)}")
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"the mask must hold only 0 (missing) and 1 (kept), shape {expected}; got other values")
    return mask.to(images.device, images.dtype).expand_as(images)


def inpaint(
    model: Disentangler,
    images: Tensor,
    mask: Tensor,
    labels: Tensor | None = None,
    iterations: int = 1,
    batch_size: int = 500,
) -> Tensor:
    """Fill the missing pixels of ``images`` from the model: ``M * x + (1 - M) * G(E(M * x))``.

    The masked image (missing pixels set to 0) is encoded into ``s`` and ``z`` and decoded; the
    decoded pixels fill the hole, the kept pixels stay exactly as they were. With ``iterations > 1``
    the filled image is encoded again, each time. Eval mode, no gradients; returned on ``images``' device.

    Parameters
    ----------
    mask
        1 where a pixel is kept, 0 where it is missing: ``[1 or C, H, W]`` or ``[N, 1 or C, H, W]``
        (see :func:`inpainting_mask`).
    labels
        Required by a model whose specified code is the label (``model.label_is_code``).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    check_pixels("inpaint", images)
    full_mask = _check_mask(mask, images)
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if model.label_is_code and labels is None:
        raise ValueError(f"{model.name} encodes the label as its specified code (label_is_code): "
                         "pass labels to inpaint")
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), one per image, got {tuple(labels.shape)}")
    parts = []
    for i in range(0, len(images), batch_size):
        y = labels[i : i + batch_size] if model.label_is_code else None
        parts.append(_inpaint_batch(model, images[i : i + batch_size], full_mask[i : i + batch_size], y, iterations))
    return torch.cat(parts)


def _inpaint_batch(model: Disentangler, x: Tensor, mask: Tensor, labels: Tensor | None, iterations: int) -> Tensor:
    dev = model.device
    x_dev, m = x.to(dev), mask.to(dev)
    filled = m * x_dev
    with inference(model):
        for _ in range(iterations):
            codes = model.encode(filled) if labels is None else model.encode(filled, labels.to(dev))
            decoded = model.decode(codes.specified, codes.unspecified).float()
            filled = m * x_dev + (1 - m) * decoded
    return filled.to(x.device)


def masked_error(original: Tensor, inpainted: Tensor, mask: Tensor) -> float:
    """Mean absolute error between ``original`` and ``inpainted`` over the missing pixels only.

    Averaged over every pixel value (each channel counts) where ``mask`` is 0, on the ``[0, 1]``
    scale of the images; the kept pixels, copied by :func:`inpaint`, do not enter.
    """
    if original.shape != inpainted.shape or original.ndim != 4:
        raise ValueError(f"original and inpainted must be [N, C, H, W] of one shape, got "
                         f"{tuple(original.shape)} and {tuple(inpainted.shape)}")
    missing = _check_mask(mask, original) == 0
    if not missing.any():
        raise ValueError("the mask hides no pixel: there is no missing region to measure")
    return float((original - inpainted.to(original.device))[missing].abs().mean())


def generation_quality(model: Model, classifier: nn.Module, test: ImageDataset, per_class: int, seed: int = 0,
                       pairs_per_class: int = 100) -> dict[str, float]:
    """Inception score under ``classifier`` and intra-class diversity of ``per_class`` samples of every
    class (Zheng & Sun's Tables 4 and 2), beside those of as many real test images of each class, the
    fraction of each set that the classifier reads as the class asked for (``asked_class_accuracy``),
    and the classifier's test accuracy (what ``python -m dislib evaluate`` prints for a label-conditional
    generator). ``pairs_per_class`` same-class pairs per class go into each diversity."""
    labels = torch.arange(test.num_classes, device=model.device).repeat_interleave(per_class)
    settings.seed_everything(seed)
    with torch.no_grad():
        samples = model.sample_classes(labels)
    take = torch.cat([(test.labels == k).nonzero().squeeze(1)[:per_class] for k in range(test.num_classes)])
    out = {"classifier_test_accuracy": classifier_accuracy(classifier, test), "classifier_classes": test.num_classes}
    for name, images, classes in (("", samples, labels), ("real_", test.images[take], test.labels[take])):
        probabilities = classifier_probabilities(classifier, images)
        out[f"{name}inception_score"], out[f"{name}inception_score_std"] = inception_score(probabilities)
        out[f"{name}asked_class_accuracy"] = float((probabilities.argmax(1).cpu() == classes.cpu()).float().mean())
        out[f"{name}intra_class_diversity"] = intra_class_diversity(images.cpu(), classes.cpu(), pairs_per_class,
                                                                    seed)["diversity"]
    return out
