"""Styled MNIST: plain edge-map digits as a reference set, coloured, thickened and shrunk ones as an
unlabelled set (Ruiz et al. 2019, Sec. 5.1 and App. C).

Every digit is first drawn as an *edge map*: the MNIST image is resized (bilinear) to ``size`` x
``size`` pixels, binarised at 0.5, and only the boundary of the stroke is kept, the stroke minus
its erosion by a 3 x 3 square (a line one pixel wide). Then:

* the **reference set** (label ``y = 1``) is a random half of the MNIST training digits, left as
  they are: white edges on black, every target factor constant;
* the **unlabelled set** (``y = 0``) is the other half, each digit transformed at random, in the
  paper's order:

  1. *width*: a dilation with a square kernel of ``k`` pixels, ``k`` uniform in ``{1, ..., K}``
     (``k = 1`` leaves the edge as it is). The paper draws ``k`` in ``{1, ..., 10}`` on 64-pixel
     images; the range scales with the size, ``K = 10 * size / 64``: 10 at 64 pixels, 5 at 32, so
     that a kernel covers the same fraction of the digit at both sizes;
  2. *colour*: the RGB components are multiplied by ``c / ||c||_1`` with ``c ~ U[0, 1]^3``. The
     L1 normalisation is the paper's and keeps pixels in ``[0, 1]`` by itself: each component of
     ``c / ||c||_1`` lies in ``[0, 1]`` (they sum to 1), and so does every edge pixel. The product
     is taken on ``[0, 1]`` images, where the background is 0 and stays black (on the paper's
     ``[-1, 1]`` images it would tint the background);
  3. *size*: the image is shrunk by a factor ``s ~ U[0.5, 1]``, to ``n = round(s * size)``
     pixels a side (bilinear with antialiasing), and padded with zeros, centred, back to
     ``size``. The recorded scale is the realised one, ``n / size``, so that it describes the
     image exactly (steps of 1/64 or 1/32).

The paper transforms each unlabelled digit twice, for 60,000 unlabelled images beside 30,000
reference images: ``copies=2`` does the same (two independent draws of the three factors per
digit, the two copies at random places in the order), ``copies=1`` makes one.

Factors (``float32``, one row per image, :data:`FACTOR_NAMES`):

=======  ==============================================================  =========================
column   unlabelled image                                                reference image
=======  ==============================================================  =========================
R, G, B  the colour ``c / ||c||_1`` (sums to 1)                          1, 1, 1 (not multiplied)
scale    ``n / size`` in ``[0.5, 1]``                                    1 (not shrunk)
width    ``k / K`` in ``{1/K, ..., 1}``: the kernel as a fraction of      ``1 / K`` (kernel 1: the
         the widest (the paper's kernel in pixels, over 10)              edge as it is)
=======  ==============================================================  =========================

By default the label is the *set* (``class_names = ("unlabelled", "reference")``): the only
supervision the reference-based models see. ``label="digit"`` makes the MNIST digit the label
instead, for the models that learn from class labels (Mathieu et al., Zheng & Sun) and for
evaluation; the factors are the five style factors either way, the regression targets of Table 1.

Splits:

* ``"train"``: the 60,000 MNIST training digits, split at random (seeded) into 30,000 reference and
  30,000 unlabelled digits (``x copies``). The two sets are interleaved evenly, reference images
  at the fractions ``(i + 1/2) / n_reference`` of the order and unlabelled ones at
  ``(j + 1/2) / n_unlabelled`` (each set in a seeded random order), so that every prefix of
  ``1 + copies`` images or more holds both sets: a smoke budget that keeps the first images still
  sees both.
* ``"test"``: the 10,000 MNIST test digits in a seeded random order (the MNIST test file puts its
  cleaner half first), each transformed once, all unlabelled (``y = 0``): the two evaluation sets
  of Sec. 5.3. Rows ``[0, 5000)`` fit the linear regressors, rows ``[5000, 10000)`` test them:
  :func:`regression_sets`.

The images are float32 RGB in ``[0, 1]``, dislib's pixel convention (the paper's ``[-1, 1]`` is
``2 x - 1``). The split, the order and every factor follow from ``seed`` (NumPy's
``default_rng``), the pixels from them by torch operations on the CPU. Generating the training
split takes a few seconds at 32 pixels and under 20 at 64 on one core. Generated images are
cached as uint8 arrays, with their factor table beside them, in ``<data root>/styled-mnist-cache/``
(or ``cache_dir=`` / ``DISLIB_CACHE``), like ``lpc-sprites``: a read-only data root without a
cache folder means generating again in each new process, and a damaged cache entry, or a factor
file that does not match its images, is generated again and replaced, with a warning.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dislib.data.base import ImageDataset
from dislib.data.cache import cache_folder, load_array, save_arrays
from dislib.data.mnist import DatasetDamaged, DatasetNotFound, load_mnist

NAME = "styled-mnist"
SIZES = (32, 64)
PAPER_SIZE = 64
PAPER_MAX_KERNEL = 10
MIN_SCALE = 0.5
UNLABELLED, REFERENCE = 0, 1
CLASS_NAMES = ("unlabelled", "reference")
LABELS = ("set", "digit")
STYLE_FACTORS = ("R", "G", "B", "scale", "width")
FACTOR_NAMES = STYLE_FACTORS + ("digit",)  # the columns of the cached factor table after the set
REGRESSION_SIZE = 5_000
CACHE_FOLDER = "styled-mnist-cache"
_CACHE_VERSION = 1
_TABLE_COLUMNS = ("set",) + FACTOR_NAMES  # the cached factor file: the set label, then the factors
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CHUNK = 4_096


def max_kernel(size: int) -> int:
    """``K``, the largest dilation kernel at ``size`` pixels: the paper's 10 at 64, scaled (5 at 32)."""
    check_size(size)
    return PAPER_MAX_KERNEL * size // PAPER_SIZE


