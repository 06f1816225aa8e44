"""Procedural sprites: a stand-in for the Sprites dataset of Reed et al. (2015) used by Mathieu et al.

The original dataset (672 characters rendered from the Liberated Pixel Cup art) cannot be
obtained here, so this module draws small characters itself, with numpy, from geometric shapes.
Each character's *identity* combines five attributes, and every identity is drawn in every pose:

=========  ======  ==========================================================
factor     values  meaning
=========  ======  ==========================================================
skin       3       skin tone
hair       7       hair style and colour (bald, short, long, spiky, bun)
top        4       colour of the shirt and sleeves
bottom     2       colour of the trousers
item       4       nothing, sword, staff or shield
direction  4       facing front, left, right or back
frame      6       step of the walking cycle (legs and arms swing, the item moves)
shift_x    3       horizontal shift of the character by -1, 0 or +1 (in 32-grid pixels)
shift_y    3       vertical shift, likewise
=========  ======  ==========================================================

3 x 7 x 4 x 2 x 4 = 672 identities (as in the paper) times 4 x 6 = 24 poses; each image also has
a random shift. The label is the identity index in ``[0, 672)`` for both splits; the test split
holds identities the training split never shows (the paper's point: the specified code must
generalise to unseen identities), so its labels are classes no training image has.

Images are drawn as maps of body parts at 64x64 and coloured from each identity's palette;
``size=32`` averages 2x2 blocks of the 64-pixel images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dislib.data.base import ImageDataset

SKINS = ("light", "tan", "dark")
HAIRS = ("bald", "short black", "short blond", "long brown", "long red", "spiky silver", "bun black")
TOPS = ("red", "green", "blue", "yellow")
BOTTOMS = ("navy", "khaki")
ITEMS = ("none", "sword", "staff", "shield")
DIRECTIONS = ("front", "left", "right", "back")
FRAMES = 6
MAX_SHIFT = 1
ATTRIBUTES = (SKINS, HAIRS, TOPS, BOTTOMS, ITEMS)
FACTOR_NAMES = ("skin", "hair", "top", "bottom", "item", "direction", "frame", "shift_x", "shift_y")
FACTOR_SIZES = tuple(len(a) for a in ATTRIBUTES) + (len(DIRECTIONS), FRAMES, 2 * MAX_SHIFT + 1, 2 * MAX_SHIFT + 1)
NUM_IDENTITIES = math.prod(len(a) for a in ATTRIBUTES)
POSES = len(DIRECTIONS) * FRAMES
SIZES = (32, 64)
RENDER_SIZE = 64

# body parts a pixel can show; each identity maps every part to a colour
BG, OUTLINE, SKIN, SKIN_DARK, HAIR, TOP, TOP_DARK, BOTTOM, BOTTOM_DARK, SHOES, BELT, EYES, METAL, WOOD, GOLD, GEM = range(16)
_HAIR_STYLES = ("bald", "short", "long", "spiky", "bun")
_FIXED_COLOURS = {
    BG: (1.0, 1.0, 1.0),
    OUTLINE: (0.13, 0.10, 0.12),
    SHOES: (0.30, 0.18, 0.10),
    BELT: (0.42, 0.26, 0.12),
    EYES: (0.10, 0.10, 0.18),
    METAL: (0.78, 0.80, 0.86),
    WOOD: (0.55, 0.34, 0.15),
    GOLD: (0.95, 0.76, 0.20),
    GEM: (0.25, 0.85, 0.95),
}
_SKIN_RGB = ((0.98, 0.82, 0.68), (0.82, 0.60, 0.42), (0.48, 0.31, 0.20))
_HAIR_RGB = {"black": (0.16, 0.13, 0.13), "blond": (0.95, 0.82, 0.36), "brown": (0.50, 0.30, 0.13),
             "red": (0.80, 0.26, 0.12), "silver": (0.85, 0.86, 0.92)}
_TOP_RGB = ((0.82, 0.18, 0.18), (0.20, 0.62, 0.26), (0.22, 0.38, 0.85), (0.95, 0.80, 0.22))
_BOTTOM_RGB = ((0.22, 0.25, 0.42), (0.72, 0.62, 0.40))
_SHADE = 0.7


def load_sprites(
    split: str, root: Path | None = None, size: int = 32, seed: int = 0, test_identities: int = 100
) -> ImageDataset:
    """Procedural sprites: RGB characters ``[N, 3, size, size]``, labels = identity in ``[0, 672)``.

    Parameters
    ----------
    split
        ``"train"`` or ``"test"``; they hold disjoint identities, all 24 poses of each.
    root
        Unused: the images are drawn, not read (kept for the :func:`dislib.data.load` signature).
    size
        32 or 64 pixels.
    seed
        Chooses the test identities and each image's shift.
    test_identities
        How many of the 672 identities the test split holds.

    Returns
    -------
    ImageDataset
        Ordered by identity, then direction, then frame: the first ``24 k`` images are ``k``
        whole identities. ``factors`` has the columns of :data:`FACTOR_NAMES`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    if size not in SIZES:
        raise ValueError(f"sprites size must be one of {SIZES}, got {size}")
    if not 0 < test_identities < NUM_IDENTITIES:
        raise ValueError(f"test_identities must lie in [1, {NUM_IDENTITIES - 1}], got {test_identities}")
    rng = np.random.default_rng(seed)
    test = np.sort(rng.permutation(NUM_IDENTITIES)[:test_identities])
    shifts = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=(NUM_IDENTITIES, POSES, 2))
    identities = test if split == "test" else np.setdiff1d(np.arange(NUM_IDENTITIES), test)
    attributes = np.stack(np.unravel_index(identities, FACTOR_SIZES[:5]), 1)
    poses = np.stack(np.unravel_index(np.arange(POSES), (len(DIRECTIONS), FRAMES)), 1)
    factors = np.concatenate(
        [
            np.repeat(attributes, POSES, 0),
            np.tile(poses, (len(identities), 1)),
            shifts[identities].reshape(-1, 2) + MAX_SHIFT,
        ],
        1,
    )
    images = render(torch.from_numpy(factors), size)
    labels = torch.from_numpy(np.repeat(identities, POSES))
    return ImageDataset(
        images,
        labels,
        NUM_IDENTITIES,
        "sprites",
        factors=torch.from_numpy(factors),
        factor_names=FACTOR_NAMES,
        factor_sizes=FACTOR_SIZES,
        class_names=tuple(identity_name(i) for i in range(NUM_IDENTITIES)),
    )


