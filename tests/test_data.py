"""Datasets: procedural sprites, three moons, pair/triplet samplers, MNIST and the load() errors."""

import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dislib import settings
from dislib.data import DatasetNotFound, ImageDataset, PointDataset, load, names, sprites
from dislib.data.samplers import ClassIndex, different_class_partners, same_class_partners, triplets

# --- sprites -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sprite_splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    start = time.perf_counter()
    train, test = load("sprites", "train", root=root), load("sprites", "test", root=root)
    return train, test, time.perf_counter() - start, root


def test_sprites_generate_the_whole_set_fast_and_write_nothing(sprite_splits):
    train, test, seconds, root = sprite_splits
    assert seconds < 30
    assert len(train) + len(test) == sprites.NUM_IDENTITIES * sprites.POSES
    assert list(root.iterdir()) == []


def test_sprites_shapes_and_range(sprite_splits):
    train, test, _, _ = sprite_splits
    for data in (train, test):
        assert data.images.dtype == torch.float32 and data.images.shape[1:] == (3, 32, 32)
        assert data.labels.dtype == torch.int64
        assert 0 <= data.images.min() and data.images.max() <= 1
        assert data.factors.shape == (len(data), len(sprites.FACTOR_NAMES))
    assert len(test) == 100 * sprites.POSES


def test_sprites_identities_poses_and_factors(sprite_splits):
    train, test, _, _ = sprite_splits
    assert train.num_classes == sprites.NUM_IDENTITIES >= 672
    assert len(train.class_names) == train.num_classes
    assert set(train.labels.tolist()).isdisjoint(test.labels.tolist())
    assert len(set(train.labels.tolist()) | set(test.labels.tolist())) == sprites.NUM_IDENTITIES
    for data in (train, test):
        sizes = torch.tensor(data.factor_sizes)
        assert ((data.factors >= 0) & (data.factors < sizes)).all()
        identity = np.ravel_multi_index(data.factors[:, :5].T.numpy(), data.factor_sizes[:5])
        assert (torch.from_numpy(identity) == data.labels).all()
        pose = data.factors[:, 5] * sprites.FRAMES + data.factors[:, 6]
        for label in data.labels.unique()[:20]:
            assert len(pose[data.labels == label].unique()) == sprites.POSES >= 20
    # every value of every attribute is seen in training, so test identities are new combinations
    for column, size in enumerate(train.factor_sizes):
        assert len(train.factors[:, column].unique()) == size


def test_sprites_are_characters_not_noise(sprite_splits):
    train, _, _, _ = sprite_splits
    background = (train.images == 1).all(1).float().mean((1, 2))
    assert (background > 0.5).all() and (background < 0.9).all()
    one_identity = train.images[: sprites.POSES]
    assert len(one_identity.flatten(1).unique(dim=0)) == sprites.POSES  # every pose looks different
    assert (one_identity[:, :, 0, 0] == 1).all()  # corners are background


def test_sprites_are_deterministic_and_the_seed_picks_the_split(sprite_splits):
    _, test, _, _ = sprite_splits
    again = load("sprites", "test")
    assert torch.equal(again.images, test.images) and torch.equal(again.factors, test.factors)
    other = load("sprites", "test", seed=1, test_identities=10)
    assert len(other) == 10 * sprites.POSES
    assert not set(other.labels.tolist()) <= set(test.labels.tolist())


def test_sprites_at_64_pixels_average_down_to_32():
    factors = torch.tensor([[0, 1, 2, 1, 1, 2, 3, 0, 2], [2, 5, 0, 0, 3, 3, 0, 1, 1]])
    big, small = sprites.render(factors, 64), sprites.render(factors, 32)
    assert big.shape == (2, 3, 64, 64)
    assert torch.allclose(F.avg_pool2d(big, 2), small)
    assert load("sprites", "test", size=64, test_identities=1).image_shape == (3, 64, 64)


@pytest.mark.parametrize(
    ("options", "message"), [({"size": 48}, "size must be one of"), ({"test_identities": 0}, "test_identities")]
)
def test_sprites_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        load("sprites", "train", **options)


def test_sprites_identity_name():
    assert sprites.identity_name(0) == "light skin, bald, red top, navy trousers, empty-handed"


# --- three moons ---------------------------------------------------------------------------


def test_three_moons_shape_labels_and_determinism():
    train = load("three-moons", "train", n=301)
    assert isinstance(train, PointDataset)
    assert train.points.shape == (301, 2) and train.points.dtype == torch.float32
    assert train.labels.bincount().tolist() == [101, 100, 100] and train.num_classes == 3
    assert torch.equal(load("three-moons", "train", n=301).points, train.points)
    assert not torch.equal(load("three-moons", "test", n=301).points, train.points)
    assert not torch.equal(load("three-moons", "train", n=301, seed=1).points, train.points)
    point, label = train[0]
    assert point.shape == (2,) and 0 <= int(label) < 3 and train.point_dim == 2
    assert len(train.subset(slice(0, 10))) == 10


def test_three_moons_lie_on_upper_half_circles_spaced_by_2_2():
    exact = load("three-moons", "train", n=600, noise=0.0)
    centres = 2.2 * (exact.labels.float() - 1)
    radius = torch.hypot(exact.points[:, 0] - centres, exact.points[:, 1])
    assert torch.allclose(radius, torch.ones(600), atol=1e-5)
    assert (exact.points[:, 1] >= 0).all()
    noisy = load("three-moons", "train", n=600, noise=0.1)
    assert math.isclose(float((noisy.points - exact.points).std()), 0.1, rel_tol=0.15)


