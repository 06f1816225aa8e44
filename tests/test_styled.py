"""styled-mnist (Ruiz et al. 2019, App. C): the drawing by hand, the sets and their factors, the
order, the seed, the cache and bad input, on a fake MNIST of a few digits written as idx files."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from dislib import settings
from dislib.data import DatasetDamaged, DatasetNotFound, load, styled
from dislib.data.cache import cache_folder, digest_path, file_digest, user_cache

N_TRAIN, N_TEST = 12, 8


def write_idx(path: Path, array: np.ndarray) -> None:
    """LeCun's idx format: 0, 0, 8 (uint8), the number of dimensions, each size big-endian, the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sizes = b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(bytes([0, 0, 8, array.ndim]) + sizes + array.astype(np.uint8).tobytes())


def fake_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct 28x28 'digits': hollow rectangles with 3-pixel strokes, labels cycling 0-9."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        top, left = rng.integers(4, 9, 2)
        bottom, right = top + rng.integers(10, 16), left + rng.integers(8, 16)
        images[i, top:bottom, left:right] = 255
        images[i, top + 3 : bottom - 3, left + 3 : right - 3] = 0
        images[i, top, left] = 0  # no two alike
    return images, np.arange(n) % 10


@pytest.fixture
def root(tmp_path: Path) -> Path:
    raw = tmp_path / "data" / "MNIST" / "raw"
    for split, n, seed in (("train", N_TRAIN, 0), ("t10k", N_TEST, 1)):
        images, labels = fake_digits(n, seed)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    styled._styled.cache_clear()
    return tmp_path / "data"


def load_fake(root: Path, split: str = "train", **options):
    options.setdefault("cache_dir", root.parent / "cache")
    return load("styled-mnist", split, root=root, **options)


# the drawing, by hand ------------------------------------------------------------------------
def test_an_edge_map_is_the_boundary_of_the_stroke():
    block = torch.zeros(1, 28, 28, dtype=torch.uint8)
    block[0, 9:19, 9:19] = 255
    # bilinear x2: output row i reads input row i/2 - 1/4, so rows 18..37 interpolate to 0.75 inside the
    # block and the rows next to them to 0.25: a 20 x 20 square whose boundary has 4 * 20 - 4 = 76 pixels
    edges = styled.edge_maps(block, 56)
    assert edges.shape == (1, 1, 56, 56) and edges.sum().item() == 76
    assert edges[0, 0, 18, 18:38].sum() == 20 and edges[0, 0, 19:37, 19:37].sum() == 0


def test_dilate_grows_a_pixel_into_a_k_by_k_square():
    point = torch.zeros(1, 1, 9, 9)
    point[0, 0, 4, 4] = 1.0
    for k in range(1, 6):
        grown = styled.dilate(point, k)
        rows, cols = grown[0, 0].nonzero().unbind(1)
        assert grown.sum() == k * k, k
        # output i takes the maximum of inputs i - (k - 1) // 2 .. i + k // 2,
        # so the pixel at 4 lights outputs 4 - k // 2 .. 4 + (k - 1) // 2
        assert (rows.min(), rows.max(), cols.min()) == (4 - k // 2, 4 + (k - 1) // 2, 4 - k // 2)
    with pytest.raises(ValueError, match="at least 1 pixel"):
        styled.dilate(point, 0)


def test_shrink_pads_back_to_full_size_centred():
    small = styled.shrink(torch.ones(1, 1, 32, 32), 16)
    # 16 x 16 ones (an average of ones is one) with (32 - 16) / 2 = 8 zero rows and columns each side
    assert small.shape == (1, 1, 32, 32) and small.sum() == 256 and small[0, 0, 8:24, 8:24].min() == 1


def test_style_dilates_then_colours_by_hand():
    edge = torch.zeros(1, 1, 32, 32)
    edge[0, 0, 16, 16] = 1.0
    # colour (0.5, 0.25, 0.25) * 255 = (127.5, 63.75, 63.75), rounded (128, 64, 64); width 3/5: a 3x3 kernel
    out = styled.style(edge, np.array([[0.5, 0.25, 0.25, 1.0, 3 / 5]]), 32)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 32, 32)
    assert out[0, :, 15:18, 15:18].flatten(1).unique(dim=1).tolist() == [[128], [64], [64]]
    assert out[0].sum(0).count_nonzero() == 9


def test_the_dilation_range_scales_with_the_size():
    assert (styled.max_kernel(64), styled.max_kernel(32)) == (10, 5)
    rng = np.random.default_rng(0)
    for size, kernel in ((32, 5), (64, 10)):
        widths = styled.draw_styles(rng, 2_000, size)[:, 4] * kernel
        assert set(np.rint(widths).astype(int)) == set(range(1, kernel + 1))


