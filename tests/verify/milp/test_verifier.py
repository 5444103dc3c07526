"""The complete MILP verifier against exact answers on tiny seeded networks.

Ground truth is independent of the MILP: the exact optimum ``max_box -m(z)`` is found
by enumerating every ReLU activation pattern, every max-pool argmax and every k-set of
other classes, and solving one small LP (scipy) per combination (the network is affine
on each piece). Threshold tests put epsilon just below and just above the critical
value. Cross-checks: attack NOT_ROBUST => MILP NOT_ROBUST; bound-propagation ROBUST =>
MILP ROBUST; every witness passes the forward-pass check; partial MILP never proves
more than the exact one.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from ringcert.verify.attack import Attack
from ringcert.verify.bab import BranchAndBound
from ringcert.verify.bounds import BoundMethod, network_bounds
from ringcert.verify.milp import Milp
from ringcert.verify.registry import make_verifier
from ringcert.verify.verdict import Verdict, check_witness
from ringcert.vocabulary import Status
from tests.fixtures import MILP_CASES, THRESHOLD_CASES, conv_net, exact_optimum, mlp, tiny_problem


@pytest.mark.parametrize(("factory", "shape", "seed"), MILP_CASES)
@pytest.mark.parametrize("radius", [0.05, 0.3])
def test_optimum_matches_enumeration(factory, shape, seed, radius) -> None:
    problem = tiny_problem(factory(seed), shape, seed)
    eps = [radius] + [radius / 2] * (problem.num_rings - 1)
    truth = exact_optimum(problem, eps)
    verdict = Milp(early_stop=False, warm_start=False, bounds=BoundMethod.IBP).verify(problem, eps)
    assert verdict.bound == pytest.approx(-truth, abs=1e-5)
    if truth < -1e-3:
        assert verdict.status is Status.ROBUST
    elif truth > 1e-6:
        assert verdict.status is Status.NOT_ROBUST


@pytest.mark.parametrize(("factory", "shape", "seed"), THRESHOLD_CASES)
def test_threshold_just_below_and_above_critical_eps(factory, shape, seed) -> None:
    problem = tiny_problem(factory(seed), shape, seed)
    verifier = Milp(bounds=BoundMethod.IBP)
    rings = problem.num_rings
    low, high = 0.0, 1.0
    assert exact_optimum(problem, [high] * rings) > 0
    for _ in range(16):  # bisection with the MILP; ground truth checks it below
        mid = (low + high) / 2
        if verifier.verify(problem, [mid] * rings).status is Status.ROBUST:
            low = mid
        else:
            high = mid
    critical = (low + high) / 2
    below, above = max(critical - 0.02, 0.0), min(critical + 0.02, 1.0)
    assert exact_optimum(problem, [below] * rings) < 0 < exact_optimum(problem, [above] * rings)
    assert verifier.verify(problem, [below] * rings).status is Status.ROBUST
    not_robust = verifier.verify(problem, [above] * rings)
    assert not_robust.status is Status.NOT_ROBUST
    assert check_witness(problem, problem.check_eps([above] * rings), not_robust.counterexample) is not None


@pytest.mark.parametrize("k", [1, 2, 3])
def test_topk_selectors_equal_enumerated_k_sets(k) -> None:
    problem = tiny_problem(mlp(7), (2, 2), 7, k=k)
    eps = [0.2, 0.1]
    verdict = Milp(early_stop=False, warm_start=False, bounds=BoundMethod.IBP).verify(problem, eps)
    assert verdict.bound == pytest.approx(-exact_optimum(problem, eps), abs=1e-5)
    # a zero box: the optimum is exactly minus the margin at the image
    point = Milp(early_stop=False, bounds=BoundMethod.IBP).verify(problem, [0.0, 0.0])
    assert point.bound == pytest.approx(float(problem.margin(problem.image[None]).detach()[0]), abs=1e-5)




@pytest.mark.parametrize("seed", range(4))
def test_cross_checks_with_attack_and_bounds(seed) -> None:
    problem = tiny_problem(conv_net(seed), (8, 8), seed)
    for radius in (0.02, 0.1, 0.3):
        eps = np.full(problem.num_rings, radius)
        eps[-1] = 0.0  # the farthest ring stays fixed: constants in the encoding
        exact = Milp(bounds=BoundMethod.IBP, time_limit=30).verify(problem, eps)
        attack = Attack(restarts=16, steps=60).verify(problem, eps)
        if attack.status is Status.NOT_ROBUST:
            assert exact.status is Status.NOT_ROBUST
        lo, hi = problem.box(eps)
        logits = network_bounds(problem.model, lo, hi, method=BoundMethod.IBP).layers[-1]
        upper_others = logits[1].clone()
        upper_others[problem.target] = -torch.inf
        if logits[0][problem.target] > upper_others.topk(problem.k).values[-1]:
            assert exact.status is Status.ROBUST
        if exact.status is Status.NOT_ROBUST:
            assert check_witness(problem, problem.check_eps(eps), exact.counterexample) is not None
        if exact.status is Status.ROBUST:  # sampling never beats a proof
            samples = lo + torch.rand((512, *lo.shape)) * (hi - lo)
            assert float(problem.margin(samples).detach().min()) > 0
            assert exact.bound <= float(problem.margin(samples).detach().min()) + 1e-4
        assert exact.status is not Status.UNKNOWN
        assert_settled_alike(Milp(bounds=BoundMethod.IBP, binary_budget=2).verify(problem, eps),
                             exact)


def assert_settled_alike(verdict: Verdict, exact: Verdict) -> None:
    """A relaxed or partial MILP may leave a query UNKNOWN, but what it settles, it settles
    as the exact MILP does."""
    if verdict.status is not Status.UNKNOWN:
        assert verdict.status is exact.status


def test_weakest_points_are_in_the_box_and_sorted() -> None:
    problem = tiny_problem(conv_net(11), (8, 8), 11)
    eps = np.full(problem.num_rings, 0.05)
    verdict = Milp(bounds=BoundMethod.IBP, early_stop=False, time_limit=20).verify(problem, eps)
    assert verdict.stats["model_status"] == "Optimal"
    lo, hi = problem.box(eps)
    assert verdict.weakest_points is not None
    assert bool(((verdict.weakest_points >= lo) & (verdict.weakest_points <= hi)).all())
    margins = problem.margin(verdict.weakest_points).detach()
    assert torch.allclose(margins, verdict.weakest_margins)
    assert bool((margins[1:] >= margins[:-1]).all())
    # the optimum's maximizer is among them, so the best margin meets the bound
    assert float(margins[0]) == pytest.approx(verdict.bound, abs=1e-3)


def test_tiny_time_limit_gives_unknown_and_registry_builds_milp() -> None:
    problem = tiny_problem(conv_net(3), (8, 8), 3)
    eps = np.full(problem.num_rings, 0.5)
    verdict = Milp(bounds=BoundMethod.IBP, time_limit=1e-4, warm_start=False).verify(problem, eps)
    assert verdict.status is Status.UNKNOWN
    milp = make_verifier("milp", time_limit=7.0)
    assert isinstance(milp, Milp) and milp.time_limit == 7.0
    assert isinstance(make_verifier("cascade").stages[-1], BranchAndBound)


def _two_conv(seed: int) -> nn.Sequential:
    """Seed-shaped (strided first conv, padded second conv, max-pool) but tiny."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4, 5))