def check_size(size: int) -> None:
    """Raise a clear error unless ``size`` is 32 (laptop preset) or 64 (the paper)."""
    if size not in SIZES:
        raise ValueError(f"styled-mnist is drawn at size 32 (the laptop preset) or 64 (the paper's), got {size!r}")


def load_styled_mnist(
    split: str,
    root: Path,
    size: int = 32,
    copies: int = 2,
    seed: int = 0,
    label: str = "set",
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
) -> ImageDataset:
    """Load the ``styled-mnist`` split: RGB images ``[N, 3, size, size]`` and their style factors.

    Parameters
    ----------
    split
        ``"train"`` (reference and unlabelled sets, interleaved) or ``"test"`` (10,000 unlabelled
        images: the regressors' fit and test sets, :func:`regression_sets`).
    root
        Data root holding ``MNIST/raw/`` (its idx files, downloaded there when missing and allowed).
    size
        Image side: 32 (the laptop preset, the default) or 64 (the paper).
    copies
        Transformed copies of each unlabelled training digit (the paper: 2); the test split has one.
    seed
        Seeds the reference/unlabelled split, the order and every style draw.
    label
        What the labels are: ``"set"`` (the default, the only supervision of Ruiz et al.: 1 for a
        reference image, 0 for an unlabelled one) or ``"digit"`` (the MNIST digit, the class label
        of Mathieu et al. and Zheng & Sun, for the comparison chapter and for evaluation).
    cache_dir
        Where generated arrays are cached; default ``DISLIB_CACHE``, else
        ``<root>/styled-mnist-cache``; no disk cache where it cannot be written.
    download
        Fetch MNIST when its files are missing; default ``dislib.settings.downloads_allowed()``.

    Returns
    -------
    ImageDataset
        With ``label="set"``, ``num_classes = 2`` (``class_names = ("unlabelled", "reference")``);
        with ``label="digit"``, the ten digits. Either way the float32 factors R, G, B, scale and
        width (see the module docstring).
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    check_size(size)
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be a whole number >= 1 (the paper transforms each unlabelled digit twice), "
                         f"got {copies!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS} (the reference flag or the digit), got {label!r}")
    raw = _mnist_folder(Path(root), split, download)
    copies = copies if split == "train" else 1
    cache = cache_folder(Path(root), cache_dir, CACHE_FOLDER, "styled-mnist images")
    pixels, table = _styled(raw, split, size, copies, seed, cache)
    images = torch.empty(pixels.shape, dtype=torch.float32)
    for start in range(0, len(pixels), _CHUNK):  # chunk by chunk from the (memory-mapped) uint8 array
        images[start : start + _CHUNK].copy_(torch.from_numpy(np.array(pixels[start : start + _CHUNK]))).div_(255.0)
    column = 0 if label == "set" else _TABLE_COLUMNS.index("digit")
    class_names = CLASS_NAMES if label == "set" else tuple(str(d) for d in range(10))
    return ImageDataset(
        images=images,
        labels=torch.from_numpy(table[:, column].astype(np.int64)),
        num_classes=len(class_names),
        name=NAME,
        factors=torch.from_numpy(np.array(table[:, 1 : 1 + len(STYLE_FACTORS)])),
        factor_names=STYLE_FACTORS,
        class_names=class_names,
    )


# helpers for evaluation ----------------------------------------------------------------------
def regression_sets(test: ImageDataset, size: int = REGRESSION_SIZE) -> tuple[ImageDataset, ImageDataset]:
    """The two evaluation sets of Ruiz et al. (Sec. 5.3) from the test split: rows ``[0, size)``
    fit the linear regressors, rows ``[size, 2 size)`` test them (5,000 each; half the split each
    when it is smaller)."""
    if test.factors is None or tuple(test.factor_names) != STYLE_FACTORS:
        raise ValueError(f"expected a styled-mnist dataset with factors {STYLE_FACTORS}, got dataset {test.name!r} "
                         f"with factors {tuple(test.factor_names)}; load it with dislib.data.load('styled-mnist', ...)")
    n = min(size, len(test) // 2)
    if n < 1:
        raise ValueError(f"regression_sets needs at least 2 images, got {len(test)}")
    return test.subset(slice(0, n)), test.subset(slice(n, 2 * n))


def check_factors(table: np.ndarray, n: int, size: int) -> None:
    """Raise a ValueError naming the problem unless ``table`` is the factor file of ``n`` styled images.

    ``table`` is float32 ``[n, 7]``: the set label, then R, G, B, scale, width and digit. Reference
    rows must hold the constant factors (1, 1, 1, 1, 1/K), unlabelled rows a colour summing to 1,
    a scale in ``[0.5, 1]`` on the ``1/size`` grid and a width ``k / K``; digits are 0-9.
    """
    what = "styled-mnist factor file"
    if table.dtype != np.float32 or table.ndim != 2:
        columns = len(_TABLE_COLUMNS)
        raise ValueError(f"{what}: expected a float32 [N, {columns}] table, got {table.dtype} {table.shape}")
    if table.shape != (n, len(_TABLE_COLUMNS)):
        raise ValueError(f"{what} has shape {table.shape} for {n} images: expected ({n}, {len(_TABLE_COLUMNS)}) "
                         f"with columns {_TABLE_COLUMNS}")
    if not np.isfinite(table).all():
        raise ValueError(f"{what} holds values that are not finite")
    kernel = max_kernel(size)
    label, rgb, scale, width, digit = table[:, 0], table[:, 1:4], table[:, 4], table[:, 5], table[:, 6]
    problems = {
        "set labels outside {0, 1}": ~np.isin(label, (UNLABELLED, REFERENCE)),
        "digits outside 0-9": (digit != np.round(digit)) | (digit < 0) | (digit > 9),
    }
    reference = label == REFERENCE
    problems["reference images with factors other than (1, 1, 1, 1, 1/K)"] = reference & (
        (np.abs(rgb - 1.0).max(1) > 1e-6) | (scale != 1.0) | (np.abs(width - 1.0 / kernel) > 1e-6)
    )
    unlabelled = label == UNLABELLED
    on_grid = lambda v, step: np.abs(v / step - np.round(v / step)) < 1e-3  # noqa: E731
    problems["colours that do not sum to 1"] = unlabelled & ((np.abs(rgb.sum(1) - 1.0) > 1e-4) | (rgb.min(1) < 0))
    problems[f"scales outside [{MIN_SCALE}, 1] or off the 1/{size} grid"] = unlabelled & (
        (scale < MIN_SCALE) | (scale > 1.0) | ~on_grid(scale, 1.0 / size)
    )
    problems[f"widths other than k/{kernel}, k = 1..{kernel}"] = unlabelled & (
        (width < 1.0 / kernel - 1e-6) | (width > 1.0 + 1e-6) | ~on_grid(width, 1.0 / kernel)
    )
    for problem, rows in problems.items():
        if rows.any():
            raise ValueError(f"{what} does not match its images: {int(rows.sum())} rows with {problem} "
                             f"(first: row {int(np.argmax(rows))}); delete it to generate the set again")


# the drawing ---------------------------------------------------------------------------------
def edge_maps(digits_uint8: torch.Tensor, size: int) -> torch.Tensor:
    """Edge maps ``[N, 1, size, size]`` (float32, 0 or 1) of uint8 MNIST digits ``[N, 28, 28]``.

    Resize (bilinear) to ``size``, binarise at 0.5, and keep the stroke minus its erosion by a
    3 x 3 square: the stroke's pixels that touch the background, a boundary one pixel wide.
    """
    x = digits_uint8[:, None].float().div_(255.0)
    stroke = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) > 0.5
    inside = F.pad(stroke, (1, 1, 1, 1))  # outside the image counts as background
    eroded = stroke.clone()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            eroded &= inside[..., dy : dy + size, dx : dx + size]
    return (stroke & ~eroded).float()


def dilate(images: torch.Tensor, kernel: int) -> torch.Tensor:
    """Grey-level dilation of ``[N, C, H, W]`` images by a ``kernel`` x ``kernel`` square (1: unchanged).

    The window of output pixel ``i`` spans ``i - (kernel - 1) // 2`` to ``i + kernel // 2``; the
    square is separable, so it is a running maximum over rows, then over columns.
    """
    if kernel < 1:
        raise ValueError(f"a dilation kernel has at least 1 pixel, got {kernel}")
    if kernel == 1:
        return images
    height, width = images.shape[-2:]
    low, high = (kernel - 1) // 2, kernel // 2
    padded = F.pad(images, (low, high, low, high))
    across = padded[..., :width].clone()
    for shift in range(1, kernel):
        torch.maximum(across, padded[..., shift : shift + width], out=across)
    out = across[..., :height, :].clone()
    for shift in range(1, kernel):
        torch.maximum(out, across[..., shift : shift + height, :], out=out)
    return out


def shrink(images: torch.Tensor, side: int) -> torch.Tensor:
    """Resize ``[N, C, S, S]`` images to ``side`` pixels (bilinear, antialiased) and pad them with
    zeros, centred, back to ``S``."""
    full = images.shape[-1]
    if not 1 <= side <= full:
        raise ValueError(f"can only shrink {full}-pixel images to 1..{full} pixels, got {side}")
    if side == full:
        return images
    small = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    low = (full - side) // 2
    return F.pad(small.clamp_(0.0, 1.0), (low, full - side - low, low, full - side - low))


def draw_styles(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``[n, 5]`` float64: colour ``c / ||c||_1``, realised scale ``round(s * size) / size`` with
    ``s ~ U[0.5, 1]``, and width ``k / K`` with ``k`` uniform in ``{1..K}``, in that column order."""
    kernel = max_kernel(size)
    colour = rng.uniform(0.0, 1.0, (n, 3))
    colour /= np.maximum(colour.sum(1, keepdims=True), 1e-12)
    side = np.rint(rng.uniform(MIN_SCALE, 1.0, n) * size)
    k = rng.integers(1, kernel + 1, n)
    return np.concatenate([colour, (side / size)[:, None], (k / kernel)[:, None]], 1)


