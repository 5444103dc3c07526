"""DOUBLE-MNIST test images as verification problems: image index + which digit is the target.

``Side.RIGHT`` (the default everywhere) means the target is the right digit and the
perturbed object is the left digit; ``Side.LEFT`` the reverse. Image index ``i`` is
sample ``i`` of the test split, the same picture in every command.
"""

from __future__ import annotations

import numpy as np

from ringcert.data.double_mnist import TEST_SPLIT_SIZE, DoubleMnist, generate
from ringcert.data.mnist import Split, load_digits
from ringcert.errors import RingcertError
from ringcert.problem import Problem, Weighting
from ringcert.sides import Side

__all__ = ["Side", "sample_problem", "test_sample"]


def test_sample(index: int, *, mnist_dir: str | None = None) -> DoubleMnist:
    """The single test sample ``index`` (generated alone; no other sample is built)."""
    if not 0 <= index < TEST_SPLIT_SIZE:
        raise RingcertError(f"image index {index} is out of range 0..{TEST_SPLIT_SIZE - 1}")
    return generate(load_digits(Split.TEST, mnist_dir=mnist_dir), split=Split.TEST,
                    start=index, count=1, seed=0)


def sample_problem(network, sample: DoubleMnist, *, target: Side = Side.RIGHT, k: int = 2,
                   weights: Weighting | str | np.ndarray = Weighting.UNIFORM) -> Problem:
    """The query 'does perturbing the other digit keep ``target`` in the top-k?'."""
    return Problem.create(
        model=network, image=sample.float_images()[0], target=int(sample.labels[0, target.column]),
        mask=sample.masks[0, target.other.column], k=k, weights=weights,
        perturbed_class=int(sample.labels[0, target.other.column]))
