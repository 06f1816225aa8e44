"""small NORB and Extended-YaleB loaders on tiny files written here in the published formats."""

import numpy as np
import pytest
import torch
from PIL import Image

from dislib.data import DatasetNotFound, load, norb, yaleb


def _write_matrix(path, array, magic):
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], dtype="<i4")
    path.write_bytes(header.tobytes() + array.astype(array.dtype.newbyteorder("<")).tobytes())


def _write_norb(root, split, n=6):
    rng = np.random.default_rng(0)
    folder = root / norb.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    prefix = norb._PREFIX[split]
    dat = rng.integers(0, 256, (n, 2, 96, 96), dtype=np.uint8)
    cat = np.arange(n, dtype=np.int32) % 5
    info = np.stack([np.full(n, 4), np.arange(n) % 9, 2 * (np.arange(n) % 18), np.arange(n) % 6], 1).astype(np.int32)
    _write_matrix(folder / f"{prefix}-dat.mat", dat, 0x1E3D4C55)
    _write_matrix(folder / f"{prefix}-cat.mat", cat, 0x1E3D4C54)
    _write_matrix(folder / f"{prefix}-info.mat", info, 0x1E3D4C54)
    return dat, cat, info


def test_norb_reads_the_binary_matrix_format(tmp_path):
    dat, cat, info = _write_norb(tmp_path, "train")
    assert np.array_equal(norb.read_binary_matrix(tmp_path / norb.FOLDER / f"{norb._PREFIX['train']}-cat.mat"), cat)
    data = load("norb", "train", root=tmp_path, size=32)
    assert data.images.shape == (6, 1, 32, 32)
    assert torch.equal(data.labels, torch.from_numpy(cat * 10 + 4).long())
    assert data.num_classes == 50
    assert data.factor_names == norb.FACTOR_NAMES
    assert (data.factors < torch.tensor(norb.FACTOR_SIZES)).all()
    assert torch.equal(data.factors[:, 3], torch.from_numpy(info[:, 2] // 2).long())
    full = load("norb", "train", root=tmp_path, size=96)
    assert torch.allclose(full.images[:, 0], torch.from_numpy(dat[:, 0]).float() / 255)
    both = load("norb", "train", root=tmp_path, size=32, camera="both")
    assert len(both) == 12 and both.factors[:, 5].tolist() == [0, 1] * 6


def test_norb_reads_gzipped_files(tmp_path):
    import gzip

    _write_norb(tmp_path, "test")
    for path in (tmp_path / norb.FOLDER).iterdir():
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    assert len(load("norb", "test", root=tmp_path, size=32)) == 6


def test_norb_errors_name_the_fix(tmp_path):
    with pytest.raises(DatasetNotFound, match="cs.nyu.edu.*smallnorb"):
        load("norb", "train", root=tmp_path)
    (tmp_path / "bad.mat").write_bytes(np.array([7, 1, 1, 1, 1], dtype="<i4").tobytes())
    with pytest.raises(ValueError, match="not a NORB binary matrix"):
        norb.read_binary_matrix(tmp_path / "bad.mat")
    _write_norb(tmp_path, "train")
    with pytest.raises(ValueError, match="camera"):
        load("norb", "train", root=tmp_path, camera="middle")


def _write_yale(root):
    rng = np.random.default_rng(0)
    lights = ["A+000E+00", "A-035E+15", "A+050E-40", "A+110E+65"]
    for subject in (1, 11, 12):
        folder = root / yaleb.FOLDER / f"yaleB{subject:02d}"
        folder.mkdir(parents=True)
        for light in lights:
            Image.fromarray(rng.integers(0, 256, (192, 168), dtype=np.uint8)).save(folder / f"yaleB{subject:02d}_P00{light}.pgm")
        Image.fromarray(np.zeros((192, 168), np.uint8)).save(folder / f"yaleB{subject:02d}_P00_Ambient.pgm")
        (folder / f"yaleB{subject:02d}_P00A+095E+00.pgm.bad").write_bytes(b"broken")


def test_yaleb_parses_names_and_splits_each_subject(tmp_path):
    _write_yale(tmp_path)
    assert yaleb.parse_name("yaleB11_P00A-035E+15.pgm") == (11, 0, -35, 15)
    assert yaleb.parse_name("yaleB11_P00_Ambient.pgm") is None
    train = load("yaleb", "train", root=tmp_path, size=32)
    test = load("yaleb", "test", root=tmp_path, size=32)
    assert train.images.shape[1:] == (1, 32, 32)
    assert (len(train), len(test)) == (6, 2)  # 2 extended subjects x 4 lights, a quarter in test
    assert train.class_names == ("yaleB11", "yaleB12") and train.num_classes == 2
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == {0, 1}
    assert train.factor_sizes == (1, 4, 4)
    again = load("yaleb", "test", root=tmp_path, size=32)
    assert torch.equal(again.images, test.images)
    everyone = load("yaleb", "train", root=tmp_path, size=32, subjects="all")
    assert everyone.num_classes == 3


def test_yaleb_crops_square_and_errors(tmp_path):
    with pytest.raises(DatasetNotFound, match="CroppedYale.*DISLIB_DATA"):
        load("yaleb", "train", root=tmp_path)
    folder = tmp_path / yaleb.FOLDER / "yaleB20"
    folder.mkdir(parents=True)
    face = np.zeros((192, 168), np.uint8)
    face[12:180] = 255  # the centre square is white, the rows outside black
    Image.fromarray(face).save(folder / "yaleB20_P00A+000E+00.pgm")
    Image.fromarray(face).save(folder / "yaleB20_P00A+010E+00.pgm")
    data = load("yaleb", "train", root=tmp_path, size=16, test_fraction=0.4)
    assert torch.allclose(data.images, torch.ones_like(data.images))
    with pytest.raises(ValueError, match="subjects"):
        load("yaleb", "train", root=tmp_path, subjects="some")
