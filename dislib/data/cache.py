"""The disk cache of composed datasets (lpc-sprites, styled-mnist): where it lives, and how its
arrays are written and read back.

A composed dataset is cached as ``.npy`` files under ``DISLIB_CACHE``, else the user's cache
folder (``$XDG_CACHE_HOME/dislib`` or ``~/.cache/dislib``; ``~/Library/Caches/dislib`` on macOS,
``%LOCALAPPDATA%\\dislib\\Cache`` on Windows), never in the data root unless asked. A folder that
cannot be written means no disk cache; a file is replaced atomically, with the SHA-256 of its bytes
beside it; a damaged file (cut short, of the wrong shape or type, or changed in place) is reported
and composed again, never read as garbage.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np


def user_cache() -> Path:
    """The platform's cache folder for dislib: ``%LOCALAPPDATA%\\dislib\\Cache`` on Windows,
    ``~/Library/Caches/dislib`` on macOS, else ``$XDG_CACHE_HOME/dislib`` (default ``~/.cache/dislib``)."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "dislib" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "dislib"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dislib"


def cache_folder(root: Path, cache_dir: str | os.PathLike | None, name: str, what: str) -> Path | None:
    """The cache folder ``name``: under ``cache_dir``, else ``DISLIB_CACHE``, else :func:`user_cache`;
    never the data ``root`` unless ``cache_dir`` names it.

    A folder that cannot be written (or created) means no disk cache: silently for the default
    user cache, with a warning naming ``what`` for a folder the caller asked for.
    """
    if cache_dir is not None:
        folder, source = Path(cache_dir), "cache_dir="
    elif os.environ.get("DISLIB_CACHE"):
        folder, source = Path(os.environ["DISLIB_CACHE"]) / name, "DISLIB_CACHE"
    else:
        folder, source = user_cache() / name, None
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
            digest = file_digest(partial)
            os.replace(partial, path)
            partial_digest = path.with_suffix(f".{os.getpid()}.tmp.sha256")
            partial_digest.write_text(digest)
            os.replace(partial_digest, digest_path(path))
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
        saved = digest_path(path).read_text().strip() if digest_path(path).exists() else None
        if not (shape is None or array.shape == shape) or array.dtype != dtype:
            why = f"{array.dtype} {array.shape}, expected {np.dtype(dtype)} {shape or ''}".rstrip()
        elif saved is None:
            why = f"no {digest_path(path).name} beside it to check its bytes against"
        elif saved != file_digest(path):
            why = f"its bytes differ from the SHA-256 in {digest_path(path).name}: changed since it was written"
        else:
            return array
    warnings.warn(f"the cached {what} {path} is damaged ({path.name}: {why}); composing it again to replace it", stacklevel=3)
    return None


def digest_path(path: Path) -> Path:
    """Where the SHA-256 of the cached array ``path`` is kept: beside it, ``NAME.sha256``."""
    return path.with_suffix(".sha256")


def file_digest(path: Path) -> str:
    """The SHA-256 of the bytes of ``path``, in hexadecimal, read in chunks of 16 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to ``path.tmp`` beside ``path``, then rename it to ``path``: a reader never sees
    half a file. On any failure (a full disk, Ctrl-C) the temporary file is removed and ``path`` is
    left as it was."""
    if path.is_dir():  # named here: the rename below would name the temporary file instead
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        tmp.replace(path)
    except RuntimeError as err:  # torch.save reports a failed write as its own RuntimeError
        full = _disk_full(path.parent)  # before the partial file is removed and frees its space
        tmp.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    """Whether the file system of ``folder`` has less than ``margin`` bytes free."""
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False
