"""Small synthetic datasets for fast tests."""

import os
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from dislib.data.base import ImageDataset
from dislib.models.base import Codes, Disentangler, ImageConfig


def tiny_images(n: int = 64, channels: int = 1, size: int = 28, classes: int = 10, seed: int = 0) -> ImageDataset:
    """Random images in [0, 1] with every class present at least twice."""
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(torch.rand(n, channels, size, size, generator=g), torch.arange(n) % classes, classes, "tiny")


class Pixels(Disentangler):
    """s = the first pixel (the class), z = all 16 pixels with log-variance 0."""

    name = "pixels"
    Config = ImageConfig
    BUDGETS = {}

    def __init__(self, uses_z: bool = True) -> None:
        super().__init__(ImageConfig(image_channels=1, image_size=4, num_classes=2))
        self.specified_dim, self.unspecified_dim = 1, 16
        self.uses_z = uses_z
        self.scale = nn.Parameter(torch.ones(1))

    def encode(self, x: Tensor) -> Codes:
        flat = x.flatten(1)
        return Codes(specified=flat[:, :1], unspecified=flat, unspecified_logvar=torch.zeros_like(flat))

    def decode(self, specified: Tensor, unspecified: Tensor) -> Tensor:
        if self.uses_z:
            return 0.9 * unspecified.view(-1, 1, 4, 4)
        return specified[:, :, None, None].expand(-1, 1, 4, 4)


def pixel_data(n: int = 400, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.rand(n, 1, 4, 4, generator=g)
    images[:, 0, 0, 0] = labels.float()
    factors = torch.stack([labels, torch.randint(0, 3, (n,), generator=g)], 1)
    return ImageDataset(images, labels, 2, "pixels", factors, ("copy", "noise"), (2, 3))


def write_pid_and_sleep(folder: str) -> dict:
    """A pool job that leaves its process id in ``folder`` and sleeps: a run that never ends."""
    (Path(folder) / str(os.getpid())).touch()
    time.sleep(120)
    return {}
