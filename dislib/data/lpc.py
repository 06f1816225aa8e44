"""Sprites composed from the Liberated Pixel Cup (LPC) character spritesheets.

Reed et al. (2015) rendered their Sprites dataset, used by Mathieu et al. (2016), from these
sheets: 672 characters, each shown in 20 animations (5 actions x 4 directions). This module
composes such characters itself from a local copy of the Universal-LPC-spritesheet repository
(``<data root>/lpc-spritesheet/``, the repository's own folder layout).

A character (an *identity*, the label) combines the paper's seven attributes, in this order::

    body     light, tanned, dark                                   (skin of the base body)
    sex      male, female                                          (picks the matching sheets)
    hair     plain/blonde, ponytail/redhead, messy1/raven, long/brunette,
             pixie/pink, mohawk/gray, bangsshort/gold              (style/colour)
    armour   chain mail, leather chest
    arms     plate arms, gold arms
    greaves  metal pants + metal boots, golden greaves + golden boots
    weapon   spear + dagger + bow, spear + wood wand + great bow

3 x 2 x 7 x 2 x 2 x 2 x 2 = 672 identities, the paper's count. A weapon is drawn only in the
action that uses it (spear: thrust, dagger or wand: slash, bow and arrow: shoot); spellcast and
walk show empty hands. Every sheet is an 832 x 1344 RGBA image of 64 x 64 frames whose rows are
spellcast (7 frames), thrust (8), walk (9), slash (6), shoot (13), each facing up, left, down,
right, then hurt (6, unused). Layers are alpha-composited (``over``) in the order body, greaves,
armour, arms, hair, weapon onto a plain opaque background (white by default).

The *pose* of an image is its action (5), direction (4) and frame. Of each animation we keep
``frames`` frames, the middle frames of ``frames`` equal segments of the animation (``frames=1``:
the middle frame; ``frames=3`` of walk's 9 frames: frames 1, 4, 7). Images are 64 x 64 (native) or
box-downsampled (area average) to ``size`` (any divisor of 64, e.g. 32).

Identities are split at random (seeded) into disjoint train and test sets, 20% test by default
(538 train / 134 test); Reed et al. used 500 train / 72 validation / 100 test.

Composed images are cached as uint8 arrays in ``<data root>/lpc-sprites-cache/`` (or
``cache_dir=`` / ``DISLIB_CACHE``); a read-only data root without a cache folder only means the
characters are composed again in each new process (an unwritable ``cache_dir``/``DISLIB_CACHE``
also warns), and a damaged cache file is composed again and replaced, with a warning.

The art is dual licensed CC-BY-SA 3.0 / GPL 3.0: show :data:`CREDITS` with every figure made
from it (the full list of contributions is :func:`authors_text`, the repository's AUTHORS.txt).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dislib import settings
from dislib.data.base import ImageDataset
from dislib.data.cache import cache_folder, load_array, save_arrays
from dislib.data.mnist import DatasetNotFound

FOLDER = "lpc-spritesheet"
CACHE_FOLDER = "lpc-sprites-cache"
REPOSITORY = "makrohn/Universal-LPC-spritesheet"
COMMIT = "29c1d69d0608e53decf1b4378f93c6d2b0d9443f"
ARCHIVE_URL = f"https://github.com/{REPOSITORY}/archive/{COMMIT}.tar.gz"
AUTHORS = (
    "Luke Mehl", "Johannes Sjölund", "Marcel van de Steeg", "Manuel Riecke", "Thane Brimhall",
    "Matthew Krohn", "Lori Angela Nagel", "Lanea Zimmerman (Sharm)", "Stephen Challener (Redshrike)",
    "Daniel Eddeland", "Shaun Williams", "Joe White", "Barbara Rivera", "JRConway3", "JaidynReiman",
    "Nila122", "neo4cat6",
)  # fmt: skip
CREDITS = (
    "Sprites composed from the Universal LPC Spritesheet (github.com/makrohn/Universal-LPC-spritesheet, "
    f"commit {COMMIT[:7]}), Liberated Pixel Cup art by {', '.join(AUTHORS)}; "
    "licensed CC-BY-SA 3.0 / GPL 3.0."
)

ACTIONS = ("spellcast", "thrust", "walk", "slash", "shoot")
ACTION_FRAMES = (7, 8, 9, 6, 13)
DIRECTIONS = ("up", "left", "down", "right")
FRAME = 64
SHEET_SIZE = (832, 1344)
_KEPT_FOLDERS = ("body", "hair", "torso", "legs", "feet", "weapons", "hands", "head", "belt", "behind_body", "accessories")
_KEPT_FILES = ("README.md", "AUTHORS.txt", "cc-by-sa-3.0.txt", "gpl-3.0.txt")
_CACHE_VERSION = 1

# A layer is (path template, actions it is drawn in or None for all); "{sex}" is male/female.
Layer = tuple[str, tuple[str, ...] | None]
_BOW = (("weapons/left hand/either/arrow.png", ("shoot",)),)
ATTRIBUTES: dict[str, tuple[tuple[str, tuple[Layer, ...]], ...]] = {
    "body": tuple((skin, ((f"body/{{sex}}/{skin}.png", None),)) for skin in ("light", "tanned", "dark")),
    "sex": (("male", ()), ("female", ())),
    "hair": tuple(
        (f"{style}/{colour}", ((f"hair/{{sex}}/{style}/{colour}.png", None),))
        for style, colour in (
            ("plain", "blonde"), ("ponytail", "redhead"), ("messy1", "raven"), ("long", "brunette"),
            ("pixie", "pink"), ("mohawk", "gray"), ("bangsshort", "gold"),
        )
    ),  # fmt: skip
    "armour": (
        ("chain mail", (("torso/chain/mail_{sex}.png", None),)),
        ("leather chest", (("torso/leather/chest_{sex}.png", None),)),
    ),
    "arms": (
        ("plate arms", (("torso/plate/arms_{sex}.png", None),)),
        ("gold arms", (("torso/gold/arms_{sex}.png", None),)),
    ),
    "greaves": (
        ("metal", (("legs/armor/{sex}/metal_pants_{sex}.png", None), ("feet/armor/{sex}/metal_boots_{sex}.png", None))),
        ("golden", (("legs/armor/{sex}/golden_greaves_{sex}.png", None), ("feet/armor/{sex}/golden_boots_{sex}.png", None))),
    ),
    "weapon": (
        ("spear, dagger, bow", (
            ("weapons/right hand/{sex}/spear_{sex}.png", ("thrust",)),
            ("weapons/right hand/{sex}/dagger_{sex}.png", ("slash",)),
            ("weapons/right hand/either/bow.png", ("shoot",)),
        ) + _BOW),
        ("spear, wand, great bow", (
            ("weapons/right hand/{sex}/spear_{sex}.png", ("thrust",)),
            ("weapons/right hand/{sex}/woodwand_{sex}.png", ("slash",)),
            ("weapons/right hand/either/greatbow.png", ("shoot",)),
        ) + _BOW),
    ),
}  # fmt: skip
_DRAW_ORDER = ("body", "greaves", "armour", "arms", "hair", "weapon")
POSE_FACTORS = ("action", "direction", "frame")


def identity_count() -> int:
    """Number of distinct characters (672), the product of the attribute sizes; nothing is rendered."""
    return int(np.prod([len(options) for options in ATTRIBUTES.values()]))


def identity_attributes(identity: int) -> tuple[int, ...]:
    """Attribute indices (in :data:`ATTRIBUTES` order) of character number ``identity``."""
    sizes = [len(options) for options in ATTRIBUTES.values()]
    return tuple(int(i) for i in np.unravel_index(identity, sizes))


def identity_name(identity: int) -> str:
    """Readable description of a character, e.g. ``"light male plain/blonde chain mail ..."``."""
    names = [options[i][0] for options, i in zip(ATTRIBUTES.values(), identity_attributes(identity))]
    return ", ".join(names)


def frame_indices(frames: int) -> list[list[int]]:
    """Sheet columns kept for each action: the middle frame of each of ``frames`` equal segments."""
    if not 1 <= frames <= min(ACTION_FRAMES):
        raise ValueError(f"frames must be in [1, {min(ACTION_FRAMES)}] (slash has {min(ACTION_FRAMES)}), got {frames}")
    return [[int((k + 0.5) * n / frames) for k in range(frames)] for n in ACTION_FRAMES]


def split_identities(split: str, test_fraction: float = 0.2, seed: int = 0, max_identities: int | None = None) -> np.ndarray:
    """Sorted identity numbers of ``split``: a seeded permutation, the first ``test_fraction`` is test.

    ``max_identities`` keeps only the first that many characters of the permutation (both splits
    are then drawn from them), for quick runs.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(identity_count())
    if max_identities is not None:
        if max_identities < 2:
            raise ValueError(f"max_identities must be at least 2 (one per split), got {max_identities}")
        order = order[:max_identities]
    n_test = min(max(1, round(len(order) * test_fraction)), len(order) - 1)
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def load_lpc_sprites(
    split: str,
    root: Path,
    size: int = 64,
    frames: int = 3,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_identities: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = False,
) -> ImageDataset:
    """Load the ``lpc-sprites`` split: images ``[N, 3, size, size]``, labels = identity number.

    Parameters
    ----------
    split
        ``"train"`` or ``"test"``; their identities are disjoint (:func:`split_identities`).
    root
        Data root holding ``lpc-spritesheet/`` (downloaded there when missing and allowed).
    size
        Image side, 64 (native) or a divisor of 64 reached by area averaging.
    frames
        Frames kept per animation (1-6, see :func:`frame_indices`); ``N = identities x 20 x frames``.
    test_fraction, seed, max_identities
        Identity split, see :func:`split_identities`.
    background
        RGB of the opaque background the layers are composited onto.
    cache_dir
        Where composed uint8 arrays are cached; default ``DISLIB_CACHE``, else
        ``<root>/lpc-sprites-cache``; no disk cache where it cannot be written.
    download
        Fetch the pinned repository archive from GitHub when the folder is missing; default
        ``dislib.settings.downloads_allowed()``.
    verify
        Check the sheets used against ``lpc-spritesheet/SHA256SUMS`` before composing.

    Returns
    -------
    ImageDataset
        ``num_classes = 672`` (labels are global identity numbers in both splits); factors are
        the seven attribute indices then action, direction and frame index.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    if size < 1 or FRAME % size:
        raise ValueError(f"size must divide {FRAME} (e.g. 64 or 32), got {size}")
    folder = sheet_folder(root, download)
    if verify:
        verify_checksums(folder)
    identities = split_identities("train", test_fraction, seed, max_identities)
    identities = np.sort(np.concatenate([identities, split_identities("test", test_fraction, seed, max_identities)]))
    wanted = split_identities(split, test_fraction, seed, max_identities)
    cache = cache_folder(root, cache_dir, CACHE_FOLDER, "composed sprites")
    pixels = _composed(folder, tuple(identities.tolist()), frames, size, tuple(background), cache)
    rows = np.searchsorted(identities, wanted)
    images = torch.from_numpy(np.ascontiguousarray(pixels[rows])).reshape(-1, size, size, 3)
    images = images.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    factors = _factors(wanted, frames)
    return ImageDataset(
        images=images,
        labels=torch.from_numpy(np.repeat(wanted, len(ACTIONS) * len(DIRECTIONS) * frames)).long(),
        num_classes=identity_count(),
        name="lpc-sprites",
        factors=torch.from_numpy(factors),
        factor_names=tuple(ATTRIBUTES) + POSE_FACTORS,
        factor_sizes=tuple(len(o) for o in ATTRIBUTES.values()) + (len(ACTIONS), len(DIRECTIONS), frames),
        class_names=tuple(identity_name(i) for i in range(identity_count())),
    )


def _factors(identities: np.ndarray, frames: int) -> np.ndarray:
    """``[N, 10]`` int64: attributes of each image's identity, then action, direction, frame."""
    attributes = np.array([identity_attributes(i) for i in identities], dtype=np.int64).reshape(-1, len(ATTRIBUTES))
    pose = np.array(list(itertools.product(range(len(ACTIONS)), range(len(DIRECTIONS)), range(frames))), dtype=np.int64)
    return np.concatenate(
        [np.repeat(attributes, len(pose), axis=0), np.tile(pose, (len(identities), 1))], axis=1
    )