# the sets and their factors ------------------------------------------------------------------
def test_train_split_holds_both_sets_with_their_factors(root):
    data = load_fake(root)
    assert data.images.shape == (N_TRAIN // 2 + 2 * N_TRAIN // 2, 3, 32, 32) and data.images.dtype == torch.float32
    assert data.num_classes == 2 and data.class_names == ("unlabelled", "reference")
    assert data.factor_names == ("R", "G", "B", "scale", "width") and data.real_factors
    assert data.labels.bincount().tolist() == [N_TRAIN, N_TRAIN // 2]  # two copies of each unlabelled digit
    reference, unlabelled = data.labels == 1, data.labels == 0
    by_digit = load_fake(root, label="digit")
    assert by_digit.num_classes == 10 and torch.equal(by_digit.factors, data.factors)
    digits = by_digit.labels

    # reference images: the edge map itself, white, and the constant factors (1, 1, 1, 1, 1/5)
    source, source_labels = fake_digits(N_TRAIN, 0)
    edges = styled.edge_maps(torch.from_numpy(source), 32)
    for image, digit in zip(data.images[reference], digits[reference]):
        same = [i for i in range(N_TRAIN) if torch.equal(image, edges[i].expand(3, -1, -1))]
        assert len(same) == 1 and source_labels[same[0]] == digit
    expected = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.2])
    assert torch.equal(data.factors[reference, :5], expected.expand(int(reference.sum()), -1))

    # unlabelled images: a colour summing to one, read back from the pixels; a scale in [0.5, 1] on the
    # 1/32 grid, nothing lit outside the centred square of that side; a width k / 5
    factors, images = data.factors[unlabelled], data.images[unlabelled]
    torch.testing.assert_close(factors[:, :3].sum(1), torch.ones(len(factors)))
    shares = images.sum((2, 3)) / images.sum((1, 2, 3))[:, None]
    torch.testing.assert_close(shares, factors[:, :3], atol=0.01, rtol=0)
    scale, width = factors[:, 3], factors[:, 4]
    assert 0.5 <= scale.min() and scale.max() <= 1 and torch.equal(scale * 32, (scale * 32).round())
    for image, s in zip(images, scale):
        low, high = (32 - int(s * 32)) // 2, (32 - int(s * 32)) // 2 + int(s * 32)
        assert image[:, :low].sum() == 0 and image[:, high:].sum() == 0 and image[:, :, :low].sum() == 0
    kernels = width * 5
    assert set(kernels.round().tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0} and torch.equal(kernels, kernels.round())
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0


def test_every_prefix_holds_both_sets(root):
    for copies in (1, 2, 3):
        labels = load_fake(root, copies=copies).labels
        assert len(labels) == N_TRAIN // 2 * (1 + copies)
        for n in range(1 + copies, len(labels) + 1):
            assert set(labels[:n].tolist()) == {0, 1}, (copies, n)


