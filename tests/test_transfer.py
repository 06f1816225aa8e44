"""Attribute transfer in pixel space: the measured style by hand, and a model whose transfer is exact."""

import pytest
import torch
from torch import Tensor, nn

from dislib import transfer
from dislib.models.base import Codes, Disentangler, ImageConfig


def band(size: int = 16, width: int = 3, top: int = 2, length: int = 10, left: int = 4,
         colour: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> Tensor:
    """A horizontal bar ``width`` pixels high and ``length`` long in ``colour``, ``[3, size, size]``."""
    image = torch.zeros(3, size, size)
    image[:, top : top + width, left : left + length] = torch.tensor(colour)[:, None, None]
    return image


def test_pixel_style_by_hand():
    images = torch.stack([band(), band(width=1, length=6, colour=(1.0, 1.0, 1.0))])
    style = transfer.pixel_style(images)
    assert torch.allclose(style["colour"], torch.tensor([[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3]]))
    assert style["extent"].tolist() == pytest.approx([10 / 16, 6 / 16])
    # 30 lit pixels; 8 (the middle row but its two ends) survive a 3x3 erosion, 22 lie on the border
    assert style["stroke"][0].item() == pytest.approx(2 * 30 / 22)
    assert style["stroke"][1].item() == pytest.approx(2.0)  # a one-pixel line: every pixel is on the border


def test_a_dim_colour_is_lit_like_a_bright_one():
    dim = band(colour=(0.1, 0.05, 0.05))
    assert transfer.lit_pixels(dim[None]).sum() == transfer.lit_pixels(band()[None]).sum() == 30


def test_pixel_style_refuses_grey_images_and_pixels_out_of_range():
    with pytest.raises(ValueError, match=r"RGB images \[N, 3, H, W\]"):
        transfer.pixel_style(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        transfer.pixel_style(2 * torch.rand(2, 3, 8, 8))


class ColourShape(Disentangler):
    """An exact split: the specified code is the colour of the lit pixels, the unspecified code the
    grey shape; decoding paints the shape in the colour."""

    name = "colour-shape"
    Config = ImageConfig
    BUDGETS = {}

    def __init__(self) -> None:
        super().__init__(ImageConfig(image_channels=3, image_size=16, num_classes=2))
        self.specified_dim, self.unspecified_dim = 3, 16 * 16
        self.unused = nn.Parameter(torch.zeros(1))

    def encode(self, x: Tensor) -> Codes:
        colour = transfer.pixel_style(x)["colour"]
        shape = (x.amax(1) > 0).float().flatten(1)
        return Codes(specified=colour, unspecified=shape, unspecified_logvar=torch.zeros_like(shape))

    def decode(self, specified: Tensor, unspecified: Tensor) -> Tensor:
        return unspecified.view(-1, 1, 16, 16) * specified[:, :, None, None]


class LeftOrRight(nn.Module):
    """Class 0 when the image's ink lies in the left half, class 1 in the right half."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        ink = x.sum(1)
        return torch.stack([ink[..., :8].sum((1, 2)), ink[..., 8:].sum((1, 2))], 1)


def test_an_exact_split_transfers_the_colour_and_keeps_the_digit():
    content = torch.stack([band(left=0, length=6, colour=(0.6, 0.2, 0.2)), band(left=9, length=6, colour=(0.2, 0.6, 0.2))])
    style = torch.stack([band(top=9, colour=(0.1, 0.1, 0.8)), band(top=9, colour=(0.7, 0.2, 0.1))])
    scores = transfer.transfer_scores(ColourShape(), content, style, torch.tensor([0, 1]), LeftOrRight())
    assert scores["colour_to_style"] == pytest.approx(0.0, abs=1e-6)
    assert scores["colour_follows_style"] == 1.0
    assert scores["extent_to_content"] == 0.0 and scores["extent_follows_style"] == 0.0  # the shape stays A's
    assert scores["digit_accuracy"] == scores["reconstruction_digit_accuracy"] == 1.0


def test_transfer_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="row by row"):
        transfer.transfer(ColourShape(), torch.zeros(2, 3, 16, 16), torch.zeros(3, 3, 16, 16))
    with pytest.raises(ValueError, match="content_digits has 1 labels for 2"):
        transfer.transfer_scores(ColourShape(), torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 16), torch.tensor([0]),
                                 LeftOrRight())
