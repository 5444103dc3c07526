"""Images with object masks and labels: DOUBLE-MNIST's test split, or a user's own .npz file.

A user's file (``--data FILE.npz``) holds

- ``images``: (N, H, W) or (N, C, H, W), uint8 (0-255) or floats in [0, 1];
- ``masks``: (N, objects, H, W), bool or 0/1, one mask per object (at least two objects);
- ``labels``: (N, objects) integers, the class of each object.

``ringcert data`` writes exactly this format (with its 64x64 DOUBLE-MNIST images). Labels
are required: the target of a query is an object's class, and it cannot be inferred from
the picture. Every check below fails with one line naming the key and the problem, before
any analysis starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zipfile import BadZipFile

import numpy as np

from ringcert.data.double_mnist import DoubleMnist
from ringcert.errors import RingcertError

REQUIRED = ("images", "masks", "labels")


@dataclass(frozen=True, eq=False)
class ImageSet:
    """``images`` (N, C, H, W) float32 in [0, 1]; ``masks`` (N, objects, H, W) bool;
    ``labels`` (N, objects) int64."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(size) for size in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_objects(self) -> int:
        return int(self.masks.shape[1])

    @classmethod
    def from_double_mnist(cls, data: DoubleMnist) -> ImageSet:
        return cls(images=data.float_images(), masks=data.masks, labels=data.labels)

    def check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise RingcertError(f"image index {index} is out of range 0..{len(self) - 1}")


def _images(raw: np.ndarray, name: str) -> np.ndarray:
    if raw.ndim == 3:
        raw = raw[:, None]
    if raw.ndim != 4 or 0 in raw.shape:
        raise RingcertError(f"{name}: images must have shape (N, H, W) or (N, C, H, W), got {raw.shape}")
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0
    if not np.issubdtype(raw.dtype, np.floating) and not np.issubdtype(raw.dtype, np.integer):
        raise RingcertError(f"{name}: images must be uint8 or floats in [0, 1], got {raw.dtype}")
    images = raw.astype(np.float32)
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise RingcertError(f"{name}: float images must lie in [0, 1] (uint8 for 0-255)")
    return images


def _masks(raw: np.ndarray, images: np.ndarray, name: str) -> np.ndarray:
    n, _, h, w = images.shape
    if raw.ndim != 4 or raw.shape[0] != n or raw.shape[2:] != (h, w):
        raise RingcertError(f"{name}: masks must have shape (N, objects, H, W) = ({n}, objects, {h}, {w}), "
                            f"got {raw.shape}")
    if raw.shape[1] < 2:
        raise RingcertError(f"{name}: masks must hold at least two objects per image, got {raw.shape[1]}")
    if raw.dtype != bool and not np.isin(raw, (0, 1)).all():
        raise RingcertError(f"{name}: masks must be boolean or 0/1")
    masks = raw.astype(bool)
    area = masks.reshape(n, masks.shape[1], -1).sum(axis=2)
    for index, obj in zip(*np.nonzero(area == 0), strict=True):
        raise RingcertError(f"{name}: the mask of object {obj} in image {index} is empty")
    for index, obj in zip(*np.nonzero(area == h * w), strict=True):
        raise RingcertError(f"{name}: the mask of object {obj} in image {index} covers the whole image")
    return masks


def _labels(raw: np.ndarray, masks: np.ndarray, name: str) -> np.ndarray:
    if raw.shape != masks.shape[:2]:
        raise RingcertError(f"{name}: labels must have shape (N, objects) = {masks.shape[:2]}, "
                            f"got {raw.shape}")
    if not np.issubdtype(raw.dtype, np.integer) or (raw < 0).any():
        raise RingcertError(f"{name}: labels must be non-negative integers")
    return raw.astype(np.int64)


def load_images(path: str | Path) -> ImageSet:
    """The image set in ``path`` (see the module docstring), checked."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise RingcertError(f"data file {name} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in REQUIRED if key not in archive.files]
            if missing:
                raise RingcertError(f"{name} lacks the key(s) {', '.join(missing)} "
                                    f"(it has {', '.join(archive.files) or 'none'})")
            raw = {key: archive[key] for key in REQUIRED}
    except (OSError, ValueError, BadZipFile) as error:
        raise RingcertError(f"{name} is not a readable .npz file: {error}") from None
    images = _images(raw["images"], name)
    masks = _masks(raw["masks"], images, name)
    return ImageSet(images=images, masks=masks, labels=_labels(raw["labels"], masks, name))