def test_test_split_is_all_transformed_and_the_regression_sets_split_it(root):
    test = load_fake(root, "test")
    assert len(test) == N_TEST and test.labels.tolist() == [0] * N_TEST
    digits = load_fake(root, "test", label="digit").labels
    assert sorted(digits.tolist()) == sorted(fake_digits(N_TEST, 1)[1].tolist())  # each test digit once
    fit, held = styled.regression_sets(test)
    assert (len(fit), len(held)) == (N_TEST // 2, N_TEST // 2) and fit.factor_names == styled.STYLE_FACTORS
    assert torch.equal(torch.cat([fit.factors, held.factors]), test.factors)
    with pytest.raises(ValueError, match="label must be one of"):
        load_fake(root, "test", label="identity")
    with pytest.raises(ValueError, match="expected a styled-mnist dataset"):
        styled.regression_sets(load("three-moons", "test", n=20))


def test_the_seed_decides_everything(root, tmp_path):
    first = load_fake(root, cache_dir=tmp_path / "one")
    styled._styled.cache_clear()
    again = load_fake(root, cache_dir=tmp_path / "two")
    other = load_fake(root, cache_dir=tmp_path / "two", seed=1)
    assert torch.equal(first.images, again.images) and torch.equal(first.factors, again.factors)
    assert not torch.equal(first.factors, other.factors)
    assert len(list((tmp_path / "two").glob("*.npy"))) == 4  # two entries, images and factors each


# the cache -----------------------------------------------------------------------------------
def test_the_cache_is_read_back_and_a_damaged_entry_is_generated_again(root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_fake(root, "test", cache_dir=cache)
    (images_file,) = cache.glob("*-images.npy")
    (factors_file,) = cache.glob("*-factors.npy")
    generated = []
    compose = styled._compose
    monkeypatch.setattr(styled, "_compose", lambda *args: generated.append(1) or compose(*args))

    def reload():
        styled._styled.cache_clear()
        return load_fake(root, "test", cache_dir=cache)

    assert torch.equal(reload().images, first.images) and not generated  # read back, not generated
    good_factors = np.load(factors_file)
    halved_colours = np.float32([1, 0.5, 0.5, 0.5, 1, 1, 1])  # columns: set, R, G, B, scale, width, digit
    def rewrite_factors(table: np.ndarray) -> None:  # a file written whole, with its digest, but wrong
        np.save(factors_file, table)
        digest_path(factors_file).write_text(file_digest(factors_file))

    def flip_a_byte() -> None:  # damaged in place: same size, same header
        data = bytearray(images_file.read_bytes())
        data[-1] ^= 0xFF
        images_file.write_bytes(bytes(data))

    damages = {
        "images.npy": lambda: images_file.write_bytes(images_file.read_bytes()[:-100]),
        "images.npy: its bytes differ from the SHA-256": flip_a_byte,
        "factors.npy: no .*factors.sha256 beside it": lambda: digest_path(factors_file).unlink(),
        "factors.npy: .*has shape": lambda: rewrite_factors(good_factors[:-1]),  # one row short
        "colours that do not sum to 1": lambda: rewrite_factors(good_factors * halved_colours),
    }
    for why, damage in damages.items():
        damage()
        with pytest.warns(UserWarning, match=f"cached styled-mnist .* is damaged .*{why}.*again"):
            assert torch.equal(reload().factors, first.factors)
        assert np.array_equal(np.load(factors_file), good_factors)  # replaced by a whole copy
    assert len(generated) == len(damages)


def test_a_factor_file_that_does_not_match_its_images_is_named():
    # columns: set, R, G, B, scale, width, digit; a reference row, then an unlabelled row at 32 pixels
    table = np.array([[1, 1, 1, 1, 1, 0.2, 3], [0, 0.5, 0.25, 0.25, 0.75, 0.4, 7]], dtype=np.float32)
    styled.check_factors(table, 2, 32)

    def changed(row: int, column: int, value: float) -> np.ndarray:
        out = table.copy()
        out[row, column] = value
        return out

    bad = {
        r"has shape \(2, 7\) for 3 images": (table, 3),
        "set labels outside": (changed(1, 0, 2), 2),
        "reference images with factors other than": (changed(0, 4, 0.5), 2),  # a shrunk reference image
        "colours that do not sum to 1": (changed(1, 1, 0.75), 2),
        r"scales outside \[0.5, 1\] or off the 1/32 grid": (changed(1, 4, 0.76), 2),
        "widths other than k/5": (changed(1, 5, 0.5), 2),
        "digits outside 0-9": (changed(1, 6, 10), 2),
        "float32": (table.astype(np.float64), 2),
    }
    for message, (factors, n) in bad.items():
        with pytest.raises(ValueError, match=message):
            styled.check_factors(factors, n, 32)


def test_an_unwritable_cache_folder_warns_and_is_not_used(tmp_path, monkeypatch):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    with pytest.warns(UserWarning, match="cannot write the styled-mnist images cache .*cache_dir="):
        assert cache_folder(tmp_path, read_only / "cache", styled.CACHE_FOLDER, "styled-mnist images") is None
    monkeypatch.delenv("DISLIB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(read_only))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache_folder(tmp_path, None, styled.CACHE_FOLDER, "styled-mnist images") is None  # silently


def test_the_default_cache_is_the_users_never_the_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DISLIB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "data"
    root.mkdir()
    folder = cache_folder(root, None, styled.CACHE_FOLDER, "styled-mnist images")
    assert folder == user_cache() / styled.CACHE_FOLDER and root not in folder.parents
    if sys.platform.startswith("linux"):
        assert folder == tmp_path / "xdg" / "dislib" / styled.CACHE_FOLDER


# bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, message",
    [
        (dict(size=48), "size 32 .* or 64"),
        (dict(copies=0), "copies must be a whole number >= 1"),
        (dict(seed=-1), "seed must be a whole number >= 0"),
        (dict(colour="red"), "takes no option colour"),
    ],
)
def test_bad_options_are_named(root, options, message):
    with pytest.raises(ValueError, match=message):
        load_fake(root, **options)


def test_damaged_or_missing_mnist_files(root, tmp_path, monkeypatch):
    labels = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-2])
    with pytest.raises(DatasetDamaged, match="train-labels-idx1-ubyte is truncated"):
        load_fake(root)
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(DatasetDamaged, match="bad header"):
        load_fake(root, "test")
    monkeypatch.setenv("DISLIB_DOWNLOAD", "0")
    with pytest.raises(DatasetNotFound, match="train-images-idx3-ubyte"):
        load_fake(tmp_path / "empty")


def test_the_real_test_split_when_mnist_is_there(tmp_path):
    raw = settings.data_root() / "MNIST" / "raw"
    if not (raw / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST is not under {raw} (set DISLIB_DATA)")
    test = load("styled-mnist", "test", cache_dir=tmp_path)
    assert test.images.shape == (10_000, 3, 32, 32)
    digits = load("styled-mnist", "test", cache_dir=tmp_path, label="digit").labels
    assert digits.bincount().tolist()[:2] == [980, 1135]  # every MNIST test digit, once
