"""Max-pool's linear bounds against exact maxima: every corner of small input boxes, plus
sampled points (issue 14: the operator the peer comparison points at).

The max of a window is convex in its inputs, so an affine upper bound that holds at every
corner of the box holds on the whole box: enumerating the corners checks the upper bound
exactly, for CROWN's choice and for any alpha-CROWN parameters (a convex combination of the
nested bounds). The lower bound (one input) is checked on the corners and on samples.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.maxpool import MaxPoolType, as_relus, relax

POOLS = [nn.MaxPool2d(2), nn.MaxPool2d(2, stride=1), nn.MaxPool2d(3, stride=2, padding=1),
         nn.MaxPool2d((1, 3), stride=1)]
SHAPE = (2, 3, 3)


def _box(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centre = torch.randn(SHAPE, generator=generator, dtype=torch.float64)
    radius = torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 1.5
    radius[torch.rand(SHAPE, generator=generator) < 0.2] = 0.0  # some inputs fixed
    return centre - radius, centre + radius


def _linear_bounds(pool, lower, upper, alpha):
    """Affine lower and upper bounds on every output as (coef, const) pairs."""
    outputs = pool(lower[None])[0].numel()
    rows = torch.eye(outputs, dtype=lower.dtype).reshape(outputs, *pool(lower[None])[0].shape)
    rules = MaxPoolType()
    low_coef, low_const = rules.backward(pool, rows, lower, upper, alpha=None)
    neg_coef, neg_const = rules.backward(pool, -rows, lower, upper, alpha=alpha)
    return (low_coef, low_const), (-neg_coef, -neg_const)


def _points(lower, upper, seed):
    """Every corner of the box (inputs with zero width contribute one value), then samples."""
    free = (upper > lower).flatten().nonzero().flatten()
    corners = []
    for bits in itertools.product((0, 1), repeat=len(free)):
        point = lower.flatten().clone()
        point[free] = torch.where(torch.tensor(bits, dtype=torch.bool), upper.flatten()[free],
                                  lower.flatten()[free])
        corners.append(point.reshape(lower.shape))
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand((500, *lower.shape), generator=generator, dtype=lower.dtype)
    samples = lower + uniform * (upper - lower)
    return torch.stack(corners), samples


@pytest.mark.parametrize("pool", POOLS, ids=repr)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("alpha", ["crown", "random", "zero", "one"])
def test_maxpool_bounds_hold_at_every_corner_and_sample(pool, seed, alpha) -> None:
    lower, upper = _box(seed)
    # keep the corner count small: only the first channel's first 9 inputs may move
    upper = torch.where(torch.arange(upper.numel()).reshape(upper.shape) < 9, upper, lower)
    relaxed = relax(pool, lower, upper)
    generator = torch.Generator().manual_seed(seed)
    params = {"crown": None, "zero": torch.zeros_like(relaxed.follow),
              "one": torch.ones_like(relaxed.follow),
              "random": torch.rand(relaxed.follow.shape, generator=generator, dtype=lower.dtype)}[alpha]
    (low_coef, low_const), (up_coef, up_const) = _linear_bounds(pool, lower, upper, params)
    corners, samples = _points(lower, upper, seed)
    for points in (corners, samples):
        exact = pool(points).flatten(1)  # (N, outputs)
        below = torch.einsum("oc,nc->no", low_coef.flatten(1), points.flatten(1)) + low_const
        above = torch.einsum("oc,nc->no", up_coef.flatten(1), points.flatten(1)) + up_const
        assert bool((below <= exact + 1e-9).all())
        assert bool((exact <= above + 1e-9).all())


def test_the_nested_upper_bound_is_exact_when_one_input_dominates() -> None:
    """m = 1 is ``x_(1) + max(0, u_(2) - l_(1))``: exact where x_(1)'s lower bound is above
    every other input's upper bound, at every point of the box."""
    pool = nn.MaxPool2d(2)
    lower = torch.tensor([[[2.0, -1.0], [-0.5, 0.0]]], dtype=torch.float64)
    upper = torch.tensor([[[3.0, 1.0], [0.5, 1.5]]], dtype=torch.float64)
    (_, _), (up_coef, up_const) = _linear_bounds(pool, lower, upper, None)
    corners, samples = _points(lower, upper, 0)
    for points in (corners, samples):
        above = torch.einsum("oc,nc->no", up_coef.flatten(1), points.flatten(1)) + up_const
        assert torch.allclose(above, pool(points).flatten(1))


@pytest.mark.parametrize("kernel", [2, 4, (2, 4), (1, 2), (4, 1)])
@pytest.mark.parametrize("nonnegative", [True, False])
def test_as_relus_computes_the_max_pool(kernel, nonnegative) -> None:
    pool = nn.MaxPool2d(kernel)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((6, 3, 9, 13), generator=generator)  # odd sides: floor mode drops the rest
    if nonnegative:
        x = x.relu()
    tree = nn.Sequential(*as_relus(pool, 3, nonnegative=nonnegative))
    with torch.no_grad():
        assert torch.allclose(tree(x), pool(x), atol=1e-6, rtol=0)
    sides = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    levels = sum(side.bit_length() - 1 for side in sides)  # one pairing level per halving
    assert sum(isinstance(layer, nn.ReLU) for layer in tree) == levels


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3), nn.MaxPool2d(2, stride=1), nn.MaxPool2d(2, padding=1)])
def test_as_relus_refuses_pools_it_cannot_write(pool) -> None:
    with pytest.raises(RingcertError, match="max-pool as ReLUs needs"):
        as_relus(pool, 2, nonnegative=True)
