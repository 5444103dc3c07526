"""The attack frontier against exact boundaries, and its witnesses against plain forward passes.

On the affine test network the robust set is the simplex ``A . eps < m0`` (no clipping
below 0.5), so the per-ring boundary with the other rings fixed and the ray's breaking
scale are known in closed form: the frontier must lie at or above them (its witnesses are
real) and within ``delta`` (rings) or the ray tolerance (scale) of them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ringcert.search.frontier import (
    Frontier,
    FrontierSettings,
    RingFrontier,
    attack_frontier,
    refuted_by_frontier,
)
from ringcert.search.result import SearchResult
from ringcert.verify.verdict import check_witness
from ringcert.vocabulary import Algorithm, MaximalityStatus
from tests.search.affine import affine_case

DELTA = 0.01
FAST = FrontierSettings(restarts=4, steps=40, ring_restarts=2, ring_steps=40)


def _inside_vector(case, share: float) -> np.ndarray:
    """A robust vector: ``share`` of the way to the simplex's face along the uniform ray."""
    return np.full(case.problem.num_rings, share * case.m0 / case.ring_weight.sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_ring_frontier_equals_the_exact_boundary_within_delta(seed) -> None:
    case = affine_case(seed)
    eps = _inside_vector(case, 0.5)
    frontier = attack_frontier(case.problem, eps, delta=DELTA, settings=FAST)
    weight = case.ring_weight
    for ring, found in enumerate(frontier.rings):
        rest = case.m0 - float(weight @ eps) + weight[ring] * eps[ring]
        if weight[ring] == 0 or rest / weight[ring] > 0.5:  # no epsilon <= 1 breaks this ring
            assert found.upper is None, ring
            continue
        exact = rest / weight[ring]
        assert found.upper is not None, ring
        assert exact - 1e-6 <= found.upper <= exact + DELTA + 1e-6, (ring, exact, found.upper)
        vector = eps.copy()
        vector[ring] = found.upper
        assert check_witness(case.problem, torch.as_tensor(vector), found.witness) is not None


@pytest.mark.parametrize("seed", [0, 3])
def test_ray_frontier_equals_the_exact_breaking_scale(seed) -> None:
    case = affine_case(seed)
    eps = _inside_vector(case, 0.8)
    exact = case.m0 / float(case.ring_weight @ eps)  # clip(s eps) = s eps: s * max(eps) < 0.5
    assert exact * eps.max() < 0.5
    frontier = attack_frontier(case.problem, eps, delta=DELTA, settings=FAST)
    assert frontier.ray_scale is not None
    assert exact - 1e-6 <= frontier.ray_scale <= exact * (1 + FAST.ray_tolerance) + 1e-6
    box = torch.as_tensor(np.clip(frontier.ray_scale * eps, 0, 1))
    assert check_witness(case.problem, box, frontier.ray_witness) is not None


def test_zero_vector_has_no_ray_and_json_round_trips() -> None:
    case = affine_case(0)
    frontier = attack_frontier(case.problem, np.zeros(case.problem.num_rings), settings=FAST)
    assert frontier.ray_scale is None
    record = frontier.to_json()
    assert len(record["rings"]) == case.problem.num_rings
    assert record["unbreakable"] == [ring.upper is None for ring in frontier.rings]


def test_frontier_on_a_shipped_model_lies_above_a_certificate() -> None:
    """A CROWN-certified vector of the shipped undefended model: every ring's frontier is at
    or above it (a witness below it would break a proof) and every witness breaks the top-k."""
    from ringcert.models.modelfile import load_model
    from ringcert.samples import sample_problem, test_sample
    from ringcert.verify.propagation import Crown

    problem = sample_problem(load_model("none").network, test_sample(0))
    eps = np.full(problem.num_rings, 0.002)
    assert Crown().verify(problem, eps).robust
    frontier = attack_frontier(problem, eps, settings=FAST)
    broken = [(ring, found) for ring, found in enumerate(frontier.rings) if found.upper is not None]
    assert broken, "the attack should break some rings at epsilon up to 1"
    for ring, found in broken:
        assert found.upper >= eps[ring]
        vector = eps.copy()
        vector[ring] = found.upper
        margin = check_witness(problem, torch.as_tensor(vector), found.witness)
        assert margin is not None and margin == pytest.approx(found.margin, abs=1e-5)
    assert frontier.ray_scale is None or frontier.ray_scale >= 1.0


def _search(statuses: list[MaximalityStatus], eps: list[float]) -> SearchResult:
    return SearchResult(algorithm=Algorithm.GUIDED, settings={}, epsilon=tuple(eps), size=sum(eps),
                        maximality=tuple(statuses), queries={"total": 1}, search_queries=1,
                        maximality_queries=0, time_s=0.0, maximality_time_s=0.0, budget_exhausted=False)


def test_a_frontier_within_delta_refutes_an_unproven_ring_and_nothing_else() -> None:
    unproven, saturated = MaximalityStatus.UNPROVEN, MaximalityStatus.SATURATED
    search = _search([unproven, unproven, MaximalityStatus.UNCHECKED, saturated], [0.1, 0.1, 0.2, 1.0])
    rings = (RingFrontier(upper=0.105, margin=-0.1, witness=None),  # within delta: refuted
             RingFrontier(upper=0.2, margin=-0.1, witness=None),  # beyond delta: still unproven
             RingFrontier(upper=0.21, margin=-0.1, witness=None),  # unchecked, within delta
             RingFrontier(upper=None, margin=None, witness=None))
    frontier = Frontier(ray_scale=None, ray_margin=None, ray_witness=None, rings=rings, time_s=0.0)
    updated = refuted_by_frontier(search, frontier, delta=DELTA)
    assert updated.maximality == (MaximalityStatus.REFUTED, unproven, MaximalityStatus.REFUTED, saturated)
