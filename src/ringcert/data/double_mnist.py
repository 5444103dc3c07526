"""DOUBLE-MNIST: 64x64 images with one MNIST digit in each 32-pixel half, and its
N-object extension: ``objects`` 32-pixel cells side by side (64 x 32N), one digit per cell,
all digits distinct, the same offset rules (issue 15: more than two objects).

Layout of the original (github.com/shaohua0116/MultiDigitMNIST, used in Sabour et al.,
"Dynamic routing between capsules", NeurIPS 2017): digit ``i`` pasted into horizontal
half ``i`` with a random x offset 0-3 and y offset 0-35, zero background. We keep only
pairs of *distinct* digits (a top-2 classifier needs two labels) and split by digit, not
by class. Sample ``i`` of a split depends only on (seed, split, i), so an image index
means the same picture whatever the count. With ``objects = 2`` the generator draws exactly
what it always did (the first digit, then each further one uniformly among the digits not yet
used, listed cyclically after the first), so N = 2 is DOUBLE-MNIST bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringcert.data.mnist import DigitPool, Split, load_digits
from ringcert.errors import RingcertError

SIZE = 64
HALF = 32  # the width of one object's cell
MAX_OBJECTS = 10  # distinct digits
MAX_X_OFFSET = 3
MAX_Y_OFFSET = 35
DEFAULT_SEED = 0
DEFAULT_TEST_COUNT = 2000
TEST_SPLIT_SIZE = 10000  # valid image indices of the test split: 0 .. TEST_SPLIT_SIZE-1
_SPLIT_CODE = {Split.TRAIN: 1, Split.TEST: 2}


@dataclass(frozen=True, eq=False)
class DoubleMnist:
    """A batch of samples.

    ``images`` (N, 64, 32 objects) uint8; ``labels`` (N, objects) int64 (left to right;
    for two objects: left digit, right digit); ``masks`` (N, objects, 64, 32 objects) bool
    (each object's non-zero pixels).
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self) -> np.ndarray:
        """Images as float32 in [0, 1], shape (N, 1, 64, 32 objects)."""
        return (self.images.astype(np.float32) / 255.0)[:, None]


def _digits(rng: np.random.Generator, objects: int) -> list[int]:
    """``objects`` distinct digits: the first uniform, each next one uniform among the unused
    digits listed cyclically after the first (for two: ``(first + 1 + r) % 10``)."""
    first = int(rng.integers(10))
    unused = [(first + 1 + r) % 10 for r in range(9)]
    return [first] + [unused.pop(int(rng.integers(len(unused)))) for _ in range(objects - 1)]


def _compose(pool: DigitPool, rng: np.random.Generator, objects: int
             ) -> tuple[np.ndarray, list[int]]:
    digits = _digits(rng, objects)
    canvas = np.zeros((SIZE, objects * HALF), dtype=np.uint8)
    for cell, digit in enumerate(digits):
        candidates = pool.indices_of(digit)
        if len(candidates) == 0:
            raise RingcertError(f"digit source {pool.source} has no digit {digit}")
        picture = pool.images[candidates[rng.integers(len(candidates))]]
        x = cell * HALF + int(rng.integers(MAX_X_OFFSET + 1))
        y = int(rng.integers(MAX_Y_OFFSET + 1))
        canvas[y : y + 28, x : x + 28] = picture
    return canvas, digits


def check_objects(objects: int) -> int:
    """``objects`` if 2..10 (distinct digits), else a ``RingcertError``."""
    if not (isinstance(objects, int) and 2 <= objects <= MAX_OBJECTS):
        raise RingcertError(f"objects must be an integer in 2..{MAX_OBJECTS}, got {objects}")
    return objects


def generate(pool: DigitPool, *, split: Split, start: int, count: int, seed: int,
             objects: int = 2) -> DoubleMnist:
    """Samples ``start .. start+count-1`` of ``split`` drawn from ``pool``, ``objects``
    digits each."""
    check_objects(objects)
    if count < 0 or start < 0:
        raise RingcertError("start and count must be non-negative")
    images = np.zeros((count, SIZE, objects * HALF), dtype=np.uint8)
    labels = np.zeros((count, objects), dtype=np.int64)
    for offset in range(count):
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], start + offset])
        images[offset], labels[offset] = _compose(pool, rng, objects)
    return DoubleMnist(images=images, labels=labels, masks=object_masks(images))


def object_masks(images: np.ndarray) -> np.ndarray:
    """(N, objects, H, W) masks: the non-zero pixels of each 32-pixel cell (objects = W / 32;
    for DOUBLE-MNIST the two halves)."""
    objects = images.shape[-1] // HALF
    masks = np.zeros((len(images), objects, *images.shape[1:]), dtype=bool)
    for cell in range(objects):
        columns = slice(cell * HALF, (cell + 1) * HALF)
        masks[:, cell, :, columns] = images[:, :, columns] > 0
    return masks


def dataset(
    split: Split = Split.TEST,
    *,
    count: int = DEFAULT_TEST_COUNT,
    start: int = 0,
    seed: int = DEFAULT_SEED,
    mnist_dir: str | None = None,
    objects: int = 2,
) -> DoubleMnist:
    """The standard DOUBLE-MNIST samples every command uses (test split by default); with
    ``objects`` > 2 the N-object images."""
    check_objects(objects)
    return generate(load_digits(split, mnist_dir=mnist_dir), split=split, start=start,
                    count=count, seed=seed, objects=objects)


def save_npz(data: DoubleMnist, path: str) -> None:
    np.savez_compressed(path, images=data.images, labels=data.labels, masks=data.masks)
