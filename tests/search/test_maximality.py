"""The maximality pass: the batched screen against the sequential pass on small networks.

The eps vectors come from a guided search with attack and CROWN only, so they sit at
CROWN's limit: their steps need the complete stage (a MILP, exact on these networks) to be
settled, which is where the batched pass differs in route from the sequential one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ringcert.search import BudgetSettings, run_search
from ringcert.search.budget import Budget
from ringcert.search.maximality import maximality_pass
from ringcert.search.oracle import Oracle
from ringcert.verify.attack import Attack
from ringcert.verify.cascade import Cascade
from ringcert.verify.milp import Milp
from ringcert.verify.propagation import Crown
from ringcert.verify.verdict import check_witness
from ringcert.vocabulary import Algorithm, MaximalityStatus, VerifierKind
from tests.fixtures import conv_net, pooled, tiny_problem

DELTA = 0.02
CASES = [(pooled, (1, 3), 1), (conv_net, (8, 8), 1), (conv_net, (8, 8), 3)]


def _complete() -> Cascade:
    return Cascade(stages=[Attack(), Crown(), Milp(time_limit=5.0)])


def _at_crowns_limit(build, shape, seed):
    problem = tiny_problem(build(seed), shape, seed, k=1)
    found = run_search(problem, Cascade(stages=[Attack(), Crown()]), algorithm=Algorithm.GUIDED,
                       budget=BudgetSettings(max_queries=40))
    return problem, np.asarray(found.epsilon)


def _pass(problem, eps, *, batched: bool, grow: bool):
    oracle = Oracle(problem, _complete(), Budget())
    oracle.proved.append(eps)
    out, statuses = maximality_pass(oracle, eps, delta=DELTA, grow=grow, batched=batched)
    return oracle, out, statuses


@pytest.mark.parametrize(("build", "shape", "seed"), CASES)
def test_batched_pass_gives_the_sequential_statuses(build, shape, seed) -> None:
    """The screen changes which stage settles a step, never its status."""
    problem, eps = _at_crowns_limit(build, shape, seed)
    _, seq_eps, sequential = _pass(problem, eps, batched=False, grow=False)
    oracle, bat_eps, batched = _pass(problem, eps, batched=True, grow=False)
    assert batched == sequential
    assert MaximalityStatus.UNCHECKED not in batched
    assert np.array_equal(bat_eps, eps) and np.array_equal(seq_eps, eps)
    resumed = [d.verdict for d in oracle.log if d.verdict is not None]
    assert all(v.stages[0].verifier is VerifierKind.CROWN for v in resumed)


def test_batched_growth_matches_the_sequential_one() -> None:
    problem, eps = _at_crowns_limit(*CASES[0])
    _, seq_eps, sequential = _pass(problem, eps, batched=False, grow=True)
    oracle, bat_eps, batched = _pass(problem, eps, batched=True, grow=True)
    assert batched == sequential
    assert np.array_equal(bat_eps, seq_eps)
    assert bat_eps[1] > eps[1]  # ring 1's step was provable: it grew
    assert any(np.array_equal(bat_eps, vector) for vector in oracle.proved)


def test_the_cases_exercise_every_outcome() -> None:
    """Guard against a vacuous comparison: the cases meet refuted, expandable and unproven
    steps, and some steps need the complete stage after the screen."""
    seen: set[MaximalityStatus] = set()
    resumed = 0
    for case in CASES:
        problem, eps = _at_crowns_limit(*case)
        oracle, _, statuses = _pass(problem, eps, batched=True, grow=False)
        seen.update(statuses)
        resumed += sum(1 for d in oracle.log if d.verdict is not None)
    assert {MaximalityStatus.REFUTED, MaximalityStatus.EXPANDABLE, MaximalityStatus.UNPROVEN} <= seen
    assert resumed > 0


@pytest.mark.parametrize(("build", "shape", "seed"), CASES[:2])
def test_every_refuted_ring_holds_a_checked_witness(build, shape, seed) -> None:
    """From the grown vector: a witness found at the start vector stays one (monotone)."""
    problem, eps = _at_crowns_limit(build, shape, seed)
    oracle, out, statuses = _pass(problem, eps, batched=True, grow=True)
    assert MaximalityStatus.REFUTED in statuses
    for ring, status in enumerate(statuses):
        if status is MaximalityStatus.REFUTED:
            step = out.copy()
            step[ring] = min(1.0, step[ring] + DELTA)
            assert any(check_witness(problem, torch.as_tensor(step), z) is not None
                       for _, z in oracle.witnesses)


@pytest.mark.parametrize("limit", [3, 10])
def test_a_query_budget_counts_the_screen_apart_and_is_honoured(limit) -> None:
    """The screen always runs (every ring gets a status) but never eats the query budget."""
    problem = tiny_problem(conv_net(1), (8, 8), 1, k=1)
    result = run_search(problem, _complete(), algorithm=Algorithm.GUIDED,
                        budget=BudgetSettings(max_queries=limit))
    assert result.queries["total"] <= limit
    assert result.queries["total"] == result.search_queries + result.maximality_queries
    open_rings = sum(1 for status in result.maximality if status is not MaximalityStatus.SATURATED)
    assert 0 < result.queries["screened"] <= open_rings
    assert result.maximality_time_s > 0
