import gzip

import numpy as np
import pytest

from ringcert.data.double_mnist import (
    HALF,
    MAX_X_OFFSET,
    MAX_Y_OFFSET,
    dataset,
    generate,
)
from ringcert.data.mnist import Split, builtin_digits, idx_digits
from ringcert.errors import RingcertError


@pytest.fixture(scope="module")
def test_pool():
    return builtin_digits(Split.TEST)


def test_digit_split_is_disjoint_and_complete():
    train, test = builtin_digits(Split.TRAIN), builtin_digits(Split.TEST)
    assert len(train.labels) == 4000 and len(test.labels) == 1000
    train_keys = {d.tobytes() for d in train.images}
    assert not any(d.tobytes() in train_keys for d in test.images)
    assert set(np.unique(test.labels)) == set(range(10))


def test_generator_is_deterministic_and_index_stable(test_pool):
    a = generate(test_pool, split=Split.TEST, start=0, count=20, seed=3)
    b = generate(test_pool, split=Split.TEST, start=0, count=20, seed=3)
    c = generate(test_pool, split=Split.TEST, start=10, count=5, seed=3)
    d = generate(test_pool, split=Split.TEST, start=0, count=20, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.images[10:15], c.images)  # index i is the same picture
    assert not np.array_equal(a.images, d.images)


def test_layout_labels_and_masks(test_pool):
    data = generate(test_pool, split=Split.TEST, start=0, count=200, seed=0)
    assert data.images.shape == (200, 64, 64) and data.images.dtype == np.uint8
    assert data.labels.shape == (200, 2) and data.masks.shape == (200, 2, 64, 64)
    assert (data.labels[:, 0] != data.labels[:, 1]).all()
    for image, masks in zip(data.images, data.masks, strict=True):
        left, right = masks
        assert np.array_equal(left | right, image > 0)
        assert not left[:, HALF:].any() and not right[:, :HALF].any()
        for half, mask in enumerate((left, right)):
            rows, cols = np.nonzero(mask)
            assert rows.min() >= 0 and rows.max() <= MAX_Y_OFFSET + 27
            assert cols.min() >= half * HALF and cols.max() <= half * HALF + MAX_X_OFFSET + 27


def test_pasted_digits_are_test_digits(test_pool):
    data = generate(test_pool, split=Split.TEST, start=0, count=30, seed=0)
    keys = {d.tobytes() for d in test_pool.images}
    for image in data.images:
        ys, xs = np.nonzero(image[:, :HALF])
        # the 28x28 window that holds the left digit is one of the pool's digits
        found = any(image[y : y + 28, x : x + 28].tobytes() in keys
                    for y in range(max(0, ys.max() - 27), ys.min() + 1)
                    for x in range(max(0, xs.max() - 27), min(xs.min(), MAX_X_OFFSET) + 1))
        assert found


def test_float_images_in_unit_range():
    data = dataset(count=5)
    images = data.float_images()
    assert images.shape == (5, 1, 64, 64) and images.min() >= 0 and images.max() <= 1


def _write_idx(path, array, gz):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_source(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 28, 28))
    labels = np.arange(50) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, gz)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, gz)
    pool = idx_digits(tmp_path, Split.TEST)
    assert np.array_equal(pool.images, images) and np.array_equal(pool.labels, labels)
    data = dataset(Split.TEST, count=4, mnist_dir=str(tmp_path))
    assert data.images.shape == (4, 64, 64)
    with pytest.raises(RingcertError, match="train-images"):
        idx_digits(tmp_path, Split.TRAIN)


def test_truncated_idx_is_an_error(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big")
                                                      + (28).to_bytes(4, "big") * 2 + b"x")
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5), False)
    with pytest.raises(RingcertError, match="truncated"):
        idx_digits(tmp_path, Split.TEST)


def _two_digit_reference(pool, *, split, start, count, seed):
    """The two-digit generator as it was before N objects (the bit-for-bit reference)."""
    from ringcert.data.double_mnist import _SPLIT_CODE

    images = np.zeros((count, 64, 64), dtype=np.uint8)
    labels = np.zeros((count, 2), dtype=np.int64)
    for offset in range(count):
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], start + offset])
        left = int(rng.integers(10))
        right = int((left + 1 + rng.integers(9)) % 10)
        for half, digit in enumerate((left, right)):
            candidates = pool.indices_of(digit)
            picture = pool.images[candidates[rng.integers(len(candidates))]]
            x = half * HALF + int(rng.integers(MAX_X_OFFSET + 1))
            y = int(rng.integers(MAX_Y_OFFSET + 1))
            images[offset, y : y + 28, x : x + 28] = picture
        labels[offset] = (left, right)
    return images, labels


@pytest.mark.parametrize("seed", [0, 5])
def test_two_objects_are_double_mnist_bit_for_bit(test_pool, seed):
    data = generate(test_pool, split=Split.TEST, start=3, count=60, seed=seed, objects=2)
    images, labels = _two_digit_reference(test_pool, split=Split.TEST, start=3, count=60, seed=seed)
    assert np.array_equal(data.images, images) and np.array_equal(data.labels, labels)


@pytest.mark.parametrize("objects", [3, 4, 10])
def test_n_objects_layout_labels_and_masks(test_pool, objects):
    data = generate(test_pool, split=Split.TEST, start=0, count=80, seed=1, objects=objects)
    width = objects * HALF
    assert data.images.shape == (80, 64, width) and data.labels.shape == (80, objects)
    assert data.masks.shape == (80, objects, 64, width)
    assert all(len(set(row)) == objects for row in data.labels.tolist())  # all distinct
    for image, masks in zip(data.images, data.masks, strict=True):
        assert np.array_equal(masks.any(axis=0), image > 0)
        for cell, mask in enumerate(masks):
            rows, cols = np.nonzero(mask)
            assert len(rows) > 0
            assert rows.max() <= MAX_Y_OFFSET + 27
            assert cols.min() >= cell * HALF and cols.max() <= cell * HALF + MAX_X_OFFSET + 27
    # every digit value appears in every position over the sample (uniform draws)
    if objects < 10:
        assert all(len(set(data.labels[:, cell])) == 10 for cell in range(objects))


@pytest.mark.parametrize("objects", [1, 11, 0])
def test_object_count_out_of_range_is_an_error(test_pool, objects):
    with pytest.raises(RingcertError, match=r"objects must be an integer in 2\.\.10"):
        generate(test_pool, split=Split.TEST, start=0, count=1, seed=0, objects=objects)
