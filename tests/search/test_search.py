"""Searches on an affine-margin network whose exact robust set is a known simplex."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ringcert.search import BudgetSettings, GuidedSettings, NaiveSettings, UniformSettings, run_search
from ringcert.search.budget import QUERY_SHARE, Budget, BudgetExhausted
from ringcert.search.guided import guided_search
from ringcert.search.maximality import maximality_pass
from ringcert.search.naive import naive_search
from ringcert.search.oracle import Oracle
from ringcert.search.shrink import cutting_weights, fixed_weights, ring_saliency
from ringcert.search.uniform import uniform_search
from ringcert.vocabulary import Algorithm, GradientSource, MaximalityStatus, Shrink, Status
from tests.search.affine import PAD, ExactAffineVerifier, FlakyVerifier, affine_case

SEEDS = [0, 1, 2, 3]
DELTA = 0.01


def _bump(eps: np.ndarray, ring: int, delta: float) -> np.ndarray:
    out = eps.copy()
    out[ring] = min(1.0, out[ring] + delta)
    return out


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("seed", SEEDS)
def test_result_lies_in_the_exact_robust_simplex_and_reverifies(algorithm, seed):
    case = affine_case(seed)
    verifier = ExactAffineVerifier(case)
    result = run_search(case.problem, verifier, algorithm=algorithm)
    eps = np.asarray(result.epsilon)
    assert eps.min() >= 0 and eps.max() <= 1
    assert case.inside(eps), f"A.eps = {case.ring_weight @ eps} >= m0 = {case.m0}"
    assert ExactAffineVerifier(case).verify(case.problem, eps).status is Status.ROBUST
    assert result.size == pytest.approx(case.problem.size(eps))
    assert result.queries["total"] == verifier.calls
    assert result.queries["total"] == result.search_queries + result.maximality_queries


@pytest.mark.parametrize("algorithm", [Algorithm.NAIVE, Algorithm.GUIDED])
@pytest.mark.parametrize("seed", SEEDS)
def test_naive_and_guided_are_maximal_within_delta(algorithm, seed):
    case = affine_case(seed)
    result = run_search(case.problem, ExactAffineVerifier(case), algorithm=algorithm)
    eps = np.asarray(result.epsilon)
    for ring, status in enumerate(result.maximality):
        if eps[ring] >= 1.0:
            assert status is MaximalityStatus.SATURATED
            continue
        # exact: one more delta step in this ring leaves the simplex (or lands within PAD)
        assert case.exact_min_margin(_bump(eps, ring, DELTA)) <= PAD
        assert status in (MaximalityStatus.REFUTED, MaximalityStatus.UNPROVEN)
    free = int(np.flatnonzero(case.ring_weight == 0)[0])
    assert eps[free] == 1.0  # a ring that cannot move the margin saturates


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_is_the_largest_uniform_radius_on_the_grid(seed):
    case = affine_case(seed, free_ring=None)
    result = run_search(case.problem, ExactAffineVerifier(case), algorithm=Algorithm.UNIFORM)
    eps = np.asarray(result.epsilon)
    assert np.all(eps == eps[0])
    exact_radius = case.m0 / case.ring_weight.sum()  # A . (s 1) = m0
    assert eps[0] < exact_radius
    assert eps[0] + DELTA >= exact_radius - 1e-9


@pytest.mark.parametrize("seed", SEEDS)
def test_layered_results_are_at_least_the_uniform_size(seed):
    case = affine_case(seed)
    sizes = {algorithm: run_search(case.problem, ExactAffineVerifier(case),
                                   algorithm=algorithm).size for algorithm in Algorithm}
    assert sizes[Algorithm.GUIDED] > sizes[Algorithm.UNIFORM]
    assert sizes[Algorithm.NAIVE] > sizes[Algorithm.UNIFORM]


@pytest.mark.parametrize("shrink", list(Shrink))
@pytest.mark.parametrize("gradient", list(GradientSource))
def test_guided_variants_stay_sound_and_maximal(shrink, gradient):
    case = affine_case(5)
    settings = GuidedSettings(shrink=shrink, gradient=gradient)
    result = run_search(case.problem, ExactAffineVerifier(case), algorithm=Algorithm.GUIDED,
                        settings=settings)
    eps = np.asarray(result.epsilon)
    assert case.inside(eps)
    assert all(case.exact_min_margin(_bump(eps, d, DELTA)) <= PAD
               for d in range(len(eps)) if eps[d] < 1)
    assert result.settings["shrink"] == shrink.value
    assert result.settings["gradient"] == gradient.value


def _run_directly(algorithm, oracle):
    try:
        if algorithm is Algorithm.UNIFORM:
            uniform_search(oracle, UniformSettings())
        elif algorithm is Algorithm.NAIVE:
            naive_search(oracle, NaiveSettings())
        else:
            guided_search(oracle, GuidedSettings())
    except BudgetExhausted:
        pass
    return maximality_pass(oracle, oracle.best, delta=DELTA,
                           grow=algorithm is not Algorithm.UNIFORM)


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("seed", SEEDS)
def test_accept_reject_decisions_respect_monotonicity(algorithm, seed):
    """With an incomplete (randomly UNKNOWN) verifier, no accepted vector ever lies above a
    rejected one, and UNKNOWN is never accepted."""
    case = affine_case(seed)
    flaky = FlakyVerifier(ExactAffineVerifier(case), rate=0.3, seed=seed)
    oracle = Oracle(case.problem, flaky, Budget())
    eps, _ = _run_directly(algorithm, oracle)
    accepted = [d.eps for d in oracle.log if d.robust]
    rejected = [d.eps for d in oracle.log if not d.robust]
    assert rejected, "the search never hit the boundary; the test would be vacuous"
    for good in accepted:
        assert case.inside(good)
        for bad in rejected:
            assert not np.all(bad <= good)
    assert all(d.status is not Status.UNKNOWN for d in oracle.log if d.robust)
    assert any(np.array_equal(eps, proved) for proved in oracle.proved)
    assert case.inside(eps)


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("limit", [0, 1, 4, 12])
def test_query_budget_is_honoured(algorithm, limit):
    case = affine_case(1)
    verifier = ExactAffineVerifier(case)
    result = run_search(case.problem, verifier, algorithm=algorithm,
                        budget=BudgetSettings(max_queries=limit))
    assert verifier.calls <= limit
    assert result.queries["total"] == verifier.calls
    assert case.inside(np.asarray(result.epsilon))
    unlimited = run_search(case.problem, ExactAffineVerifier(case), algorithm=algorithm)
    if unlimited.queries["total"] > limit:
        assert result.budget_exhausted
        assert MaximalityStatus.UNCHECKED in result.maximality


def test_time_budget_stops_before_any_query():
    case = affine_case(2)
    verifier = ExactAffineVerifier(case)
    result = run_search(case.problem, verifier, algorithm=Algorithm.GUIDED,
                        budget=BudgetSettings(time_limit=0.0))
    assert verifier.calls == 0
    assert result.epsilon == (0.0,) * case.problem.num_rings
    assert result.budget_exhausted


def test_each_query_gets_at_most_a_share_of_the_remaining_time():
    """A slow complete stage cannot eat a short analysis: every query's cap is at most
    QUERY_SHARE of the time the search has left, and none without a time limit."""
    case = affine_case(4)
    verifier = ExactAffineVerifier(case)
    run_search(case.problem, verifier, algorithm=Algorithm.GUIDED,
               budget=BudgetSettings(time_limit=60.0))
    assert verifier.calls > 0
    assert all(limit is not None and 0 < limit <= QUERY_SHARE * 60.0 for limit in verifier.limits)
    unlimited = ExactAffineVerifier(case)
    run_search(case.problem, unlimited, algorithm=Algorithm.GUIDED)
    assert unlimited.limits == [None] * unlimited.calls


def test_oracle_answers_dominated_vectors_from_its_cache():
    case = affine_case(3)
    verifier = ExactAffineVerifier(case)
    oracle = Oracle(case.problem, verifier, Budget())
    small = np.full(case.problem.num_rings, 1e-3)
    assert oracle.decide(small).robust
    assert oracle.decide(small / 2).cached
    big = np.full(case.problem.num_rings, 0.5)
    failed = oracle.decide(big)
    assert failed.status is Status.NOT_ROBUST and not failed.cached
    again = oracle.decide(np.full(case.problem.num_rings, 0.6))
    assert again.cached and again.status is Status.NOT_ROBUST
    assert verifier.calls == 2


def test_fixed_cutting_weights_follow_the_seed():
    cw = fixed_weights(5)  # r = 4
    assert np.allclose(cw, [4 / 5, 3 / 5, 2 / 5, 1 / 5, 0])


def test_sensitivity_weights_shrink_sensitive_rings_more():
    case = affine_case(4)
    saliency = ring_saliency(case.problem)
    per_ring_mean = case.ring_weight / case.problem.ring_sizes
    assert np.allclose(saliency, per_ring_mean, rtol=1e-4, atol=1e-7)
    cw = cutting_weights(case.problem, Shrink.SENSITIVITY)
    assert cw.min() == pytest.approx(0) and cw.max() == pytest.approx(1)
    assert np.all(np.diff(cw[np.argsort(saliency)]) <= 1e-12)


def test_result_serializes_to_json():
    case = affine_case(0)
    result = run_search(case.problem, ExactAffineVerifier(case), algorithm=Algorithm.NAIVE)
    record = json.loads(json.dumps(result.to_json()))
    assert record["algorithm"]["name"] == "naive"
    assert record["algorithm"]["delta"] == DELTA
    assert len(record["maximality"]) == case.problem.num_rings
    assert record["queries"]["total"] == result.queries["total"]
    with pytest.raises(AttributeError):
        result.size = 3.0  # frozen


def test_adaptive_weights_follow_the_weakest_point() -> None:
    """At the image the adaptive rule is the sensitivity rule; at another point it ranks the
    rings by that point's saliency (on a ReLU network, where the two differ)."""
    from tests.fixtures import make_problem, net_b

    network, shape = net_b(1)
    problem = make_problem(network, shape, 1, k=1)
    sensitivity = cutting_weights(problem, Shrink.SENSITIVITY)
    assert np.allclose(cutting_weights(problem, Shrink.ADAPTIVE), sensitivity)
    assert np.allclose(cutting_weights(problem, Shrink.ADAPTIVE, at=problem.image), sensitivity)
    generator = torch.Generator().manual_seed(0)
    elsewhere = torch.rand(problem.image.shape, generator=generator)
    saliency = ring_saliency(problem, elsewhere)
    adaptive = cutting_weights(problem, Shrink.ADAPTIVE, at=elsewhere)
    assert not np.allclose(adaptive, sensitivity)
    assert adaptive.min() == pytest.approx(0) and adaptive.max() == pytest.approx(1)
    assert np.all(np.diff(adaptive[np.argsort(saliency)]) <= 1e-12)
    assert np.allclose(cutting_weights(problem, Shrink.SENSITIVITY, at=elsewhere), sensitivity)