def style(edges: torch.Tensor, styles: np.ndarray, size: int) -> torch.Tensor:
    """Apply App. C's transformations, width then colour then size, to edge maps ``[N, 1, S, S]``;
    returns uint8 RGB ``[N, 3, S, S]``. ``styles`` are rows of :func:`draw_styles`.

    Images that share a kernel and a side are dilated and shrunk together: the fewer such runs,
    the faster (:func:`_compose` sorts the images by kernel and side first).
    """
    kernels = np.rint(styles[:, 4] * max_kernel(size)).astype(int)
    sides = np.rint(styles[:, 3] * size).astype(int)
    order = np.lexsort((sides, kernels))
    in_order = bool((order == np.arange(len(order))).all())
    grey = edges.float() if in_order else edges[torch.from_numpy(order)].float()
    kernels, sides = kernels[order], sides[order]
    starts = np.flatnonzero(np.diff(kernels * (size + 1) + sides, prepend=-1))
    for start, stop in zip(starts, [*starts[1:], len(order)]):
        grey[start:stop] = shrink(dilate(grey[start:stop], int(kernels[start])), int(sides[start]))
    colour = torch.from_numpy(styles[order, :3]).float().mul_(255.0)
    coloured = torch.empty((len(grey), 3, *grey.shape[2:]), dtype=torch.uint8)
    for channel in range(3):  # + 0.5, then truncation: rounds, as the values lie in [0.5, 255.5]
        coloured[:, channel] = torch.mul(grey[:, 0], colour[:, channel, None, None]).add_(0.5)
    if in_order:
        return coloured
    return coloured[torch.from_numpy(np.argsort(order))]


