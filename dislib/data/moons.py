"""Three moons: the 2-D toy data of Zheng & Sun (2019, App. B.1).

"Three half unit circles with a horizontal interval of 2.2", with Gaussian noise added (the
paper's standard deviation was lost in conversion; 0.1 here, an option). All three are upper
half circles (``y = sin t``): the paper calls the x axis label-relevant and the y axis
label-irrelevant, which holds only when every class spreads over y the same way. Class ``k``
is centred at ``x = 2.2 (k - 1)``, so the classes sit side by side, 0.2 apart before noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from dislib.data.base import PointDataset

SPLIT_STREAMS = {"train": 0, "test": 1}
INTERVAL = 2.2


def load_three_moons(
    split: str, root: Path | None = None, n: int = 3000, noise: float = 0.1, seed: int = 0
) -> PointDataset:
    """``n`` points of the three-moons toy, classes balanced (up to one point) and shuffled.

    Each point carries its angle along the arc (radians in ``[0, pi]``) as a real factor: the
    label-irrelevant factor a model should keep in its unspecified code.

    Parameters
    ----------
    split
        ``"train"`` or ``"test"``: independent draws from the same distribution.
    root
        Unused: the points are drawn, not read (kept for the :func:`dislib.data.load` signature).
    n
        Number of points.
    noise
        Standard deviation of the Gaussian noise added to both coordinates.
    seed
        Seed of the draw (with the split, so train and test differ).
    """
    if split not in SPLIT_STREAMS:
        raise ValueError(f"unknown split {split!r}; use one of {tuple(SPLIT_STREAMS)}")
    if n < 1:
        raise ValueError(f"three-moons needs n >= 1 points, got {n}")
    if noise < 0:
        raise ValueError(f"three-moons noise is a standard deviation and must be >= 0, got {noise}")
    rng = np.random.default_rng([seed, SPLIT_STREAMS[split]])
    labels = rng.permutation(np.arange(n) % 3)
    angle = rng.uniform(0.0, math.pi, n)
    points = np.stack([INTERVAL * (labels - 1) + np.cos(angle), np.sin(angle)], 1)
    points += rng.normal(0.0, noise, points.shape)
    angles = torch.from_numpy(angle).float().unsqueeze(1)
    return PointDataset(torch.from_numpy(points).float(), torch.from_numpy(labels).long(), 3, "three-moons",
                        factors=angles, factor_names=("angle",))
