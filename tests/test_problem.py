import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from ringcert.errors import RingcertError
from ringcert.problem import Problem, ring_map, topk_margin
from ringcert.vocabulary import Weighting


def _brute_rings(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    grid_y, grid_x = np.indices(mask.shape)
    dist = np.maximum(np.abs(grid_y[..., None] - ys), np.abs(grid_x[..., None] - xs))
    return dist.min(axis=-1)


masks = arrays(bool, st.tuples(st.integers(2, 9), st.integers(2, 9))).filter(
    lambda m: m.any() and not m.all())


@given(masks)
@settings(max_examples=150, deadline=None)
def test_ring_map_is_chebyshev_distance(mask):
    rings = ring_map(mask)
    assert np.array_equal(rings, _brute_rings(mask))
    assert np.array_equal(rings == 0, mask)
    # every ring 0..r is non-empty
    assert set(np.unique(rings)) == set(range(rings.max() + 1))


def _linear_problem(image, mask, k=2, target=0, weights=Weighting.UNIFORM):
    shape = image.shape
    torch.manual_seed(0)
    layer = nn.Linear(int(np.prod(shape)), 4)
    layer.bias.data = torch.tensor([10.0, 5.0, 0.0, -5.0])
    model = nn.Sequential(nn.Flatten(), layer)
    return Problem.create(model=model, image=torch.as_tensor(image)[None], target=target,
                          mask=mask, k=k, weights=weights)


@given(masks, st.data())
@settings(max_examples=100, deadline=None)
def test_box_contains_image_and_respects_ring_radius(mask, data):
    rng = np.random.default_rng(0)
    image = rng.random(mask.shape).astype(np.float32)
    problem = _linear_problem(image, mask)
    eps = np.array(data.draw(st.lists(st.floats(0, 1), min_size=problem.num_rings,
                                      max_size=problem.num_rings)))
    lo, hi = problem.box(eps)
    x = problem.image
    assert (lo <= x).all() and (x <= hi).all() and (lo >= 0).all() and (hi <= 1).all()
    radius = torch.as_tensor(eps[problem.rings], dtype=torch.float32)[None]
    assert torch.allclose(hi, (x + radius).clamp(0, 1)) and torch.allclose(lo, (x - radius).clamp(0, 1))
    assert problem.ring_sizes.sum() == mask.size


def test_topk_margin_matches_definition():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0], [0.0, 5.0, 4.0, 3.0]])
    assert topk_margin(logits, 0, 2).tolist() == [2.0, -4.0]
    assert topk_margin(logits, 2, 1).tolist() == [-1.0, -1.0]
    assert topk_margin(logits, 2, 2).tolist() == [1.0, 1.0]


def test_weights():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = True
    problem = _linear_problem(np.zeros((6, 6), np.float32), mask, weights="area")
    assert np.isclose(problem.weights.sum(), 1.0)
    assert np.allclose(problem.weights, problem.ring_sizes / 36)
    with pytest.raises(RingcertError, match="one per ring"):
        _linear_problem(np.zeros((6, 6), np.float32), mask, weights=[1.0, 2.0])
    with pytest.raises(RingcertError, match="non-negative"):
        _linear_problem(np.zeros((6, 6), np.float32), mask, weights=[-1.0] * 6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mask": np.zeros((5, 5), bool)}, "empty"),
     ({"mask": np.ones((5, 5), bool)}, "whole image"),
     ({"mask": np.eye(4, dtype=bool)}, "does not match"),
     ({"image": np.full((5, 5), 1.5, np.float32)}, r"\[0, 1\]"),
     ({"target": 3}, "not in the top-2"),
     ({"target": 9}, "not in 0..3"),
     ({"k": 4}, "k must be")])
def test_validation_errors(kwargs, message):
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    args = {"image": np.zeros((5, 5), np.float32), "mask": mask, "target": 0, "k": 2}
    args.update(kwargs)
    torch.manual_seed(0)
    layer = nn.Linear(25, 4)
    layer.weight.data.zero_()
    layer.bias.data = torch.tensor([10.0, 5.0, 0.0, -5.0])
    with pytest.raises(RingcertError, match=message):
        Problem.create(model=nn.Sequential(nn.Flatten(), layer), image=args["image"],
                       target=args["target"], mask=args["mask"], k=args["k"])


def test_eps_validation():
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    problem = _linear_problem(np.zeros((5, 5), np.float32), mask)
    assert problem.num_rings == 3
    with pytest.raises(RingcertError, match="3 entries"):
        problem.box([0.1, 0.1])
    with pytest.raises(RingcertError, match=r"\[0, 1\]"):
        problem.box([0.1, 0.1, 1.5])
