"""Extended Yale Face Database B (Georghiades et al. 2001; Lee et al. 2005), cropped faces.

Put the ``CroppedYale`` folder of http://vision.ucsd.edu/extyaleb/CroppedYaleBZip/CroppedYale.zip
under the data root: ``<data root>/CroppedYale/yaleBxx/yaleBxx_PppAaaaaEeee.pgm``, one folder per
subject, 192 x 168 grey PGM faces whose name gives the pose ``pp`` and the light's azimuth
``aaaa`` and elevation ``eee`` in degrees (e.g. ``yaleB11_P00A-035E+15.pgm``). Ambient images
(``_Ambient``) and files not ending in ``.pgm`` (the published ``.bad`` ones) are skipped.

``subjects="extended"`` keeps the 28 subjects the extended database added (yaleB11 to yaleB39),
the individuals of Mathieu et al. (2016); ``"all"`` keeps every subject found. The label is the
subject (0, 1, ... in folder order); unlike Sprites and NORB, both splits hold the same subjects:
each subject's images are split at random (``seed``), ``test_fraction=0.25`` of them into test
(the paper: about 600 train and 180 test images per individual). Faces are centre-cropped to a
square and area-resized to ``[N, 1, size, size]`` (default 64). Factors: pose, light azimuth and
light elevation, each an index into the sorted values found in the folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dislib.data.base import ImageDataset
from dislib.data.mnist import DatasetNotFound

FOLDER = "CroppedYale"
URL = "http://vision.ucsd.edu/extyaleb/CroppedYaleBZip/CroppedYale.zip"
FACTOR_NAMES = ("pose", "azimuth", "elevation")
_NAME = re.compile(r"yaleB(\d\d)_P(\d\d)A([+-]\d{3})E([+-]\d{2})\.pgm")


def parse_name(name: str) -> tuple[int, int, int, int] | None:
    """``(subject, pose, azimuth, elevation)`` from a file name, ``None`` for ambient or other files."""
    match = _NAME.fullmatch(name)
    return None if match is None else tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def load_yaleb(
    split: str, root: Path, size: int = 64, subjects: str = "extended", test_fraction: float = 0.25, seed: int = 0
) -> ImageDataset:
    """Load Extended-YaleB's ``split``: grey faces ``[N, 1, size, size]``, label = subject."""
    if subjects not in ("extended", "all"):
        raise ValueError(f"subjects must be 'extended' (yaleB11-39) or 'all', got {subjects!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    folder = Path(root) / FOLDER
    files = sorted((p, parse_name(p.name)) for p in folder.glob("yaleB*/*.pgm"))
    files = [(p, meta) for p, meta in files if meta is not None and (subjects == "all" or meta[0] >= 11)]
    if not files:
        raise DatasetNotFound(
            f"no Extended-YaleB faces (yaleBxx/yaleBxx_PxxA+xxxE+xx.pgm) under {folder}. Download "
            f"{URL}, unzip it so that {folder}/yaleB11/ exists, or point DISLIB_DATA (or root=) at a "
            f"folder that has {FOLDER}/."
        )
    meta = np.array([m for _, m in files], dtype=np.int64)
    columns = [np.unique(meta[:, k], return_inverse=True)[1] for k in range(4)]
    subject, factors = columns[0], np.stack(columns[1:], axis=1)
    keep = _split_mask(subject, split, test_fraction, seed)
    images = torch.stack([_read_face(p, size) for (p, _), k in zip(files, keep) if k])
    return ImageDataset(
        images=images,
        labels=torch.from_numpy(subject[keep]),
        num_classes=int(subject.max()) + 1,
        name="yaleb",
        factors=torch.from_numpy(factors[keep]),
        factor_names=FACTOR_NAMES,
        factor_sizes=tuple(int(c.max()) + 1 for c in columns[1:]),
        class_names=tuple(f"yaleB{s:02d}" for s in np.unique(meta[:, 0])),
    )


def _split_mask(subject: np.ndarray, split: str, test_fraction: float, seed: int) -> np.ndarray:
    """Per subject, a seeded random ``test_fraction`` of its images is test, the rest train."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(subject), dtype=bool)
    for s in np.unique(subject):
        idx = np.flatnonzero(subject == s)
        test[rng.permutation(idx)[: round(len(idx) * test_fraction)]] = True
    return test if split == "test" else ~test


def _read_face(path: Path, size: int) -> torch.Tensor:
    with Image.open(path) as image:
        face = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
    h, w = face.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = face[top : top + side, left : left + side][None, None]
    return torch.nn.functional.interpolate(square, size=(size, size), mode="area")[0]