def sheet_folder(root: Path, download: bool | None = None) -> Path:
    """``<root>/lpc-spritesheet``, downloaded from GitHub first when missing and allowed."""
    folder = Path(root) / FOLDER
    if (folder / "body").is_dir():
        return folder
    download = settings.downloads_allowed() if download is None else download
    if not download:
        raise DatasetNotFound(_missing(folder, "downloads are off (DISLIB_DOWNLOAD=0)"))
    try:
        fetch_repository(folder)
    except (OSError, tarfile.TarError) as err:
        raise DatasetNotFound(_missing(folder, f"the download from {ARCHIVE_URL} failed ({err})")) from err
    return folder


def fetch_repository(folder: Path, url: str = ARCHIVE_URL) -> None:
    """Download the repository archive at the pinned commit and unpack its art into ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        urllib.request.urlretrieve(url, archive)
        unpacked = Path(tmp) / FOLDER
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts[1:]  # drop the archive's top folder
                kept = parts and (parts[0] in _KEPT_FOLDERS or len(parts) == 1 and parts[0] in _KEPT_FILES)
                if member.isfile() and kept:
                    member.name = str(Path(*parts))
                    tar.extract(member, unpacked, filter="data")
        if not (unpacked / "body").is_dir():
            raise OSError(f"the archive at {url} has no body/ folder: not the LPC spritesheet repository")
        shutil.move(str(unpacked), folder)


def verify_checksums(folder: Path) -> None:
    """Check every sheet :data:`ATTRIBUTES` uses against ``folder/SHA256SUMS``; raise on a mismatch."""
    sums_file = folder / "SHA256SUMS"
    if not sums_file.exists():
        raise DatasetNotFound(f"{sums_file} is missing: cannot verify the sheets (load with verify=False)")
    expected = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            expected[name.strip().removeprefix("./")] = digest
    for path in sorted(_sheet_paths()):
        digest = hashlib.sha256((folder / path).read_bytes()).hexdigest()
        if expected.get(path) != digest:
            raise ValueError(f"{folder / path} does not match SHA256SUMS: replace it with the file of commit {COMMIT[:7]}")


def authors_text(root: str | os.PathLike | None = None) -> str:
    """The repository's AUTHORS.txt (who drew which layer), read from the data root."""
    path = settings.data_root(root) / FOLDER / "AUTHORS.txt"
    if not path.exists():
        raise DatasetNotFound(_missing(path.parent, "AUTHORS.txt was not found"))
    return path.read_text(encoding="utf-8-sig")