def _compose(
    digits_uint8: np.ndarray, digit_labels: np.ndarray, split: str, size: int, copies: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[N, 3, size, size]`` and the float32 factor table ``[N, 7]`` of a split."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    n = len(digits_uint8)
    if split == "train":
        order = rng.permutation(n)
        reference, unlabelled = order[: n // 2], order[n // 2 :]
        unlabelled = np.tile(unlabelled, copies)[rng.permutation(len(unlabelled) * copies)]
        rows = _interleave(len(reference), len(unlabelled))
        source = np.concatenate([reference, unlabelled])[rows]
        is_reference = rows < len(reference)
    else:
        source = rng.permutation(n)
        is_reference = np.zeros(n, dtype=bool)
    kernel = max_kernel(size)
    styles = np.tile(np.array([1.0, 1.0, 1.0, 1.0, 1.0 / kernel]), (len(source), 1))
    styles[~is_reference] = draw_styles(rng, int((~is_reference).sum()), size)
    table = np.concatenate(
        [np.where(is_reference, REFERENCE, UNLABELLED)[:, None], styles, digit_labels[source, None]], 1
    ).astype(np.float32)
    edges = torch.empty((n, 1, size, size), dtype=torch.uint8)  # once per MNIST digit, 0 or 1
    for start in range(0, n, _CHUNK):
        part = torch.from_numpy(digits_uint8[start : start + _CHUNK].copy())
        edges[start : start + _CHUNK] = edge_maps(part, size).to(torch.uint8)
    # allocated by torch, whose allocator takes far fewer page faults than numpy's on a large array
    pixels = torch.empty((len(source), 3, size, size), dtype=torch.uint8).numpy()
    for start in range(0, int(is_reference.sum()), _CHUNK):  # the reference set: white edges
        rows = np.flatnonzero(is_reference)[start : start + _CHUNK]
        pixels[rows] = edges[torch.from_numpy(source[rows])].mul_(255).expand(-1, 3, -1, -1).numpy()
    transformed = np.flatnonzero(~is_reference)
    transformed = transformed[np.lexsort((styles[transformed, 3], styles[transformed, 4]))]  # long runs for style()
    for start in range(0, len(transformed), _CHUNK):
        rows = transformed[start : start + _CHUNK]
        pixels[rows] = style(edges[torch.from_numpy(source[rows])], styles[rows], size).numpy()
    return pixels, table


def _interleave(n_reference: int, n_unlabelled: int) -> np.ndarray:
    """Row order that spreads both sets evenly: rows ``< n_reference`` (reference) sit at the
    fractions ``(i + 1/2) / n_reference``, the others at ``(j + 1/2) / n_unlabelled``; reference
    first on a tie."""
    position = np.concatenate([(np.arange(n_reference) + 0.5) / max(n_reference, 1),
                               (np.arange(n_unlabelled) + 0.5) / max(n_unlabelled, 1)])
    return np.lexsort((np.arange(len(position)), position))


# MNIST files ---------------------------------------------------------------------------------
def _mnist_folder(root: Path, split: str, download: bool | None) -> Path:
    """``<root>/MNIST/raw``, after :func:`~dislib.data.mnist.load_mnist` fetched the files if missing."""
    raw = root / "MNIST" / "raw"
    if not all((raw / f).exists() for f in _MNIST_FILES[split]):
        load_mnist("mnist", split, root, download)  # downloads, or raises DatasetNotFound naming the files
    return raw


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 idx file (LeCun's MNIST format) with ``ndim`` dimensions, read after checking its header
    and its length; a bad file raises :class:`~dislib.data.mnist.DatasetDamaged`."""
    data = path.read_bytes()
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes([0, 0, 8, ndim]):
        raise DatasetDamaged(f"{path} is not a uint8 idx file with {ndim} dimensions (bad header): replace it "
                             "with a good uncompressed copy")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "too long"
        raise DatasetDamaged(f"{path} is {what}: {len(data):,} bytes, its header says {expected:,}; replace it "
                             "with a good uncompressed copy")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_mnist(raw: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = _MNIST_FILES[split]
    images, labels = read_idx(raw / images_file, 3), read_idx(raw / labels_file, 1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or len(images) < 2:
        raise DatasetDamaged(f"the MNIST {split} files in {raw} hold {images.shape} images and {len(labels)} labels: "
                             "expected [N, 28, 28] images (N >= 2) and N labels")
    if labels.max() > 9:
        raise DatasetDamaged(f"{raw / labels_file} holds labels up to {labels.max()}: MNIST digits are 0-9")
    return images, labels


# the cache ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _styled(
    raw: Path, split: str, size: int, copies: int, seed: int, cache: Path | None
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[N, 3, size, size]`` and the factor table, read from the disk cache or generated.

    The cache key holds the generator's version, the options and a digest of the MNIST files, so
    that another copy of MNIST (or a fake one in a test) never reads this one's images.
    """
    digits_uint8, digit_labels = _read_mnist(raw, split)
    source = hashlib.sha1(digits_uint8.tobytes() + digit_labels.tobytes()).hexdigest()
    key = hashlib.sha1(repr((_CACHE_VERSION, split, size, copies, seed, source)).encode()).hexdigest()[:16]
    n = len(digits_uint8)
    if split == "train":  # half reference, the other half unlabelled, in copies
        n = n // 2 + (n - n // 2) * copies
    stem = None if cache is None else cache / f"{split}-{size}px-{key}"
    cached = None if stem is None else _read_cache(stem, (n, 3, size, size), size)
    if cached is not None:
        return cached
    pixels, table = _compose(digits_uint8, digit_labels, split, size, copies, seed)
    check_factors(table, n, size)
    if stem is not None:
        save_arrays({_images_file(stem): pixels, _factors_file(stem): table}, "styled-mnist images")
    pixels.flags.writeable = False  # shared through the in-memory cache
    table.flags.writeable = False
    return pixels, table


def _images_file(stem: Path) -> Path:
    return stem.with_name(stem.name + "-images.npy")


def _factors_file(stem: Path) -> Path:
    return stem.with_name(stem.name + "-factors.npy")


def _read_cache(stem: Path, shape: tuple[int, ...], size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached images (memory-mapped) and factor table, or ``None`` (with a warning naming the
    file when either is damaged or the factor file does not match the images)."""
    pixels = load_array(_images_file(stem), shape, np.uint8, "styled-mnist images")
    table = None if pixels is None else load_array(_factors_file(stem), None, np.float32, "styled-mnist factors", mmap=False)
    if table is None:
        return None
    try:
        check_factors(table, len(pixels), size)
    except ValueError as err:
        path = _factors_file(stem)
        warnings.warn(f"the cached styled-mnist factors {path} is damaged ({path.name}: {err}); composing it again "
                      "to replace it", stacklevel=4)
        return None
    table.flags.writeable = False
    return pixels, table


__all__ = ["CLASS_NAMES", "FACTOR_NAMES", "STYLE_FACTORS", "DatasetNotFound", "check_factors", "dilate",
           "draw_styles", "edge_maps", "load_styled_mnist", "max_kernel", "regression_sets", "shrink", "style"]