def identity_name(identity: int) -> str:
    """Human-readable description of an identity, e.g. ``"light skin, bald, red top, ..."``."""
    skin, hair, top, bottom, item = np.unravel_index(identity, FACTOR_SIZES[:5])
    held = "empty-handed" if ITEMS[item] == "none" else f"with a {ITEMS[item]}"
    hair_name = "bald" if HAIRS[hair] == "bald" else f"{HAIRS[hair]} hair"
    return f"{SKINS[skin]} skin, {hair_name}, {TOPS[top]} top, {BOTTOMS[bottom]} trousers, {held}"


def render(factors: torch.Tensor, size: int = 32, chunk: int = 2048) -> torch.Tensor:
    """Draw one image per row of ``factors`` (columns of :data:`FACTOR_NAMES`).

    Returns ``float32`` images ``[N, 3, size, size]`` in ``[0, 1]``.
    """
    factors = factors.long()
    maps = torch.from_numpy(_part_maps()).long()  # [direction, frame, hair style, item, H, W]
    palettes = torch.from_numpy(_palettes()).float().reshape(-1, 3)  # [identity * part, 3]
    num_parts = len(palettes) // NUM_IDENTITIES
    style = torch.tensor([_HAIR_STYLES.index(h.split()[0]) for h in HAIRS])
    grid = torch.arange(RENDER_SIZE)
    scale = RENDER_SIZE // 32
    out = torch.empty(len(factors), 3, size, size)
    for start in range(0, len(factors), chunk):
        f = factors[start : start + chunk]
        identity = _identity(f[:, :5])
        dx = (f[:, 7] - MAX_SHIFT) * scale
        dy = (f[:, 8] - MAX_SHIFT) * scale
        rows = (grid[None, :, None] - dy[:, None, None]).clamp(0, RENDER_SIZE - 1)
        cols = (grid[None, None, :] - dx[:, None, None]).clamp(0, RENDER_SIZE - 1)
        selected = maps[f[:, 5], f[:, 6], style[f[:, 1]], f[:, 4]]  # [n, H, W]
        parts = selected[torch.arange(len(f))[:, None, None], rows, cols]
        rgb = palettes[identity[:, None, None] * num_parts + parts].permute(0, 3, 1, 2)
        out[start : start + len(f)] = F.avg_pool2d(rgb, RENDER_SIZE // size) if size < RENDER_SIZE else rgb
    return out


def _identity(attributes: torch.Tensor) -> torch.Tensor:
    index = torch.zeros(len(attributes), dtype=torch.long)
    for column, n in enumerate(FACTOR_SIZES[:5]):
        index = index * n + attributes[:, column]
    return index


def _palettes() -> np.ndarray:
    """Colour of every body part for every identity: ``[identity, part, 3]``."""
    palettes = np.zeros((NUM_IDENTITIES, GEM + 1, 3))
    for part, rgb in _FIXED_COLOURS.items():
        palettes[:, part] = rgb
    skin, hair, top, bottom, _ = np.unravel_index(np.arange(NUM_IDENTITIES), FACTOR_SIZES[:5])
    hair_rgb = np.array([_HAIR_RGB.get(h.split()[-1], (0, 0, 0)) for h in HAIRS])
    palettes[:, SKIN] = np.array(_SKIN_RGB)[skin]
    palettes[:, HAIR] = hair_rgb[hair]
    palettes[:, TOP] = np.array(_TOP_RGB)[top]
    palettes[:, BOTTOM] = np.array(_BOTTOM_RGB)[bottom]
    for light, dark in ((SKIN, SKIN_DARK), (TOP, TOP_DARK), (BOTTOM, BOTTOM_DARK)):
        palettes[:, dark] = palettes[:, light] * _SHADE
    return palettes


def _part_maps() -> np.ndarray:
    """Which body part each pixel shows: ``uint8 [direction, frame, hair style, item, 64, 64]``."""
    maps = np.zeros((len(DIRECTIONS), FRAMES, len(_HAIR_STYLES), len(ITEMS), RENDER_SIZE, RENDER_SIZE), np.uint8)
    for frame in range(FRAMES):
        phase = 2 * math.pi * frame / FRAMES
        for style in _HAIR_STYLES:
            for item in ITEMS:
                s, i = _HAIR_STYLES.index(style), ITEMS.index(item)
                maps[0, frame, s, i] = _draw("front", phase, style, item)
                maps[3, frame, s, i] = _draw("back", phase, style, item)
                maps[2, frame, s, i] = _draw("side", phase, style, item)
                maps[1, frame, s, i] = maps[2, frame, s, i, :, ::-1]
    return maps


class _Canvas:
    """A grid of body-part ids painted with shapes given in unit coordinates (x right, y down)."""

    def __init__(self, resolution: int) -> None:
        centres = (np.arange(resolution) + 0.5) / resolution
        self.x, self.y = np.meshgrid(centres, centres)
        self.parts = np.zeros((resolution, resolution), np.uint8)

    def paint(self, mask: np.ndarray, part: int) -> None:
        self.parts[mask] = part

    def ellipse(self, centre: tuple[float, float], rx: float, ry: float) -> np.ndarray:
        return ((self.x - centre[0]) / rx) ** 2 + ((self.y - centre[1]) / ry) ** 2 <= 1

    def capsule(self, a: tuple[float, float], b: tuple[float, float], radius: float) -> np.ndarray:
        """Points within ``radius`` of the segment from ``a`` to ``b``."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        t = np.clip(((self.x - a[0]) * dx + (self.y - a[1]) * dy) / (dx * dx + dy * dy + 1e-12), 0, 1)
        return (self.x - a[0] - t * dx) ** 2 + (self.y - a[1] - t * dy) ** 2 <= radius**2

    def box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return (self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1)

    def triangle(self, a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> np.ndarray:
        def side(p: tuple[float, float], q: tuple[float, float]) -> np.ndarray:
            return (q[0] - p[0]) * (self.y - p[1]) - (q[1] - p[1]) * (self.x - p[0])

        s1, s2, s3 = side(a, b), side(b, c), side(c, a)
        return ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))

    def outline(self) -> None:
        """Surround the character with a one-pixel dark line."""
        body = np.pad(self.parts > BG, 1)
        grown = np.zeros_like(self.parts, bool)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                grown |= body[dy : dy + self.parts.shape[0], dx : dx + self.parts.shape[1]]
        self.paint(grown & (self.parts == BG), OUTLINE)


HEAD_RADIUS = 0.13


def _draw(view: str, phase: float, style: str, item: str) -> np.ndarray:
    """Part map of one pose: ``view`` is ``front``, ``back`` or ``side`` (facing right)."""
    c = _Canvas(RENDER_SIZE)
    s, k = math.sin(phase), math.cos(phase)
    bob = 0.012 * abs(s)
    head = (0.5, 0.30 - bob)
    top, bottom = 0.44 - bob, 0.665 - bob
    if view == "side":
        hips = [(0.5, bottom - 0.01)] * 2
        legs = (-0.42 * s, 0.42 * s)  # far leg, near leg: angles from the vertical
        lifts = (max(0.0, -k), max(0.0, k))
        feet = [(h[0] + 0.21 * math.sin(a), h[1] + 0.21 * math.cos(a) - 0.04 * lift) for h, a, lift in zip(hips, legs, lifts)]
        shoulder = (0.5, top + 0.035)
        # arms swing against the legs; a hand that holds something stays forward
        arms = (-legs[0], -legs[1] if item == "none" else 0.45 - 0.4 * legs[1])
        hands = [(shoulder[0] + 0.165 * math.sin(a), shoulder[1] + 0.165 * math.cos(a)) for a in arms]
        c.paint(c.capsule(shoulder, hands[0], 0.036), TOP_DARK)
        c.paint(c.ellipse(hands[0], 0.034, 0.034), SKIN_DARK)
        for colour, hip, foot in ((BOTTOM_DARK, hips[0], feet[0]), (BOTTOM, hips[1], feet[1])):
            c.paint(c.capsule(hip, foot, 0.045), colour)
            c.paint(c.ellipse((foot[0] + 0.02, foot[1] + 0.012), 0.055, 0.03), SHOES)
        c.paint(c.box(0.41, top, 0.59, bottom) | c.capsule((0.43, top + 0.025), (0.57, top + 0.025), 0.03), TOP)
        c.paint(c.box(0.41, bottom - 0.035, 0.59, bottom), BELT)
        c.paint(c.ellipse(head, HEAD_RADIUS, HEAD_RADIUS * 0.96), SKIN)
        c.paint(c.ellipse((head[0] + HEAD_RADIUS * 0.95, head[1] + 0.02), 0.022, 0.022), SKIN)
        c.paint(c.ellipse((head[0] + 0.075, head[1] + 0.012), 0.017, 0.026), EYES)
        _hair(c, view, style, head)
        c.paint(c.capsule(shoulder, hands[1], 0.036), TOP)
        c.paint(c.ellipse(hands[1], 0.034, 0.034), SKIN)
        _item(c, view, item, hands[1], +1)
    else:
        hips = [(0.445, bottom - 0.01), (0.555, bottom - 0.01)]
        feet = [(0.445, 0.87 - 0.05 * max(0.0, k)), (0.555, 0.87 - 0.05 * max(0.0, -k))]
        shoulders = [(0.365, top + 0.035), (0.635, top + 0.035)]
        hands = [(0.34, 0.64 - bob + 0.025 * s), (0.66, 0.64 - bob - 0.025 * s)]
        for hip, foot in zip(hips, feet):
            c.paint(c.capsule(hip, foot, 0.045), BOTTOM)
            c.paint(c.ellipse((foot[0], foot[1] + 0.012), 0.05, 0.03), SHOES)
        c.paint(c.box(0.38, top + 0.02, 0.62, bottom) | c.capsule((0.40, top + 0.025), (0.60, top + 0.025), 0.03), TOP)
        c.paint(c.box(0.38, bottom - 0.035, 0.62, bottom), BELT)
        for shoulder, hand in zip(shoulders, hands):
            c.paint(c.capsule(shoulder, hand, 0.036), TOP)
            c.paint(c.ellipse(hand, 0.034, 0.034), SKIN)
        c.paint(c.ellipse(head, HEAD_RADIUS, HEAD_RADIUS * 0.96), SKIN)
        if view == "front":
            for dx in (-0.052, 0.052):
                c.paint(c.ellipse((head[0] + dx, head[1] + 0.015), 0.017, 0.026), EYES)
        _hair(c, view, style, head)
        # the character holds the item in its right hand: the viewer's left from the front
        hand, outward = (hands[0], -1) if view == "front" else (hands[1], +1)
        _item(c, view, item, hand, outward, other_hand=hands[1] if view == "front" else hands[0])
    c.outline()
    return c.parts


def _hair(c: _Canvas, view: str, style: str, head: tuple[float, float]) -> None:
    if style == "bald":
        return
    hx, hy = head
    r = HEAD_RADIUS
    cap = c.ellipse((hx, hy - 0.012), r * 1.08, r * 1.05)
    if view == "front":
        mask = cap & ((c.y < hy - 0.035) | ((np.abs(c.x - hx) > r * 0.78) & (c.y < hy + 0.03)))
    elif view == "back":
        mask = cap & (c.y < hy + 0.08)
    else:
        mask = cap & ((c.y < hy - 0.035) | ((c.x < hx - 0.01) & (c.y < hy + 0.08)))
    if style == "long":
        if view == "front":
            mask |= c.box(hx - r * 1.1, hy - 0.03, hx - r * 0.8, hy + 0.17) | c.box(hx + r * 0.8, hy - 0.03, hx + r * 1.1, hy + 0.17)
        elif view == "back":
            mask |= c.box(hx - r * 1.08, hy, hx + r * 1.08, hy + 0.17)
        else:
            mask |= c.box(hx - r * 1.06, hy, hx - 0.02, hy + 0.17)
    elif style == "spiky":
        if view == "side":
            for base in (-0.09, -0.04, 0.01, 0.06):
                tip = (hx + base - 0.07, hy - r - 0.045 + 0.4 * abs(base + 0.02))
                mask |= c.triangle((hx + base - 0.035, hy - r * 0.6), (hx + base + 0.035, hy - r * 0.6), tip)
        else:
            for t in (-0.1, -0.05, 0.0, 0.05, 0.1):
                tip = (hx + 1.3 * t, hy - r - 0.06 + 0.3 * abs(t))
                mask |= c.triangle((hx + 0.7 * t - 0.035, hy - r * 0.6), (hx + 0.7 * t + 0.035, hy - r * 0.6), tip)
    elif style == "bun":
        centre = (hx - 0.06, hy - r * 0.95) if view == "side" else (hx, hy - r - 0.025)
        mask |= c.ellipse(centre, 0.052, 0.046)
    c.paint(mask, HAIR)


def _item(
    c: _Canvas,
    view: str,
    item: str,
    hand: tuple[float, float],
    outward: int,
    other_hand: tuple[float, float] | None = None,
) -> None:
    x, y = hand
    if item == "sword":
        tip = (x + 0.25, y - 0.17) if view == "side" else (x + outward * 0.15, y - 0.27)
        c.paint(c.capsule((x + outward * 0.02, y - 0.03), tip, 0.021), METAL)
        c.paint(c.capsule((x - 0.045, y - 0.035), (x + 0.045, y - 0.015), 0.015), GOLD)
        c.paint(c.capsule((x, y + 0.02), (x + outward * 0.008, y - 0.02), 0.015), WOOD)
    elif item == "staff":
        lean = 0.05 if view == "side" else 0.0  # seen from the side, the staff leans away from the face
        top = (x + outward * 0.01 + 2 * lean, y - 0.34)
        c.paint(c.capsule((x + outward * 0.01 - lean, y + 0.2), top, 0.016), WOOD)
        c.paint(c.ellipse((top[0], top[1] - 0.03), 0.036, 0.042), GEM)
    elif item == "shield":
        if view == "side":
            centre = (x + 0.035, y - 0.03)
            c.paint(c.ellipse(centre, 0.04, 0.105), METAL)
            c.paint(c.ellipse(centre, 0.022, 0.08), WOOD)
        else:
            centre = other_hand if view == "front" else (0.5, 0.55)
            c.paint(c.ellipse(centre, 0.1, 0.1), METAL)
            c.paint(c.ellipse(centre, 0.075, 0.075), WOOD)
            c.paint(c.ellipse(centre, 0.026, 0.026), GOLD)