def _sheet_paths() -> set[str]:
    return {
        template.format(sex=sex)
        for options in ATTRIBUTES.values()
        for _, layers in options
        for template, _ in layers
        for sex in ("male", "female")
    }


def _missing(folder: Path, why: str) -> str:
    return (
        f"the LPC spritesheets are not at {folder} and {why}. Put a copy of the repository "
        f"{REPOSITORY} (commit {COMMIT}; folders body/, hair/, torso/, legs/, feet/, weapons/ ...) "
        f"there, or point DISLIB_DATA (or root=) at a folder that has {FOLDER}/, or allow "
        f"downloads (DISLIB_DOWNLOAD=1) on a machine with a network."
    )


@functools.lru_cache(maxsize=1)
def _composed(
    folder: Path, identities: tuple[int, ...], frames: int, size: int, background: tuple[int, ...], cache: Path | None
) -> np.ndarray:
    """uint8 ``[identities, 20 * frames, size, size, 3]``, read from the disk cache or composed."""
    key = repr((_CACHE_VERSION, ATTRIBUTES, _DRAW_ORDER, identities, frames, size, background))
    path = None if cache is None else cache / f"sprites-{size}px-{frames}f-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"
    shape = (len(identities), len(ACTIONS) * len(DIRECTIONS) * frames, size, size, 3)
    cached = None if path is None else load_array(path, shape, np.uint8, "sprites")
    if cached is not None:
        return cached
    pixels = _compose_all(folder, identities, frames, size, background)
    if path is not None:
        save_arrays({path: pixels}, "composed sprites")
    return pixels


