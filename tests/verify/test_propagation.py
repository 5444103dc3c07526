"""Soundness and tightness of IBP / CROWN / alpha-CROWN on tiny networks using every
supported operator, checked against >= 1,000 points per box (uniform samples, box corners,
PGD results) evaluated by plain forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.registry import layer_type
from ringcert.verify.attack import pgd_attack
from ringcert.verify.bounds import BoundMethod, margin_bound, network_bounds
from ringcert.verify.bounds.cache import LayerBoundsCache, hull_bounds
from ringcert.verify.bounds.envelope import FirstBlock
from ringcert.verify.propagation import AlphaCrown, Crown, Ibp
from ringcert.vocabulary import Status
from tests.fixtures import (
    THRESHOLD_CASES,
    TOL,
    assert_layer_bounds_sound,
    box_points,
    conv_net,
    exact_optimum,
    layer_outputs,
    make_problem,
    net_a,
    net_b,
    pair_maxima,
    random_eps,
    tiny_problem,
)

CASES = [(net_a, 0, 2), (net_a, 1, 1), (net_a, 2, 3), (net_b, 3, 2), (net_b, 4, 1)]


@pytest.mark.parametrize(("builder", "seed", "k"), CASES)
@pytest.mark.parametrize("scale", [0.05, 0.3])
def test_bounds_hold_on_samples(builder, seed: int, k: int, scale: float) -> None:
    network, shape = builder(seed)
    problem = make_problem(network, shape, seed, k)
    eps = random_eps(problem, seed, scale)
    points = box_points(problem, eps, seed)
    assert points.shape[0] >= 1000
    lo, hi = problem.box(eps)
    assert bool(((points >= lo) & (points <= hi)).all())
    margins = problem.margin(points).detach()
    set_max = pair_maxima(problem, points)
    assert_layer_bounds_sound(network, points, lo, hi)
    found = {}
    for method in BoundMethod:
        for joint in (True, False):
            result = margin_bound(problem, eps, method=method, joint=joint, alpha_steps=10)
            assert float(margins.min()) >= float(result.lower) - TOL, (method, joint)
            assert bool((set_max >= result.per_set - TOL).all()), (method, joint)
            assert bool(((result.minimizer >= lo) & (result.minimizer <= hi)).all())
            found[method, joint] = float(result.lower)
    for joint in (True, False):
        assert found[BoundMethod.IBP, joint] <= found[BoundMethod.CROWN, joint] + 1e-6
        assert found[BoundMethod.CROWN, joint] <= found[BoundMethod.ALPHA_CROWN, joint] + 1e-6
    for method in BoundMethod:
        assert found[method, True] >= found[method, False] - 1e-6


def test_crown_tightens_and_joint_helps_somewhere() -> None:
    """Across a few random boxes CROWN beats IBP, alpha-CROWN beats CROWN and joint
    top-2 beats the per-class bound at least once (the relaxations are not inert)."""
    gains = {"crown": 0, "alpha": 0, "joint": 0}
    for seed, scale in [(0, 0.1), (1, 0.3), (2, 0.1), (3, 0.3), (4, 0.1), (5, 0.3)]:
        network, shape = net_b(seed)
        with torch.no_grad():
            network[0].weight.mul_(4)
        problem = make_problem(network, shape, seed, 2)
        eps = random_eps(problem, seed, scale)
        ibp = float(margin_bound(problem, eps, method=BoundMethod.IBP).lower)
        crown = float(margin_bound(problem, eps, method=BoundMethod.CROWN).lower)
        alpha = float(margin_bound(problem, eps, method=BoundMethod.ALPHA_CROWN).lower)
        single = float(margin_bound(problem, eps, method=BoundMethod.CROWN, joint=False).lower)
        gains["crown"] += crown > ibp + 1e-4
        gains["alpha"] += alpha > crown + 1e-4
        gains["joint"] += crown > single + 1e-4
    assert all(count > 0 for count in gains.values()), gains


@pytest.mark.parametrize("builder", [net_a, net_b])
def test_operator_backward_steps_are_sound(builder) -> None:
    """Each layer's backward step: ``A . layer(x) >= A' . x + bias`` on samples of its
    input bounds (equality for affine layers), with CROWN's relaxation and with any
    alpha-CROWN parameters in [0, 1] (random per row, all 0, all 1)."""
    network, shape = builder(7)
    generator = torch.Generator().manual_seed(7)
    centre = torch.rand(shape, generator=generator)
    lo, hi = (centre - 0.2).clamp(0, 1), (centre + 0.2).clamp(0, 1)
    bounds = network_bounds(network, lo, hi, method=BoundMethod.CROWN)
    points = lo + torch.rand((500, *shape), generator=generator) * (hi - lo)
    inputs = [points, *layer_outputs(network, points)[:-1]]
    for index, layer in enumerate(network):
        low, up = bounds.inputs[index]
        # reachable inputs, and the whole box the step is claimed on (corners included)
        corners = low + torch.randint(0, 2, (500, *low.shape), generator=generator) * (up - low)
        anywhere = low + torch.rand((500, *low.shape), generator=generator) * (up - low)
        x = torch.cat([inputs[index], corners, anywhere])
        with torch.no_grad():
            y = layer(x)
        coef = torch.randn((6, *y.shape[1:]), generator=generator)
        exact = y.flatten(1) @ coef.flatten(1).T
        initial = layer_type(layer).initial_alpha(layer, low, up)
        choices = [None] if initial is None else [
            None, torch.rand((6, *initial.shape), generator=generator),
            torch.zeros_like(initial), torch.ones_like(initial)]
        for alpha in choices:
            coef_in, bias = layer_type(layer).backward(layer, coef, low, up, alpha=alpha)
            linear = x.flatten(1) @ coef_in.flatten(1).T + bias
            assert bool((exact >= linear - TOL).all()), type(layer).__name__
        if layer_type(layer).affine:
            assert torch.allclose(exact, linear, atol=TOL), type(layer).__name__


@pytest.mark.parametrize("method", list(BoundMethod))
def test_bound_is_differentiable_in_eps(method: BoundMethod) -> None:
    network, shape = net_a(3)
    problem = make_problem(network, shape, 3, 2)
    eps = random_eps(problem, 3, 0.1).requires_grad_()
    result = margin_bound(problem, eps, method=method, alpha_steps=5)
    result.lower.backward()
    assert eps.grad is not None
    assert bool(torch.isfinite(eps.grad).all())
    assert float(eps.grad.abs().sum()) > 0
    assert float(eps.grad.max()) <= 1e-6  # a larger box can only lower the bound


@pytest.mark.parametrize("verifier", [Ibp(), Crown(), AlphaCrown(steps=5)])
def test_verifier_robust_only_when_attack_fails(verifier) -> None:
    network, shape = net_b(0)
    with torch.no_grad():
        network[0].weight.mul_(4)  # make the output depend on the input strongly
    problem = make_problem(network, shape, 0, 2)
    zero = torch.zeros(problem.num_rings, dtype=torch.float64)
    verdict = verifier.verify(problem, zero)
    assert verdict.status is Status.ROBUST  # a point box: the bound is the margin itself
    assert verdict.bound is not None
    assert 0 < verdict.bound <= float(problem.margin(problem.image[None]).detach())
    statuses = []
    for scale in (0.01, 0.03, 0.1, 0.3, 1.0):
        eps = torch.full((problem.num_rings,), scale, dtype=torch.float64)
        verdict = verifier.verify(problem, eps)
        statuses.append(verdict.status)
        assert verdict.status in (Status.ROBUST, Status.UNKNOWN)
        assert verdict.weakest_points is not None and verdict.weakest_points.shape[0] == 1
        assert verdict.stats["unstable"] >= 0
        attack = pgd_attack(problem, eps, restarts=32, steps=50, step_fraction=0.1, seed=1)
        if verdict.status is Status.ROBUST:
            assert float(attack.margins[0]) > 0
            assert float(attack.margins[0]) >= verdict.bound
        if float(attack.margins[0]) <= 0:
            assert verdict.status is Status.UNKNOWN
    assert Status.UNKNOWN in statuses  # the attack breaks eps = 1 on this network


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("factory", "shape", "seed"), THRESHOLD_CASES)
def test_warm_started_alpha_crown_never_proves_what_enumeration_refutes(factory, shape, seed) -> None:
    """Incremental reuse across a search (each query starts from the previous one's optimized
    slopes and set weights, ``warm_steps``) against exact answers: on a chain of nested boxes
    crossing the robustness boundary, asked growing, shrinking and shuffled, a warm-started
    bound never exceeds the exact optimum, so it never proves a refuted query (nor does the
    from-scratch verifier, asked alongside)."""
    problem = tiny_problem(factory(seed), shape, seed)
    direction = np.ones(problem.num_rings)
    scales = np.linspace(0.02, 1.0, 8)
    truths = {scale: exact_optimum(problem, list(scale * direction)) for scale in scales}  # max -m
    assert min(truths.values()) < 0 < max(truths.values())  # both sides of the boundary
    orders = [scales, scales[::-1], np.random.default_rng(seed).permutation(scales)]
    for order in orders:
        warm, cold = AlphaCrown(steps=10, warm_steps=3), AlphaCrown(steps=10)
        proved = 0
        for scale in order:
            for verifier in (warm, cold):
                verdict = verifier.verify(problem, scale * direction)
                assert verdict.bound is not None and verdict.bound <= -truths[scale] + TOL
                if verdict.status is Status.ROBUST:
                    assert truths[scale] < 0
                    proved += verifier is warm
        assert warm._last is not None and proved >= 1  # parameters were reused; it proves some


def test_unsupported_layer_raises() -> None:
    network = nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.Sigmoid(), nn.Linear(4, 3))
    lo, hi = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    for method in BoundMethod:
        with pytest.raises(RingcertError, match="Sigmoid"):
            network_bounds(network, lo, hi, method=method)


def test_layer_bounds_cache_reuses_only_identical_queries() -> None:
    """The cascade's shared cache gives CROWN and alpha-CROWN the same layer bounds for one
    box, recomputes on another box or after the weights change, and changes no verdict."""
    network, shape = net_b(1)
    problem = make_problem(network, shape, 1, 2)
    eps = random_eps(problem, 1, 0.1)
    cache = LayerBoundsCache()
    lo, hi = problem.box(eps)
    first = cache.get(network, lo, hi, method=BoundMethod.CROWN)
    assert cache.get(network, *problem.box(eps.clone()), method=BoundMethod.CROWN) is first
    assert cache.get(network, lo, hi, method=BoundMethod.IBP) is not first
    assert cache.get(network, *problem.box(eps * 0.5), method=BoundMethod.CROWN) is not first
    again = cache.get(network, lo, hi, method=BoundMethod.CROWN)
    with torch.no_grad():
        network[0].weight.mul_(1.5)
    changed = cache.get(network, lo, hi, method=BoundMethod.CROWN)
    assert changed is not again
    assert not torch.equal(changed.layers[0][0], again.layers[0][0])
    pairs = [(Crown(), Crown(cache=cache)), (AlphaCrown(steps=3), AlphaCrown(steps=3, cache=cache))]
    for plain, cached in pairs:
        assert plain.verify(problem, eps).bound == cached.verify(problem, eps).bound


def test_hull_bounds_are_shared_only_on_the_same_box_with_at_least_the_steps() -> None:
    """The envelope stage and branch and bound's root share hull-tightened bounds through the
    cascade's cache: reused for the same network and box when computed with at least the
    steps asked (more steps are as sound and tighter), recomputed otherwise; every reuse
    equals a fresh computation with the cached steps."""
    problem = tiny_problem(conv_net(1), (8, 8), 1)
    network = problem.model
    block = FirstBlock.of(network, tuple(problem.image.shape))
    assert block is not None
    eps = np.full(problem.num_rings, 0.1)
    cache = LayerBoundsCache()
    plain = cache.get(network, *problem.box(eps), method=BoundMethod.CROWN)
    first = hull_bounds(network, block, plain, steps=5, cache=cache)
    assert hull_bounds(network, block, plain, steps=3, cache=cache) is first
    fresh = hull_bounds(network, block, plain, steps=5)
    assert all(torch.equal(a, b) for pair, other in zip(first.layers, fresh.layers, strict=True)
               for a, b in zip(pair, other, strict=True))
    more = hull_bounds(network, block, plain, steps=8, cache=cache)
    assert more is not first and hull_bounds(network, block, plain, steps=5, cache=cache) is more
    other = cache.get(network, *problem.box(eps / 2), method=BoundMethod.CROWN)
    assert hull_bounds(network, block, other, steps=3, cache=cache) is not more
