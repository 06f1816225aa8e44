"""The disk cache of composed datasets (lpc-sprites, styled-mnist): where it lives, and how its
arrays are written and read back.

A composed dataset is cached as ``.npy`` files under ``DISLIB_CACHE`` (or the data root). A folder
that cannot be written means no disk cache; a file is replaced atomically; a damaged file (cut
short, of the wrong shape or type) is reported and composed again, never read as garbage.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np


def cache_folder(root: Path, cache_dir: str | os.PathLike | None, name: str, what: str) -> Path | None:
    """The cache folder ``name``: under ``cache_dir``, else ``DISLIB_CACHE``, else the data ``root``.

    A folder that cannot be written (or created) means no disk cache: silently for the default
    under the data root (a read-only shared data root is normal), with a warning naming ``what``
    for a folder the caller asked for.
    """
    if cache_dir is not None:
        folder, source = Path(cache_dir), "cache_dir="
    elif os.environ.get("DISLIB_CACHE"):
        folder, source = Path(os.environ["DISLIB_CACHE"]) / name, "DISLIB_CACHE"
    else:
        folder, source = Path(root) / name, None
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if writable(existing):
        return folder
    if source is not None:
        warnings.warn(f"cannot write the {what} cache {folder} ({source}): working without a cache; "
                      f"point {source} at a writable folder to keep the {what}", stacklevel=4)
    return None


def writable(path: Path) -> bool:
    """Writable for us and not marked read-only (no write bit), which even root respects here."""
    return path.is_dir() and os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def save_arrays(arrays: dict[Path, np.ndarray], what: str) -> None:
    """Write each array to its ``.npy`` path atomically (a temporary file, then a rename); a
    failure to write is a warning, not an error: the next load composes again."""
    try:
        for path, array in arrays.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(partial, array)
            os.replace(partial, path)
    except OSError as err:
        warnings.warn(f"could not cache the {what} in {next(iter(arrays)).parent} ({err}); composing again next time")


def load_array(path: Path, shape: tuple[int, ...] | None, dtype: np.dtype | type, what: str, mmap: bool = True) -> np.ndarray | None:
    """The array at ``path`` (memory-mapped with ``mmap``) if it exists and has ``shape`` (any
    shape when ``None``) and ``dtype``; ``None`` if it does not exist, and ``None`` with a warning
    naming the file if it is damaged."""
    if not path.exists():
        return None
    try:
        array = np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:
        why = str(err)
    else:
        if (shape is None or array.shape == shape) and array.dtype == dtype:
            return array
        why = f"{array.dtype} {array.shape}, expected {np.dtype(dtype)} {shape or ''}".rstrip()
    warnings.warn(f"the cached {what} {path} is damaged ({path.name}: {why}); composing it again to replace it", stacklevel=3)
    return None