def _compose_all(folder: Path, identities: tuple[int, ...], frames: int, size: int, background: tuple[int, ...]) -> np.ndarray:
    columns = frame_indices(frames)
    rows = [4 * a + d for a in range(len(ACTIONS)) for d in range(len(DIRECTIONS)) for _ in range(frames)]
    cols = [c for a in range(len(ACTIONS)) for _ in DIRECTIONS for c in columns[a]]
    frame_action = [ACTIONS[r // 4] for r in rows]

    def frames_of(path: str, actions: tuple[str, ...] | None) -> np.ndarray:
        return _read_frames(folder / path, tuple(rows), tuple(cols), tuple(frame_action), actions)

    out = np.empty((len(identities), len(rows), size, size, 3), dtype=np.uint8)
    canvas = np.empty((len(rows), FRAME, FRAME, 3), dtype=np.float32)
    for n, identity in enumerate(identities):
        choice = dict(zip(ATTRIBUTES, identity_attributes(identity)))
        sex = ATTRIBUTES["sex"][choice["sex"]][0]
        canvas[:] = np.asarray(background, dtype=np.float32)
        for attribute in _DRAW_ORDER:
            for template, actions in ATTRIBUTES[attribute][choice[attribute]][1]:
                layer = frames_of(template.format(sex=sex), actions)
                alpha = layer[..., 3:].astype(np.float32) / 255.0
                canvas += alpha * (layer[..., :3] - canvas)
        composed = torch.from_numpy(canvas).permute(0, 3, 1, 2)
        if size != FRAME:
            composed = torch.nn.functional.interpolate(composed, size=(size, size), mode="area")
        out[n] = composed.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


@functools.lru_cache(maxsize=128)
def _read_frames(
    path: Path, rows: tuple[int, ...], cols: tuple[int, ...], frame_action: tuple[str, ...], actions: tuple[str, ...] | None
) -> np.ndarray:
    """uint8 RGBA ``[len(rows), 64, 64, 4]`` frames of one sheet, transparent outside ``actions``."""
    if not path.exists():
        raise DatasetNotFound(f"sheet {path} is missing from the LPC spritesheet copy: restore it from commit {COMMIT[:7]}")
    with Image.open(path) as image:
        if image.size != SHEET_SIZE:
            raise ValueError(f"{path} is {image.size[0]}x{image.size[1]}, expected an {SHEET_SIZE[0]}x{SHEET_SIZE[1]} sheet")
        sheet = np.asarray(image.convert("RGBA"))
    tiles = sheet.reshape(SHEET_SIZE[1] // FRAME, FRAME, SHEET_SIZE[0] // FRAME, FRAME, 4)
    frames = tiles[list(rows), :, list(cols)].copy()
    if actions is not None:
        frames[[a not in actions for a in frame_action], ..., 3] = 0
    frames.flags.writeable = False  # shared through the cache
    return frames
