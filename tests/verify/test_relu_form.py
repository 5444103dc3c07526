"""The max-pool-free form of a network (``verify/relu_form.py``): the same function, and its
bounds hold for the original network at sampled, corner and attacked box points."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from ringcert.verify.bounds import BoundMethod, margin_bound
from ringcert.verify.relu_form import relu_form
from tests.fixtures import (
    assert_layer_bounds_sound,
    box_points,
    conv_net,
    make_problem,
    net_b,
    pair_maxima,
    random_eps,
)


def _pooled_net(seed: int) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """Conv - ReLU - MaxPool 2 - Conv - MaxPool (1, 2) over signed inputs - Flatten - Linear:
    both kinds of pool input (after a ReLU and not)."""
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d((1, 2)), nn.Flatten(),
                            nn.Linear(4 * 5 * 2, 5))
    return network.eval(), (1, 10, 8)


def test_same_function_and_none_when_nothing_to_rewrite() -> None:
    network, shape = _pooled_net(0)
    form = relu_form(network, shape)
    assert form is not None and not any(isinstance(layer, nn.MaxPool2d) for layer in form)
    x = torch.randn((20, *shape))
    with torch.no_grad():
        assert torch.allclose(form(x), network(x), atol=1e-5, rtol=0)
    assert relu_form(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), (1, 2, 2)) is None
    padded, padded_shape = net_b(0)  # its max-pool is padded: not written as ReLUs
    assert relu_form(padded, padded_shape) is None


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method", [BoundMethod.CROWN, BoundMethod.ALPHA_CROWN])
def test_bounds_of_the_relu_form_hold_for_the_original(seed, method) -> None:
    network, shape = _pooled_net(seed) if seed < 2 else (conv_net(seed), (1, 8, 8))
    problem = make_problem(network, shape, seed, k=2)
    form = relu_form(network, shape)
    rewritten = replace(problem, model=form)
    eps = random_eps(problem, seed, 0.15)
    points = box_points(problem, eps, seed)  # uniform, corners and PGD on the original
    assert points.shape[0] >= 1000
    lo, hi = problem.box(eps)
    assert_layer_bounds_sound(form, points, lo, hi)
    result = margin_bound(rewritten, eps, method=method)
    truth = pair_maxima(problem, points)  # on the original network
    assert bool((result.per_set[None] <= truth + 1e-4).all())
    assert float(result.lower.detach()) <= float(problem.margin(points).detach().min()) + 1e-4
