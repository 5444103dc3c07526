"""Beta-CROWN split multipliers (``verify/beta.py``) against sampled points of the branch.

A branch is built the way branch and bound builds it (``branching.children``, ReLU splits
and max-pool splits at a threshold), always keeping the half that contains a chosen box
point ``x0``, so its domain (box and splits) is not empty. On it: with 0 steps
``split_bound`` is plain CROWN (the same backward pass without multipliers); with steps it
never goes below that, never above the value of the rows at any sampled point of the
domain (uniform points and corners of the box, filtered by the splits, and ``x0``); and it
does rise somewhere, or the multipliers would be a no-op.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ringcert.verify.bab.beta import split_bound
from ringcert.verify.bab.branching import Branch, SplitRule, bound, children
from ringcert.verify.bounds import BoundMethod, network_bounds
from ringcert.verify.bounds.crown import backward, concretize
from tests.fixtures import conv_net, mlp, pooled, tiny_problem

# seeds whose root has an unstable ReLU at epsilon 0.3 (the others have nothing to split)
CASES = [(mlp, (2, 2), seed) for seed in (1, 2, 3, 4, 5, 7, 9)] + [
    (pooled, (1, 3), seed) for seed in (0, 5, 7)] + [(conv_net, (8, 8), seed) for seed in range(4)]


def _branch_around(problem, eps: np.ndarray, x0: torch.Tensor, depth: int) -> Branch | None:
    """Split ``depth`` times from the root, keeping the child whose domain holds ``x0``."""
    lo, hi = problem.box(eps)
    layers = network_bounds(problem.model, lo, hi, method=BoundMethod.CROWN).layers
    branch = bound(problem, problem.check_eps(eps), (lo, hi), [(a.detach(), b.detach()) for a, b in layers])
    for _ in range(depth):
        found = children(problem, problem.check_eps(eps), branch, rule=SplitRule.BABSR)
        if found is None:
            break
        holding = [kid for kid in found[0] if bool(kid.satisfies(problem.model, x0[None])[0])]
        if not holding or not holding[0].splits:
            break
        branch = holding[0]
    return branch if branch.splits else None


@pytest.mark.parametrize(("factory", "shape", "seed"), CASES)
def test_multipliers_bound_the_branch_and_start_at_crown(factory, shape, seed) -> None:
    problem = tiny_problem(factory(seed), shape, seed, k=1)
    eps = np.full(problem.num_rings, 0.3)
    lo, hi = problem.box(eps)
    generator = torch.Generator().manual_seed(seed)
    x0 = lo + torch.rand(lo.shape, generator=generator) * (hi - lo)
    branch = _branch_around(problem, eps, x0, depth=4)
    assert branch is not None
    rows = torch.randn(6, 4 if factory is not conv_net else 5, generator=generator)
    plain = split_bound(problem.model, branch.box, branch.layers, rows, branch.splits, steps=0)
    inputs = [branch.box, *branch.layers[:-1]]
    coef, bias = backward(problem.model, inputs, rows, last=len(problem.model) - 1)
    assert torch.allclose(plain.lower, concretize(coef, bias, *branch.box), atol=1e-5)
    assert bool((plain.betas == 0).all())
    optimized = split_bound(problem.model, branch.box, branch.layers, rows, branch.splits, steps=40,
                            lr=0.1)
    assert bool((optimized.lower >= plain.lower - 1e-6).all())
    assert bool((optimized.betas >= 0).all())
    uniform = lo + torch.rand((20_000, *lo.shape), generator=generator) * (hi - lo)
    corners = torch.where(torch.rand((2_000, *lo.shape), generator=generator) < 0.5, lo, hi)
    pool = torch.cat([uniform, corners, x0[None]])
    with torch.no_grad():
        inside = pool[branch.satisfies(problem.model, pool)]
        values = problem.model(inside) @ rows.T
    assert inside.shape[0] >= 1
    assert bool((optimized.lower <= values.min(0).values + 1e-5).all())


def test_multipliers_raise_some_bound() -> None:
    raised, thresholds = 0.0, 0
    for factory, shape, seed in CASES:
        problem = tiny_problem(factory(seed), shape, seed, k=1)
        eps = np.full(problem.num_rings, 0.3)
        lo, hi = problem.box(eps)
        x0 = (lo + hi) / 2
        branch = _branch_around(problem, eps, x0, depth=4)
        if branch is None:
            continue
        rows = branch.row[None]
        plain = split_bound(problem.model, branch.box, branch.layers, rows, branch.splits, steps=0)
        optimized = split_bound(problem.model, branch.box, branch.layers, rows, branch.splits,
                                steps=40, lr=0.1)
        raised += float((optimized.lower - plain.lower).sum())
        thresholds += sum(split.threshold > 0 for split in branch.splits)
    assert raised > 1e-3
    assert thresholds > 0  # max-pool splits, whose multipliers carry a constant term


def test_needs_a_split() -> None:
    problem = tiny_problem(mlp(0), (2, 2), 0, k=1)
    lo, hi = problem.box(np.full(problem.num_rings, 0.1))
    with pytest.raises(ValueError, match="split"):
        split_bound(problem.model, (lo, hi), [], torch.ones(1, 4), [], steps=1)
