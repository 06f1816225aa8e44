"""lpc-sprites: identity catalogue (no data needed) and composition from the real sheets when present."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dislib.data import DatasetNotFound, load, lpc
from dislib.data.cache import cache_folder, writable

ROOT = Path(os.environ.get("DISLIB_DATA", "data"))
needs_sheets = pytest.mark.skipif(not (ROOT / lpc.FOLDER / "body").is_dir(), reason="no lpc-spritesheet under DISLIB_DATA")
SMALL = dict(max_identities=6, frames=1)


def test_identity_count_matches_the_paper_without_rendering():
    assert lpc.identity_count() == 672
    assert len(lpc.ATTRIBUTES) >= 6
    assert lpc.identity_attributes(671) == tuple(len(o) - 1 for o in lpc.ATTRIBUTES.values())


def test_default_split_is_disjoint_deterministic_and_complete():
    train, test = lpc.split_identities("train"), lpc.split_identities("test")
    assert (len(train), len(test)) == (538, 134)
    assert not set(train) & set(test)
    assert sorted(set(train) | set(test)) == list(range(672))
    assert np.array_equal(test, lpc.split_identities("test"))
    assert not np.array_equal(test, lpc.split_identities("test", seed=1))


def test_frame_indices_are_middles_of_equal_segments():
    assert lpc.frame_indices(1)[2] == [4]  # walk has 9 frames
    assert lpc.frame_indices(3)[2] == [1, 4, 7]
    with pytest.raises(ValueError, match="frames must be"):
        lpc.frame_indices(7)


def test_missing_folder_names_where_it_goes(tmp_path):
    with pytest.raises(DatasetNotFound, match="lpc-spritesheet.*DISLIB_DATA"):
        load("lpc-sprites", "train", root=tmp_path, download=False)


def test_fetch_unpacks_a_repository_archive(tmp_path):
    import tarfile

    sheet = tmp_path / "repo-29c1d69" / "body" / "male" / "light.png"
    sheet.parent.mkdir(parents=True)
    sheet.write_bytes(b"png")
    (tmp_path / "repo-29c1d69" / "AUTHORS.txt").write_text("someone")
    (tmp_path / "repo-29c1d69" / "sheet.xcf").write_text("not kept")
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "repo-29c1d69", arcname="repo-29c1d69")
    target = tmp_path / "root" / lpc.FOLDER
    lpc.fetch_repository(target, url=(tmp_path / "a.tar.gz").as_uri())
    assert (target / "body" / "male" / "light.png").read_bytes() == b"png"
    assert (target / "AUTHORS.txt").exists() and not (target / "sheet.xcf").exists()


def test_credits_name_the_artists():
    assert "Stephen Challener" in lpc.CREDITS and "CC-BY-SA 3.0" in lpc.CREDITS


@needs_sheets
def test_small_load_has_disjoint_identities_and_valid_factors(tmp_path):
    train = load("lpc-sprites", "train", root=ROOT, cache_dir=tmp_path, **SMALL)
    test = load("lpc-sprites", "test", root=ROOT, cache_dir=tmp_path, **SMALL)
    assert train.images.shape[1:] == (3, 64, 64) and train.images.dtype == torch.float32
    assert len(train) == 5 * 20 and len(test) == 1 * 20
    assert not set(train.labels.tolist()) & set(test.labels.tolist())
    assert train.num_classes == 672
    sizes = torch.tensor(train.factor_sizes)
    assert ((train.factors >= 0) & (train.factors < sizes)).all()
    assert train.factor_names[-3:] == ("action", "direction", "frame")
    for identity in train.labels.unique():  # attribute columns are constant per identity
        assert (train.factors[train.labels == identity, :7] == torch.tensor(lpc.identity_attributes(int(identity)))).all()
    background = train.images[:, :, 0, 0]  # a corner pixel: plain white background
    assert torch.allclose(background, torch.ones_like(background))
    assert (train.images < 0.9).float().mean() > 0.05  # a character is drawn


@needs_sheets
def test_cache_repeats_and_size_32_is_the_box_average(tmp_path):
    big = load("lpc-sprites", "test", root=ROOT, cache_dir=tmp_path, **SMALL)
    assert list(tmp_path.glob("*.npy"))
    lpc._composed.cache_clear()
    again = load("lpc-sprites", "test", root=ROOT, cache_dir=tmp_path, **SMALL)
    assert torch.equal(big.images, again.images)
    small = load("lpc-sprites", "test", root=ROOT, cache_dir=tmp_path, size=32, **SMALL)
    assert small.images.shape[1:] == (3, 32, 32)
    box = torch.nn.functional.avg_pool2d(big.images, 2)
    assert (small.images - box).abs().max() <= 1 / 255 + 1e-6
    with pytest.raises(ValueError, match="size must divide"):
        load("lpc-sprites", "test", root=ROOT, size=48, **SMALL)


@needs_sheets
def test_read_only_root_and_cache_work_without_a_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("DISLIB_CACHE", raising=False)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(read_only))
    if writable(ROOT) or sys.platform != "linux":
        pytest.skip("data root is writable, or the user cache is not XDG's")
    assert cache_folder(ROOT, None, lpc.CACHE_FOLDER, "composed sprites") is None
    data = load("lpc-sprites", "test", root=ROOT, max_identities=3, frames=1, size=32)
    assert len(data) == 20 and data.images.shape[-1] == 32


@needs_sheets
def test_checksums_of_the_sheets_used():
    lpc.verify_checksums(ROOT / lpc.FOLDER)
    assert "Johannes" in lpc.authors_text(ROOT)


def test_an_unwritable_cache_folder_warns_and_is_not_used(tmp_path, monkeypatch):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for folder in (read_only, a_file):
        monkeypatch.setenv("DISLIB_CACHE", str(folder))
        with pytest.warns(UserWarning, match=f"cannot write the sprites cache {folder}.*point DISLIB_CACHE at a writable"):
            assert cache_folder(tmp_path, None, lpc.CACHE_FOLDER, "sprites") is None
    with pytest.warns(UserWarning, match="cache_dir="):
        assert cache_folder(tmp_path, read_only / "cache", lpc.CACHE_FOLDER, "sprites") is None
    monkeypatch.setenv("DISLIB_CACHE", str(tmp_path / "new"))
    assert cache_folder(tmp_path, None, lpc.CACHE_FOLDER, "sprites") == tmp_path / "new" / lpc.CACHE_FOLDER


def test_a_damaged_cache_file_is_composed_again(tmp_path, monkeypatch):
    composed = []

    def compose_all(folder, identities, frames, size, background):
        composed.append(identities)
        return np.full((len(identities), 20 * frames, size, size, 3), 7, dtype=np.uint8)

    monkeypatch.setattr(lpc, "_compose_all", compose_all)
    args = (tmp_path, (1, 2), 1, 8, (255, 255, 255), tmp_path / "cache")
    first = lpc._composed.__wrapped__(*args)  # past the in-memory cache
    (cached,) = (tmp_path / "cache").glob("*.npy")
    assert np.array_equal(lpc._composed.__wrapped__(*args), first) and len(composed) == 1
    for damage in (cached.read_bytes()[:-100], b""):
        cached.write_bytes(damage)
        with pytest.warns(UserWarning, match="cached sprites .* is damaged .*composing it again"):
            assert np.array_equal(lpc._composed.__wrapped__(*args), first)
        assert np.array_equal(np.load(cached), first)  # replaced by a whole copy
    assert len(composed) == 3
