"""DOUBLE-MNIST: 64x64 images with one MNIST digit in each 32-pixel half.

Layout of the original (github.com/shaohua0116/MultiDigitMNIST, used in Sabour et al.,
"Dynamic routing between capsules", NeurIPS 2017): digit ``i`` pasted into horizontal
half ``i`` with a random x offset 0-3 and y offset 0-35, zero background. We keep only
pairs of *distinct* digits (a top-2 classifier needs two labels) and split by digit, not
by class. Sample ``i`` of a split depends only on (seed, split, i), so an image index
means the same picture whatever the count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringcert.data.mnist import DigitPool, Split, load_digits
from ringcert.errors import RingcertError

SIZE = 64
HALF = 32
MAX_X_OFFSET = 3
MAX_Y_OFFSET = 35
DEFAULT_SEED = 0
DEFAULT_TEST_COUNT = 2000
TEST_SPLIT_SIZE = 10000  # valid image indices of the test split: 0 .. TEST_SPLIT_SIZE-1
_SPLIT_CODE = {Split.TRAIN: 1, Split.TEST: 2}


@dataclass(frozen=True, eq=False)
class DoubleMnist:
    """A batch of samples.

    ``images`` (N, 64, 64) uint8; ``labels`` (N, 2) int64 (left digit, right digit);
    ``masks`` (N, 2, 64, 64) bool (left object, right object: the digit's non-zero pixels).
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self) -> np.ndarray:
        """Images as float32 in [0, 1], shape (N, 1, 64, 64)."""
        return (self.images.astype(np.float32) / 255.0)[:, None]


def _compose(pool: DigitPool, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    left = int(rng.integers(10))
    right = int((left + 1 + rng.integers(9)) % 10)  # uniform over the 9 other digits
    canvas = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for half, digit in enumerate((left, right)):
        candidates = pool.indices_of(digit)
        if len(candidates) == 0:
            raise RingcertError(f"digit source {pool.source} has no digit {digit}")
        picture = pool.images[candidates[rng.integers(len(candidates))]]
        x = half * HALF + int(rng.integers(MAX_X_OFFSET + 1))
        y = int(rng.integers(MAX_Y_OFFSET + 1))
        canvas[y : y + 28, x : x + 28] = picture
    return canvas, (left, right)


def generate(pool: DigitPool, *, split: Split, start: int, count: int, seed: int) -> DoubleMnist:
    """Samples ``start .. start+count-1`` of ``split`` drawn from ``pool``."""
    if count < 0 or start < 0:
        raise RingcertError("start and count must be non-negative")
    images = np.zeros((count, SIZE, SIZE), dtype=np.uint8)
    labels = np.zeros((count, 2), dtype=np.int64)
    for offset in range(count):
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], start + offset])
        images[offset], labels[offset] = _compose(pool, rng)
    return DoubleMnist(images=images, labels=labels, masks=object_masks(images))


def object_masks(images: np.ndarray) -> np.ndarray:
    """(N, 2, 64, 64) masks: the non-zero pixels of each half."""
    masks = np.zeros((len(images), 2, SIZE, SIZE), dtype=bool)
    masks[:, 0, :, :HALF] = images[:, :, :HALF] > 0
    masks[:, 1, :, HALF:] = images[:, :, HALF:] > 0
    return masks


def dataset(
    split: Split = Split.TEST,
    *,
    count: int = DEFAULT_TEST_COUNT,
    start: int = 0,
    seed: int = DEFAULT_SEED,
    mnist_dir: str | None = None,
) -> DoubleMnist:
    """The standard DOUBLE-MNIST samples every command uses (test split by default)."""
    return generate(load_digits(split, mnist_dir=mnist_dir), split=split, start=start,
                    count=count, seed=seed)


def save_npz(data: DoubleMnist, path: str) -> None:
    np.savez_compressed(path, images=data.images, labels=data.labels, masks=data.masks)
