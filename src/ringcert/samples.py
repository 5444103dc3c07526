"""Images as verification problems: image index + which objects are perturbed and targets.

An image comes from the DOUBLE-MNIST test split (image index ``i`` is sample ``i``, the
same picture in every command), from its N-object form (``objects``), or from the user's own
file (``--data FILE.npz``, see ``ringcert.data.images``). ``Side.RIGHT`` (the default
everywhere) means the target is the right object (object 1 of a file) and the perturbed
object is the left one (object 0); ``Side.LEFT`` the reverse. A ``Selection`` names any
perturbed and target objects by index: the rings grow from the union of the perturbed masks.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ringcert.data.double_mnist import TEST_SPLIT_SIZE, DoubleMnist, generate
from ringcert.data.images import ImageSet, load_images
from ringcert.data.mnist import Split, load_digits
from ringcert.errors import RingcertError
from ringcert.problem import Problem, ring_map
from ringcert.selection import Selection
from ringcert.vocabulary import Side, Weighting

__all__ = ["Selection", "Side", "check_weights", "image", "image_problem", "sample_problem", "test_sample"]


def test_sample(index: int, *, mnist_dir: str | None = None, objects: int = 2) -> DoubleMnist:
    """The single test sample ``index`` of ``objects`` digits (generated alone; no other
    sample is built)."""
    if not 0 <= index < TEST_SPLIT_SIZE:
        raise RingcertError(f"image index {index} is out of range 0..{TEST_SPLIT_SIZE - 1}")
    return generate(load_digits(Split.TEST, mnist_dir=mnist_dir), split=Split.TEST,
                    start=index, count=1, seed=0, objects=objects)


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
          mnist_dir: str | None = None, objects: int = 2) -> ImageSet:
    """Image ``index`` as a one-image set: of the file ``data``, or of the test split of
    ``objects``-digit images (DOUBLE-MNIST for 2)."""
    if data is None:
        return ImageSet.from_double_mnist(test_sample(index, mnist_dir=mnist_dir, objects=objects))
    images = image_set(data)
    images.check_index(index)
    return ImageSet(images=images.images[index:index + 1], masks=images.masks[index:index + 1],
                    labels=images.labels[index:index + 1])


def image_problem(network: torch.nn.Module, images: ImageSet, *, index: int = 0,
                  target: Side | Selection | str = Side.RIGHT, k: int | None = None,
                  weights: Weighting | str | np.ndarray = Weighting.UNIFORM) -> Problem:
    """The query 'does perturbing the selected objects of image ``index`` keep every target
    object in the top-k?' (``k`` defaults to the number of objects)."""
    if (isinstance(target, Side) or target in {side.value for side in Side}) and images.num_objects != 2:
        raise RingcertError(f"images with {images.num_objects} objects: --target left/right needs "
                            "exactly two objects per image")
    selection = Selection.of(target)
    selection.check(images.num_objects)
    images.check_index(index)
    labels = images.labels[index]
    mask = images.masks[index, list(selection.perturbed)].any(axis=0)
    problem = Problem.create(
        model=network, image=torch.from_numpy(np.ascontiguousarray(images.images[index])),
        # two target objects of one class (a user's file) are one class to keep in the top-k
        target=tuple(dict.fromkeys(int(labels[j]) for j in selection.targets)), mask=mask,
        k=images.num_objects if k is None else k, weights=weights,
        perturbed_class=int(labels[selection.perturbed[0]]))
    # several perturbed objects have no one class (create would guess the model's reading)
    return problem if len(selection.perturbed) == 1 else replace(problem, perturbed_class=None)


def sample_problem(network: torch.nn.Module, sample: DoubleMnist, *, target: Side = Side.RIGHT,
                   k: int | None = None, weights: Weighting | str | np.ndarray = Weighting.UNIFORM
                   ) -> Problem:
    """``image_problem`` on the first image of a DOUBLE-MNIST batch."""
    return image_problem(network, ImageSet.from_double_mnist(sample), target=target, k=k,
                         weights=weights)


def check_weights(weights: Weighting | np.ndarray, indices: list[int],
                  sides: list[Side] | list[Selection], *, data: str | os.PathLike[str] | None = None,
                  objects: int = 2) -> None:
    """A weight vector must have one entry per ring of every image it is used on: a one-line
    error naming the first image that differs (before any analysis starts)."""
    if isinstance(weights, Weighting):
        return
    for index in indices:
        masks = image(index, data=data, objects=objects).masks[0]
        for side in sides:
            selection = Selection.of(side)
            rings = int(ring_map(masks[list(selection.perturbed)].any(axis=0)).max()) + 1
            if rings != len(weights):
                raise RingcertError(f"the weights file has {len(weights)} entries but image {index} "
                                    f"(target {side.value}) has {rings} rings")
