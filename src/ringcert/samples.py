"""Images as verification problems: image index + which object is the target.

An image comes from the DOUBLE-MNIST test split (image index ``i`` is sample ``i``, the
same picture in every command) or from the user's own file (``--data FILE.npz``, see
``ringcert.data.images``). ``Side.RIGHT`` (the default everywhere) means the target is the
right object (object 1 of a file) and the perturbed object is the left one (object 0);
``Side.LEFT`` the reverse.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ringcert.data.double_mnist import TEST_SPLIT_SIZE, DoubleMnist, generate
from ringcert.data.images import ImageSet, load_images
from ringcert.data.mnist import Split, load_digits
from ringcert.errors import RingcertError
from ringcert.problem import Problem, ring_map
from ringcert.vocabulary import Side, Weighting

__all__ = ["Side", "check_weights", "image", "image_problem", "sample_problem", "test_sample"]


def test_sample(index: int, *, mnist_dir: str | None = None) -> DoubleMnist:
    """The single test sample ``index`` (generated alone; no other sample is built)."""
    if not 0 <= index < TEST_SPLIT_SIZE:
        raise RingcertError(f"image index {index} is out of range 0..{TEST_SPLIT_SIZE - 1}")
    return generate(load_digits(Split.TEST, mnist_dir=mnist_dir), split=Split.TEST,
                    start=index, count=1, seed=0)


@lru_cache(maxsize=2)
def _file_images(path: str, _size: int, _mtime_ns: int) -> ImageSet:
    """A user's file, loaded once per content version (size and mtime are part of the key)."""
    return load_images(path)


def image_set(data: str | os.PathLike[str]) -> ImageSet:
    """The user's image file ``data``, checked (cached until the file changes)."""
    path = Path(data)
    if not path.is_file():
        raise RingcertError(f"data file {path} does not exist")
    stat = path.stat()
    return _file_images(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def image(index: int, *, data: str | os.PathLike[str] | None = None,
          mnist_dir: str | None = None) -> ImageSet:
    """Image ``index`` as a one-image set: of the file ``data``, or of the DOUBLE-MNIST test split."""
    if data is None:
        return ImageSet.from_double_mnist(test_sample(index, mnist_dir=mnist_dir))
    images = image_set(data)
    images.check_index(index)
    return ImageSet(images=images.images[index:index + 1], masks=images.masks[index:index + 1],
                    labels=images.labels[index:index + 1])


def image_problem(network: torch.nn.Module, images: ImageSet, *, index: int = 0,
                  target: Side = Side.RIGHT, k: int = 2,
                  weights: Weighting | str | np.ndarray = Weighting.UNIFORM) -> Problem:
    """The query 'does perturbing the other object of image ``index`` keep ``target`` in the
    top-k?'."""
    if images.num_objects != 2:
        raise RingcertError(f"images with {images.num_objects} objects: --target left/right needs "
                            "exactly two objects per image")
    images.check_index(index)
    return Problem.create(
        model=network, image=torch.from_numpy(np.ascontiguousarray(images.images[index])),
        target=int(images.labels[index, target.column]), mask=images.masks[index, target.other.column],
        k=k, weights=weights, perturbed_class=int(images.labels[index, target.other.column]))


def sample_problem(network: torch.nn.Module, sample: DoubleMnist, *, target: Side = Side.RIGHT,
                   k: int = 2, weights: Weighting | str | np.ndarray = Weighting.UNIFORM) -> Problem:
    """``image_problem`` on the first image of a DOUBLE-MNIST batch."""
    return image_problem(network, ImageSet.from_double_mnist(sample), target=target, k=k,
                         weights=weights)


def check_weights(weights: Weighting | np.ndarray, indices: list[int], sides: list[Side], *,
                  data: str | os.PathLike[str] | None = None) -> None:
    """A weight vector must have one entry per ring of every image it is used on: a one-line
    error naming the first image that differs (before any analysis starts)."""
    if isinstance(weights, Weighting):
        return
    for index in indices:
        masks = image(index, data=data).masks[0]
        for side in sides:
            rings = int(ring_map(masks[side.other.column]).max()) + 1
            if rings != len(weights):
                raise RingcertError(f"the weights file has {len(weights)} entries but image {index} "
                                    f"(target {side.value}) has {rings} rings")
