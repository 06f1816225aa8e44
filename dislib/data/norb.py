"""Small NORB (LeCun, Huang & Bottou, CVPR 2004), read from a local copy of the published files.

Download the six ``.mat.gz`` files of https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/ into
``<data root>/smallnorb/`` (gzipped or not)::

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat

Each is a binary matrix: int32 magic number (``0x1E3D4C55`` uint8, ``0x1E3D4C54`` int32), int32
number of dimensions, then ``max(3, ndim)`` int32 dimensions, then the data, all little-endian.
``dat`` is ``[24300, 2, 96, 96]`` uint8 (a stereo pair per sample), ``cat`` ``[24300]`` the category
(animal, human, airplane, truck, car), ``info`` ``[24300, 4]`` the instance (0-9), elevation (0-8),
azimuth (0, 2, ..., 34) and lighting (0-5).

As in Mathieu et al. (2016) the label is the object *instance*: ``10 * category + instance``, 50
classes, 25 in each split (training instances 4, 6, 7, 8, 9; testing 0, 1, 2, 3, 5), so test
identities are never seen in training. Images are grey ``[N, 1, size, size]``, area-resized from
96 x 96 (default ``size=64``); ``camera`` picks the left, right or both images of each pair.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from dislib.data.base import ImageDataset
from dislib.data.mnist import DatasetNotFound

FOLDER = "smallnorb"
URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
CATEGORIES = ("animal", "human", "airplane", "truck", "car")
FACTOR_NAMES = ("category", "instance", "elevation", "azimuth", "lighting", "camera")
FACTOR_SIZES = (5, 10, 9, 18, 6, 2)
_PREFIX = {"train": "smallnorb-5x46789x9x18x6x2x96x96-training", "test": "smallnorb-5x01235x9x18x6x2x96x96-testing"}
_DTYPES = {0x1E3D4C55: np.uint8, 0x1E3D4C54: np.int32, 0x1E3D4C56: np.int16, 0x1E3D4C51: np.float32, 0x1E3D4C53: np.float64}
_CAMERAS = {"left": (0,), "right": (1,), "both": (0, 1)}


def read_binary_matrix(path: Path) -> np.ndarray:
    """Read a NORB binary matrix file (``.mat`` or ``.mat.gz``) into an array of its dimensions."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, ndim = np.frombuffer(data, "<i4", count=2)
    if int(magic) not in _DTYPES:
        raise ValueError(f"{path} is not a NORB binary matrix (magic number {int(magic):#x})")
    dims = np.frombuffer(data, "<i4", count=max(3, int(ndim)), offset=8)[:ndim]
    offset = 8 + 4 * max(3, int(ndim))
    dtype = np.dtype(_DTYPES[int(magic)]).newbyteorder("<")
    count = int(np.prod(dims))
    if len(data) - offset < count * dtype.itemsize:
        raise ValueError(f"{path} is truncated: its header announces {tuple(int(d) for d in dims)}")
    return np.frombuffer(data, dtype, count=count, offset=offset).reshape(tuple(int(d) for d in dims))


def load_norb(split: str, root: Path, size: int = 64, camera: str = "left") -> ImageDataset:
    """Load small NORB's ``split``: grey images ``[N, 1, size, size]``, label = object instance.

    Parameters
    ----------
    size
        Image side after area resizing from 96.
    camera
        ``"left"``, ``"right"`` or ``"both"`` (both images of every stereo pair, ``N = 48600``).
    """
    if camera not in _CAMERAS:
        raise ValueError(f"camera must be one of {tuple(_CAMERAS)}, got {camera!r}")
    dat, cat, info = (read_binary_matrix(_find(root, split, kind)) for kind in ("dat", "cat", "info"))
    if not (len(dat) == len(cat) == len(info)) or dat.ndim != 4 or info.shape[1:] != (4,):
        raise ValueError(f"small NORB {split} files disagree: dat {dat.shape}, cat {cat.shape}, info {info.shape}")
    cameras = _CAMERAS[camera]
    pixels = torch.from_numpy(dat[:, cameras].reshape(-1, 1, *dat.shape[2:]).copy()).float().div_(255.0)
    if pixels.shape[-1] != size:
        pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="area")
    n = len(dat)
    factors = np.concatenate(
        [cat.reshape(n, 1), info[:, :2], info[:, 2:3] // 2, info[:, 3:]], axis=1
    ).astype(np.int64)
    factors = np.concatenate(
        [np.repeat(factors, len(cameras), axis=0), np.tile(np.array(cameras)[:, None], (n, 1))], axis=1
    )
    factors_t = torch.from_numpy(factors)
    return ImageDataset(
        images=pixels,
        labels=factors_t[:, 0] * 10 + factors_t[:, 1],
        num_classes=50,
        name="norb",
        factors=factors_t,
        factor_names=FACTOR_NAMES,
        factor_sizes=FACTOR_SIZES,
        class_names=tuple(f"{c} {i}" for c in CATEGORIES for i in range(10)),
    )


def _find(root: Path, split: str, kind: str) -> Path:
    name = f"{_PREFIX[split]}-{kind}.mat"
    for path in (Path(root) / FOLDER / name, Path(root) / FOLDER / f"{name}.gz"):
        if path.exists():
            return path
    raise DatasetNotFound(
        f"small NORB file {name} (or {name}.gz) is not in {Path(root) / FOLDER}. Download the six "
        f"smallnorb-*.mat.gz files from {URL} into that folder, or point DISLIB_DATA (or root=) at a "
        f"folder that has {FOLDER}/."
    )
