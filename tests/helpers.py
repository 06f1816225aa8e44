"""Small synthetic datasets for fast tests."""

import torch

from dislib.data.base import ImageDataset


def tiny_images(n: int = 64, channels: int = 1, size: int = 28, classes: int = 10, seed: int = 0) -> ImageDataset:
    """Random images in [0, 1] with every class present at least twice."""
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(torch.rand(n, channels, size, size, generator=g), torch.arange(n) % classes, classes, "tiny")
