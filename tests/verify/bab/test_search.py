"""Branch and bound (``verify/bab/search.py``) against exact answers and the MILP.

Ground truth from ``tests/fixtures.py``: the exact optimum ``max_box -m(z)`` by enumerating the
activation patterns of tiny seeded networks. Checks: BaB's verdict at epsilons just below
and just above the critical value (with the attack off, so NOT_ROBUST must come from a leaf
minimizer); BaB never ROBUST where the attack refutes, and agrees with the MILP wherever
both settle; every branch BaB bounds has a bound and layer bounds that hold on sampled
points of its domain (box and split constraints), the soundness of the clamped-bounds
recomputation, with and without beta-CROWN's split multipliers, which settle a query
plain CROWN branching cannot within the same branch budget; a tiny time or branch budget
gives UNKNOWN.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ringcert.verify.attack import Attack
from ringcert.verify.bab import BranchAndBound
from ringcert.verify.bab import search as bab
from ringcert.verify.bab.branching import Branch, SplitRule
from ringcert.verify.bounds import BoundMethod, network_bounds
from ringcert.verify.bounds.cache import LayerBoundsCache
from ringcert.verify.milp import Milp
from ringcert.verify.propagation import ENVELOPE_MIN_SECONDS, Crown
from ringcert.verify.registry import BAB_ENVELOPE_STEPS, ENVELOPE_GAP, make_verifier, search_verifier
from ringcert.verify.verdict import check_witness
from ringcert.vocabulary import PoolForm, Status, UnknownReason
from tests.fixtures import MILP_CASES, THRESHOLD_CASES, conv_net, exact_optimum, mlp, pooled, tiny_problem

# (factory, image shape, seed, k, epsilon direction): the MILP tests' threshold cases, plus
# three whose proof below the critical value needs ~100 branches (found by a scan)
CASES = [(*case, 2, None) for case in THRESHOLD_CASES] + [
    (mlp, (2, 2), 11, 1, [1 / 3, 1.0]),
    (pooled, (1, 3), 11, 1, [1 / 3, 1.0, 1.0]),
    (pooled, (1, 3), 29, 1, None),
]
DELTA = 0.003


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _critical(problem, direction: np.ndarray) -> float:
    """The scale where the exact optimum crosses zero, bisected on the MILP's optimum
    (exact up to the solver's gap; both sides are checked by enumeration afterwards)."""
    exact = Milp(bounds=BoundMethod.IBP, early_stop=False, warm_start=False)
    low, high = 0.0, 1.0
    for _ in range(14):
        mid = (low + high) / 2
        if exact.verify(problem, mid * direction).bound > 0:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@pytest.mark.parametrize(("factory", "shape", "seed"), MILP_CASES)
@pytest.mark.parametrize("radius", [0.05, 0.3])
@pytest.mark.parametrize("pool_form", list(PoolForm))
def test_verdict_and_bound_match_enumeration(factory, shape, seed, radius, pool_form) -> None:
    problem = tiny_problem(factory(seed), shape, seed)
    eps = [radius] + [radius / 2] * (problem.num_rings - 1)
    truth = exact_optimum(problem, eps)
    verdict = BranchAndBound(time_limit=30, pool_form=pool_form).verify(problem, eps)
    assert verdict.status is (Status.ROBUST if truth < 0 else Status.NOT_ROBUST)
    if verdict.bound is not None:
        assert verdict.bound <= -truth + 1e-5


@pytest.mark.parametrize(("factory", "shape", "seed"), MILP_CASES)
@pytest.mark.parametrize("radius", [0.05, 0.3])
def test_envelope_root_matches_enumeration(factory, shape, seed, radius) -> None:
    """With the root's second-layer bounds from the first layer's hull (``envelope_steps``),
    kept by every branch, the verdict and bound still agree with enumeration."""
    problem = tiny_problem(factory(seed), shape, seed)
    eps = [radius] + [radius / 2] * (problem.num_rings - 1)
    truth = exact_optimum(problem, eps)
    verdict = BranchAndBound(time_limit=30, envelope_steps=5).verify(problem, eps)
    assert verdict.status is (Status.ROBUST if truth < 0 else Status.NOT_ROBUST)
    if verdict.bound is not None:
        assert verdict.bound <= -truth + 1e-5


def test_hull_pass_runs_only_near_a_proof_with_time_left() -> None:
    """The root's hull pass cannot be interrupted: it runs when CROWN's root bound is above
    ``-envelope_gap`` and at least ``ENVELOPE_MIN_SECONDS`` are left, and is skipped
    otherwise (the verdict is the same either way on this query)."""
    problem = tiny_problem(mlp(11), (2, 2), 11, k=1)
    eps = [0.1, 0.3]  # robust (enumeration), CROWN's root bound is negative
    settings = {"attack_restarts": 0, "envelope_steps": 3}
    ran = BranchAndBound(time_limit=60, **settings).verify(problem, eps)
    gated = BranchAndBound(time_limit=60, envelope_gap=1e-9, **settings).verify(problem, eps)
    hurried = BranchAndBound(time_limit=ENVELOPE_MIN_SECONDS / 2, **settings).verify(problem, eps)
    assert "envelope_s" in ran.stats and ran.stats["root_bound"] < 0
    assert "envelope_s" not in gated.stats and "envelope_s" not in hurried.stats
    assert ran.status is gated.status is hurried.status is Status.ROBUST


@pytest.mark.parametrize(("rule", "pool_form"), [(rule, PoolForm.BEST) for rule in SplitRule]
                         + [(SplitRule.BABSR, PoolForm.RELAXED), (SplitRule.BABSR, PoolForm.RELU)])
@pytest.mark.parametrize(("factory", "shape", "seed", "k", "direction"), CASES)
def test_threshold_just_below_and_above_critical_eps(factory, shape, seed, k, direction, rule,
                                                     pool_form) -> None:
    problem = tiny_problem(factory(seed), shape, seed, k=k)
    direction = np.ones(problem.num_rings) if direction is None else np.array(direction)
    critical = _critical(problem, direction)
    below, above = (critical - DELTA) * direction, (critical + DELTA) * direction
    truth_below, truth_above = exact_optimum(problem, below), exact_optimum(problem, above)
    assert truth_below < 0 < truth_above
    verifier = BranchAndBound(time_limit=30, attack_restarts=0, split=rule, pool_form=pool_form)
    robust = verifier.verify(problem, below)
    assert robust.status is Status.ROBUST
    assert 0 < robust.bound <= -truth_below + 1e-5  # a sound lower bound on the margin
    refuted = verifier.verify(problem, above)
    assert refuted.status is Status.NOT_ROBUST
    assert check_witness(problem, problem.check_eps(above), refuted.counterexample) is not None
    assert refuted.bound <= -truth_above + 1e-5


@pytest.mark.parametrize("seed", range(4))
def test_never_robust_where_attack_refutes_and_agrees_with_milp(seed) -> None:
    problem = tiny_problem(conv_net(seed), (8, 8), seed)
    settled = 0
    for radius in (0.02, 0.1, 0.3):
        eps = np.full(problem.num_rings, radius)
        eps[-1] = 0.0
        verdict = BranchAndBound(time_limit=3).verify(problem, eps)
        attack = Attack(restarts=16, steps=60, seed=seed + 1).verify(problem, eps)
        milp = Milp(bounds=BoundMethod.IBP, time_limit=30).verify(problem, eps)
        if attack.status is Status.NOT_ROBUST:
            assert verdict.status is not Status.ROBUST
        if Status.UNKNOWN not in (verdict.status, milp.status):
            assert verdict.status is milp.status
            settled += 1
        lo, hi = problem.box(eps)
        points = verdict.weakest_points
        assert points is not None and bool(((points >= lo) & (points <= hi)).all())
        assert bool((verdict.weakest_margins[1:] >= verdict.weakest_margins[:-1]).all())
        if verdict.status is Status.NOT_ROBUST:
            assert check_witness(problem, problem.check_eps(eps), verdict.counterexample) is not None
        if verdict.status is Status.ROBUST:
            samples = lo + torch.rand((512, *lo.shape)) * (hi - lo)
            assert verdict.bound <= float(problem.margin(samples).detach().min()) + 1e-5
    assert settled >= 2


def _samples(problem, eps: np.ndarray, branches: list[Branch], count: int) -> torch.Tensor:
    """Uniform points and corners of the box, and every branch's minimizer."""
    lo, hi = problem.box(eps)
    uniform = lo + torch.rand((count, *lo.shape)) * (hi - lo)
    corners = torch.where(torch.rand((count, *lo.shape)) < 0.5, lo, hi)
    return torch.cat([uniform, corners, *(b.minimizer[None] for b in branches)])


@pytest.mark.parametrize(("factory", "shape", "seed", "k", "radii", "pool_form", "envelope_steps"), [
    (mlp, (2, 2), 11, 1, [0.1, 0.3], PoolForm.RELAXED, 0),
    (pooled, (1, 3), 29, 1, [0.8, 0.8, 0.8], PoolForm.RELAXED, 0),
    (conv_net, (8, 8), 0, 2, [0.08] * 7 + [0.0], PoolForm.RELAXED, 0),
    (conv_net, (8, 8), 1, 2, [0.1] * 7 + [0.0], PoolForm.RELAXED, 0),
    # in the ReLU form the last two cases settle within 4 branches (too few): other boxes
    (pooled, (1, 3), 29, 1, [0.8, 0.8, 0.8], PoolForm.RELU, 0),
    (conv_net, (8, 8), 0, 2, [0.048] * 7 + [0.0], PoolForm.RELU, 0),
    (conv_net, (8, 8), 3, 2, [0.4] * 7 + [0.0], PoolForm.RELU, 0),
    # the root's second-layer bounds from the hull, in both forms
    (mlp, (2, 2), 11, 1, [0.1, 0.3], PoolForm.RELAXED, 5),
    (conv_net, (8, 8), 1, 2, [0.1] * 7 + [0.0], PoolForm.RELAXED, 5),
    (conv_net, (8, 8), 3, 2, [0.4] * 7 + [0.0], PoolForm.RELU, 5),
])
@pytest.mark.parametrize("beta_steps", [0, 10])
def test_every_branch_bound_holds_on_its_domain(factory, shape, seed, k, radii, beta_steps,
                                                pool_form, envelope_steps, monkeypatch) -> None:
    problem = tiny_problem(factory(seed), shape, seed, k=k)
    eps = np.array(radii[: problem.num_rings])
    bounded: list[Branch] = []

    def recording(*args, **kwargs):
        found = bab_children(*args, **kwargs)
        if found is not None:
            bounded.extend(found[0])
        return found

    bab_children = bab.children
    monkeypatch.setattr(bab, "children", recording)
    verifier = BranchAndBound(time_limit=60, attack_restarts=0, max_branches=80,
                              beta_steps=beta_steps, pool_form=pool_form,
                              envelope_steps=envelope_steps)
    verdict = verifier.verify(problem, eps)
    assert ("envelope_s" in verdict.stats) == (envelope_steps > 0)
    if envelope_steps:  # the hull narrowed the second layer's bounds, and every branch kept that
        end = verifier.first_block(problem).end
        crown = network_bounds(problem.model, *problem.box(eps), method=BoundMethod.CROWN).layers[end]
        assert all(float((b.layers[end][1] - b.layers[end][0]).sum()) < float((crown[1] - crown[0]).sum())
                   for b in bounded)
    # the branches bound the network in the asked form (the mlp has no max-pool to rewrite)
    relu = verifier.relu_form(problem)
    assert (relu is None) == (factory is mlp)
    network = relu if pool_form is PoolForm.RELU and relu is not None else problem.model
    assert len(bounded) >= 6 and max(len(b.splits) for b in bounded) >= 2
    if beta_steps:  # the split multipliers were used (they prove the mlp case in 6 branches)
        assert any(b.betas is not None and bool(b.betas.any()) for b in bounded)
    if factory is not mlp and pool_form is PoolForm.RELAXED:  # max-pool splits were made
        assert any(split.threshold > 0 for b in bounded for split in b.splits)
    torch.manual_seed(seed)
    pool = _samples(problem, eps, bounded, 4000)
    checked, deepest = 0, 0
    with torch.no_grad():
        margins = problem.margin(pool)
        for branch in bounded:
            inside = branch.satisfies(network, pool)
            if not bool(inside.any()):
                continue
            checked += 1
            deepest = max(deepest, len(branch.splits))
            assert float(margins[inside].min()) >= branch.lower - 1e-5
            x = pool[inside]
            for layer, (lower, upper) in zip(network, branch.layers, strict=True):
                x = layer(x)
                assert bool((x >= lower - 1e-4).all() and (x <= upper + 1e-4).all())
    assert checked >= len(bounded) // 4 and deepest >= 2


def test_split_multipliers_prove_with_fewer_branches() -> None:
    """A robust query (exact optimum -0.0005 by enumeration) that plain CROWN branching
    leaves open after 80 branches and beta-CROWN's multipliers settle well within them."""
    problem = tiny_problem(mlp(11), (2, 2), 11, k=1)
    eps = [0.15, 0.3]
    assert exact_optimum(problem, eps) < 0
    plain = BranchAndBound(attack_restarts=0, max_branches=80, beta_steps=0).verify(problem, eps)
    beta = BranchAndBound(attack_restarts=0, max_branches=80, beta_steps=10).verify(problem, eps)
    assert plain.status is Status.UNKNOWN and plain.stats["branches"] >= 80
    assert beta.status is Status.ROBUST and beta.stats["branches"] < 40
    assert 0 < beta.bound <= -exact_optimum(problem, eps) + 1e-5


def test_gap_gate_skips_only_queries_far_from_a_proof() -> None:
    """With ``max_gap`` (searches), a hint bound below ``-max_gap`` answers UNKNOWN at once
    (never ROBUST); above it branch and bound runs and proves the query."""
    problem = tiny_problem(mlp(11), (2, 2), 11, k=1)
    eps = [0.1, 0.3]  # robust, but not by CROWN
    crown = Crown().verify(problem, eps)
    assert crown.status is Status.UNKNOWN and crown.bound is not None
    gated = BranchAndBound(attack_restarts=0, max_gap=-crown.bound / 2)
    skipped = gated.verify(problem, eps, hint=crown)
    assert skipped.status is Status.UNKNOWN and skipped.reason is UnknownReason.SKIPPED_GAP
    assert skipped.bound == crown.bound
    assert BranchAndBound(attack_restarts=0, max_gap=-crown.bound * 2).verify(
        problem, eps, hint=crown).status is Status.ROBUST


def test_tiny_budgets_give_unknown_and_registry_builds_bab() -> None:
    problem = tiny_problem(mlp(11), (2, 2), 11, k=1)
    eps = [0.1, 0.3]  # robust (enumeration), but CROWN alone cannot prove it
    assert exact_optimum(problem, eps) < 0
    assert BranchAndBound(time_limit=30, attack_restarts=0).verify(problem, eps).robust
    for verifier in (BranchAndBound(time_limit=1e-4, attack_restarts=0),
                     BranchAndBound(max_branches=1, attack_restarts=0)):
        verdict = verifier.verify(problem, eps)
        assert verdict.status is Status.UNKNOWN
        assert verdict.bound is not None and verdict.bound < 0
    slow = tiny_problem(conv_net(1), (8, 8), 1)
    eps = np.full(slow.num_rings, 0.1)
    eps[-1] = 0.0  # robust by the MILP, not by the root bound: BaB needs ~30 branches
    assert BranchAndBound(time_limit=0.01).verify(slow, eps).status is Status.UNKNOWN
    assert BranchAndBound(time_limit=30).verify(slow, eps).status is Status.ROBUST
    cache = LayerBoundsCache()  # as in a cascade: CROWN's layer bounds are reused
    assert not Crown(cache=cache).verify(problem, [0.1, 0.3]).robust
    assert BranchAndBound(cache=cache, attack_restarts=0).verify(problem, [0.1, 0.3]).robust
    built = make_verifier("bab", time_limit=7.0)
    assert isinstance(built, BranchAndBound) and built.time_limit == 7.0
    complete = make_verifier("cascade", time_limit=5.0, complete_gap=1.0).stages[-1]
    assert isinstance(complete, BranchAndBound) and complete.max_gap == 1.0
    assert complete.time_limit == 5.0 and complete.cache is not None
    # the hull at the root for single queries, not in searches
    assert built.envelope_steps == complete.envelope_steps == BAB_ENVELOPE_STEPS > 0
    assert built.envelope_gap == complete.envelope_gap == ENVELOPE_GAP
    assert search_verifier("bab").envelope_steps == 0
    assert search_verifier("cascade").stages[-1].envelope_steps == 0
