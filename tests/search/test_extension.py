"""The ray extension against exact boundaries: the affine network's ray breaks at a known
scale, the enumerable networks have exact margins; and what an extension does to a result."""

from __future__ import annotations

import numpy as np
import pytest

from ringcert.analysis import analyze
from ringcert.options import AnalysisOptions
from ringcert.search.extension import EXTENSION_SCALES, Extension, extend_along_ray, extended, scaled
from ringcert.search.result import SearchResult
from ringcert.verify.registry import extension_verifier
from ringcert.vocabulary import Algorithm, MaximalityStatus, Status
from tests.fixtures import MILP_CASES, exact_optimum, tiny_problem
from tests.search.affine import ExactAffineVerifier, affine_case


@pytest.mark.parametrize("boundary", [1.03, 1.07, 1.3, 1.7, 2.2])
def test_the_climb_keeps_the_last_scale_below_the_exact_boundary(boundary: float) -> None:
    """The ray of ``eps`` leaves the robust simplex at ``boundary`` exactly: the extension
    keeps the largest ladder scale below it and stops at the first one above."""
    case = affine_case(0)
    ray = np.full(case.problem.num_rings, 1.0)
    eps = ray * case.m0 / float(case.ring_weight @ ray) / boundary
    found = extend_along_ray(case.problem, eps, ExactAffineVerifier(case))
    below = [scale for scale in EXTENSION_SCALES if scale < boundary - 1e-6]
    assert found.scale == (below[-1] if below else 1.0)
    assert [rung.scale for rung in found.rungs] == list(EXTENSION_SCALES[:len(below) + 1])
    assert found.rungs[-1].status is not Status.ROBUST
    for rung in found.rungs:
        assert (rung.status is Status.ROBUST) == case.inside(scaled(eps, rung.scale))


def test_a_zero_vector_or_a_saturated_ray_asks_nothing() -> None:
    case = affine_case(1)
    verifier = ExactAffineVerifier(case)
    assert extend_along_ray(case.problem, np.zeros(case.problem.num_rings), verifier).rungs == ()
    assert extend_along_ray(case.problem, np.ones(case.problem.num_rings), verifier).rungs == ()
    assert verifier.calls == 0


@pytest.mark.parametrize(("builder", "shape", "seed"), MILP_CASES)
def test_the_envelope_extension_never_proves_a_vector_enumeration_refutes(builder, shape, seed) -> None:
    """The shipped extension verifier on networks small enough to enumerate: every scale it
    proves is robust exactly, starting from half the largest robust uniform radius."""
    problem = tiny_problem(builder(seed), shape, seed)
    radii = [r for r in np.linspace(0.01, 0.5, 50) if exact_optimum(problem, [r] * problem.num_rings) < 0]
    if not radii:
        pytest.skip("not robust at any radius")
    eps = np.full(problem.num_rings, radii[-1] / 2)
    found = extend_along_ray(problem, eps, extension_verifier())
    for rung in found.rungs:
        if rung.status is Status.ROBUST:
            assert exact_optimum(problem, list(scaled(eps, rung.scale))) < 0
    assert found.scale == max([1.0] + [r.scale for r in found.rungs if r.status is Status.ROBUST])


def test_the_extension_proves_something_where_it_applies() -> None:
    """Not vacuous: on an enumerable network with the envelope's block it proves the first
    rung above half the largest robust radius."""
    problem = tiny_problem(MILP_CASES[0][0](0), MILP_CASES[0][1], 0)
    radii = [r for r in np.linspace(0.01, 0.5, 50) if exact_optimum(problem, [r] * problem.num_rings) < 0]
    found = extend_along_ray(problem, np.full(problem.num_rings, radii[-1] / 2), extension_verifier())
    assert found.scale > 1.0


def _search(eps: list[float], statuses: list[MaximalityStatus], size: float) -> SearchResult:
    return SearchResult(algorithm=Algorithm.GUIDED, settings={}, epsilon=tuple(eps), size=size,
                        maximality=tuple(statuses), queries={"total": 1}, search_queries=1,
                        maximality_queries=0, time_s=0.0, maximality_time_s=0.0,
                        budget_exhausted=False)


def test_an_extended_result_keeps_only_the_statuses_that_still_hold() -> None:
    case = affine_case(2)
    rings = case.problem.num_rings
    eps = [0.1, 0.2, 1.0, 0.95, 0.3] + [0.0] * (rings - 5)
    statuses = [MaximalityStatus.REFUTED, MaximalityStatus.UNPROVEN, MaximalityStatus.SATURATED,
                MaximalityStatus.EXPANDABLE, MaximalityStatus.UNCHECKED] + \
        [MaximalityStatus.UNPROVEN] * (rings - 5)
    search = _search(eps, statuses, case.problem.size(np.array(eps)))
    same = Extension(base=tuple(eps), scale=1.0, rungs=(), time_s=0.0)
    assert extended(search, same, case.problem) is search
    grown = extended(search, Extension(base=tuple(eps), scale=1.1, rungs=(), time_s=0.0), case.problem)
    assert np.allclose(grown.epsilon[:5], [0.11, 0.22, 1.0, 1.0, 0.33])
    assert grown.maximality[:5] == (MaximalityStatus.REFUTED, MaximalityStatus.UNCHECKED,
                                    MaximalityStatus.SATURATED, MaximalityStatus.SATURATED,
                                    MaximalityStatus.UNCHECKED)
    assert grown.size == pytest.approx(case.problem.size(np.array(grown.epsilon)))
    assert grown.size > search.size


def test_analyze_with_extend_reports_a_vector_on_the_ray_it_proved() -> None:
    problem = tiny_problem(MILP_CASES[0][0](0), MILP_CASES[0][1], 0)
    result = analyze(problem, AnalysisOptions(extend=True, max_queries=30, time_limit=None,
                                              frontier=False))
    assert result.extension is not None
    record = result.to_json()
    assert record["extension"]["scale"] == result.extension.scale
    assert np.allclose(result.epsilon, scaled(result.extension.base, result.extension.scale))
    assert result.size == pytest.approx(problem.size(result.epsilon))
    if result.extension.scale > 1.0:
        worst = exact_optimum(problem, list(result.epsilon))
        assert worst < 0
    plain = analyze(problem, AnalysisOptions(max_queries=30, time_limit=None, frontier=False))
    assert plain.extension is None and plain.to_json()["extension"] is None
    assert np.allclose(plain.epsilon, result.extension.base)  # the same search ran first


def test_extend_enters_a_task_s_settings_only_when_on() -> None:
    assert "extend" not in AnalysisOptions().to_settings()
    settings = AnalysisOptions(extend=True).to_settings()
    assert settings["extend"] is True
    assert AnalysisOptions.from_settings(settings) == AnalysisOptions(extend=True)