@pytest.mark.parametrize(("options", "message"), [({"n": 0}, "n >= 1"), ({"noise": -1.0}, "noise")])
def test_three_moons_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        load("three-moons", **options)


def test_point_dataset_validation():
    with pytest.raises(ValueError, match="empty"):
        PointDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 3, "toy")
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        PointDataset(torch.zeros(4), torch.zeros(4, dtype=torch.long), 3, "toy")
    with pytest.raises(ValueError, match=r"lie in \[0, 3\)"):
        PointDataset(torch.zeros(4, 2), torch.tensor([0, 1, 2, 3]), 3, "toy")


# --- samplers ------------------------------------------------------------------------------

LABELS = torch.tensor([3, 1, 3, 7, 1, 3, 7, 7, 1, 3])


def test_same_class_partners_share_the_label_and_are_never_the_index_itself():
    index = ClassIndex(LABELS)
    indices = torch.arange(len(LABELS)).repeat(50)
    partners = index.same_class_partners(indices, torch.Generator().manual_seed(0))
    assert (LABELS[partners] == LABELS[indices]).all()
    assert (partners != indices).all()
    # every other member of the class gets drawn
    assert set(partners[indices == 0].tolist()) == {2, 5, 9}


def test_different_class_partners_have_another_label_and_cover_all_others():
    indices = torch.zeros(200, dtype=torch.long)
    partners = different_class_partners(LABELS, indices, torch.Generator().manual_seed(0))
    assert (LABELS[partners] != 3).all()
    assert set(partners.tolist()) == {1, 3, 4, 6, 7, 8}


def test_triplets_are_reproducible_and_accept_labels_or_an_index():
    indices = torch.tensor([0, 1, 3, 4])
    first = triplets(LABELS, indices, torch.Generator().manual_seed(5))
    second = triplets(ClassIndex(LABELS), indices, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    anchor, same, other = first
    assert torch.equal(anchor, indices)
    assert (LABELS[same] == LABELS[anchor]).all() and (LABELS[other] != LABELS[anchor]).all()


def test_same_class_partner_of_a_pair_is_the_other_member():
    labels = torch.tensor([0, 0, 1, 1, 1])
    partners = same_class_partners(labels, torch.tensor([0, 1, 0, 1]), torch.Generator().manual_seed(0))
    assert partners.tolist() == [1, 0, 1, 0]


def test_a_class_with_one_image_has_no_same_class_partner():
    labels = torch.tensor([0, 0, 5, 1, 1])
    index = ClassIndex(labels)
    assert index.has_partner().tolist() == [True, True, False, True, True]
    with pytest.raises(ValueError, match="index 2 has label 5, a class with a single image.*has_partner"):
        index.triplets(torch.tensor([0, 2]), torch.Generator())
    partners = index.same_class_partners(torch.tensor([0, 3]), torch.Generator())  # other classes are fine
    assert partners.tolist() == [1, 4]


def test_a_single_class_has_no_different_class_partner():
    with pytest.raises(ValueError, match="at least two classes"):
        different_class_partners(torch.zeros(4, dtype=torch.long), torch.tensor([0]), torch.Generator())
    with pytest.raises(IndexError, match=r"lie in \[0, 4\)"):
        same_class_partners(torch.zeros(4, dtype=torch.long), torch.tensor([4]), torch.Generator())


# --- MNIST and the errors of load() ---------------------------------------------------------


def test_mnist_from_the_data_root():
    raw = settings.data_root() / "MNIST" / "raw"
    if not (raw / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST is not under {raw} (set DISLIB_DATA)")
    test = load("mnist", "test")
    assert test.images.shape == (10_000, 1, 28, 28) and test.num_classes == 10
    assert 0 <= test.images.min() and test.images.max() <= 1
    assert test.labels.bincount().tolist()[:2] == [980, 1135]


def test_unknown_dataset_and_split():
    assert {"mnist", "sprites", "three-moons"} <= set(names())
    with pytest.raises(KeyError, match="unknown dataset 'cifar'.*sprites"):
        load("cifar")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load("sprites", "valid")


def test_missing_files_offline_name_the_files_the_folder_and_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("DISLIB_DOWNLOAD", "0")
    with pytest.raises(DatasetNotFound) as error:
        load("fashion-mnist", "train", root=tmp_path)
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "DISLIB_DATA" in message
    assert list(tmp_path.iterdir()) == []


def test_image_dataset_validation():
    images, labels = torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        ImageDataset(images[:0], labels[:0], 3, "toy")
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        ImageDataset(images, labels, 2, "toy")
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ImageDataset(images[:, 0], labels, 3, "toy")


def test_check_pixels_names_nan_values():
    from dislib.data.base import check_pixels

    images = torch.rand(2, 1, 4, 4)
    images[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="got NaN values"):
        check_pixels("decoded images", images)


def test_a_torch_write_that_fails_on_a_full_disk_is_reported_as_no_space(tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    from dislib.data import cache

    def torch_save_on_a_full_disk(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 861440 vs 861332")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(3 << 20, 3 << 20, 0))
    with pytest.raises(OSError) as raised:
        cache.write_atomically(tmp_path / "checkpoint.pt", torch_save_on_a_full_disk)
    assert raised.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(3 << 30, 1 << 30, 2 << 30))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # room left: another failure, reported as it is
        cache.write_atomically(tmp_path / "checkpoint.pt", torch_save_on_a_full_disk)