def _second_conv_lp(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor,
                    first_bounds: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of every second-conv neuron over the triangle relaxation of the first ReLU
    layer, one LP per bound (scipy): the value optimized alpha-CROWN converges to."""
    n_in = lo.numel()
    first = copy.deepcopy(network[0]).double()
    with torch.no_grad():
        basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *lo.shape)
        bias1 = first(torch.zeros(1, *lo.shape, dtype=torch.float64)).reshape(-1)
        w1 = (first(basis).reshape(n_in, -1) - bias1).T.numpy()
        second = copy.deepcopy(network[2]).double()
        shape1 = first(basis[:1]).shape[1:]
        n_h = int(np.prod(shape1))
        bias2 = second(torch.zeros(1, *shape1, dtype=torch.float64)).reshape(-1)
        basis2 = torch.eye(n_h, dtype=torch.float64).reshape(n_h, *shape1)
        w2 = (second(basis2).reshape(n_h, -1) - bias2).T.numpy()
    l1, u1 = (t.reshape(-1).double().numpy() for t in first_bounds)
    bias1, bias2 = bias1.numpy(), bias2.numpy()
    # variables [z (n_in), h (n_h)]; h >= 0, h >= W1 z + b1, h <= chord (unstable), h = x (active)
    a_ub, b_ub, eq_rows, eq_rhs = [], [], [], []
    for i in range(n_h):
        row = np.zeros(n_in + n_h)
        if u1[i] <= 0:
            row[n_in + i] = 1.0
            eq_rows.append(row)
            eq_rhs.append(0.0)
        elif l1[i] >= 0:
            row[:n_in], row[n_in + i] = -w1[i], 1.0
            eq_rows.append(row)
            eq_rhs.append(bias1[i])
        else:
            lower = np.zeros(n_in + n_h)
            lower[:n_in], lower[n_in + i] = w1[i], -1.0  # W1 z + b1 - h <= 0
            a_ub.append(lower)
            b_ub.append(-bias1[i])
            slope = u1[i] / (u1[i] - l1[i])
            upper = np.zeros(n_in + n_h)
            upper[:n_in], upper[n_in + i] = -slope * w1[i], 1.0  # h <= s (W1 z + b1 - l)
            a_ub.append(upper)
            b_ub.append(slope * (bias1[i] - l1[i]))
    bounds = [*zip(lo.reshape(-1).double().numpy(), hi.reshape(-1).double().numpy(), strict=True),
              *[(0, None)] * n_h]
    low, high = np.zeros(w2.shape[0]), np.zeros(w2.shape[0])
    for j in range(w2.shape[0]):
        for sign, out in ((1.0, low), (-1.0, high)):
            cost = np.concatenate([np.zeros(n_in), sign * w2[j]])
            result = linprog(cost, A_ub=np.array(a_ub) if a_ub else None, b_ub=b_ub or None,
                             A_eq=np.array(eq_rows) if eq_rows else None, b_eq=eq_rhs or None,
                             bounds=bounds, method="highs")
            out[j] = sign * (result.fun + sign * bias2[j])
    return low, high


@pytest.mark.parametrize("seed", range(3))
def test_optimized_second_conv_bounds_are_sound_and_near_the_lp(seed) -> None:
    from ringcert.verify.milp.bounds import optimized_second_conv, supports_local

    network = _two_conv(seed)
    assert supports_local(network) and not supports_local(mlp(0))
    problem = tiny_problem(network, (6, 6), seed)
    eps = np.full(problem.num_rings, 0.15)
    lo, hi = problem.box(eps)
    crown = [(a.detach(), b.detach()) for a, b in
             network_bounds(network, lo, hi, method=BoundMethod.CROWN).layers]
    tight, stats = optimized_second_conv(network, lo, hi, crown, steps=60, select_all=True)
    low, up = tight[2]
    assert bool((low >= crown[2][0]).all() and (up <= crown[2][1]).all())
    samples = torch.cat([lo + torch.rand((2000, *lo.shape)) * (hi - lo),
                         torch.where(torch.rand((2000, *lo.shape)) < 0.5, lo, hi)])
    with torch.no_grad():
        values = network[:3](samples)
    assert bool((values >= low - 1e-5).all() and (values <= up + 1e-5).all())
    for index in range(3, len(network)):  # later layers stay sound too
        with torch.no_grad():
            out = network[:index + 1](samples)
        assert bool((out >= tight[index][0] - 1e-4).all() and (out <= tight[index][1] + 1e-4).all())
    lp_low, lp_high = _second_conv_lp(network, lo, hi, crown[0])
    chosen = (crown[2][1] > 0).reshape(-1).numpy() & (crown[2][1] > crown[2][0]).reshape(-1).numpy()
    # never tighter than the LP (soundness), and close to it (the optimization works)
    assert np.all(low.reshape(-1).numpy()[chosen] <= lp_low[chosen] + 1e-4)
    assert np.all(up.reshape(-1).numpy()[chosen] >= lp_high[chosen] - 1e-4)
    gap = (lp_low - low.reshape(-1).numpy())[chosen]
    width = (lp_high - lp_low)[chosen]
    assert np.all(gap <= 0.05 * width + 1e-3)
    assert stats["tightened_rows"] == int(chosen.sum())


@pytest.mark.parametrize("seed", range(3))
def test_tightened_and_pool_relaxed_milps_agree_with_the_exact_one(seed) -> None:
    problem = tiny_problem(_two_conv(seed), (6, 6), seed)
    gap = {"mip_rel_gap": 1e-4, "mip_abs_gap": 1e-5}
    for radius in (0.05, 0.2):
        eps = np.full(problem.num_rings, radius)
        exact = Milp(early_stop=False, time_limit=20, solver_options=gap).verify(problem, eps)
        tightened = Milp(early_stop=False, time_limit=20, tighten_steps=30,
                         solver_options=gap).verify(problem, eps)
        relaxed = Milp(early_stop=False, time_limit=20, pool_budget=1,
                       solver_options=gap).verify(problem, eps)
        assert exact.stats["model_status"] == tightened.stats["model_status"] == "Optimal"
        truth = exact_optimum_upper = -exact.bound  # max -m within the solver's gap
        assert -tightened.bound == pytest.approx(truth, abs=1e-3 + 1e-4 * abs(truth))
        assert -relaxed.bound >= exact_optimum_upper - 1e-3 - 1e-4 * abs(truth)  # a relaxation
        for verdict in (tightened, relaxed):
            assert_settled_alike(verdict, exact)


def test_falsification_phase_returns_a_checked_witness() -> None:
    problem = tiny_problem(_two_conv(4), (6, 6), 4)
    eps = np.full(problem.num_rings, 0.5)
    truth = Milp(bounds=BoundMethod.CROWN, time_limit=30).verify(problem, eps)
    verdict = Milp(attack_restarts=16, attack_steps=50, time_limit=30).verify(problem, eps)
    assert verdict.status is truth.status
    if verdict.status is Status.NOT_ROBUST:
        assert check_witness(problem, problem.check_eps(eps), verdict.counterexample) is not None
