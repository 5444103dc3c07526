"""The oracle hands a verifier the previous query's verdict only as a warm start, never as
a hint: a gated stage (branch and bound with ``max_gap``) must still run on every query
whose own evidence does not gate it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ringcert.problem import Problem
from ringcert.search import GuidedSettings, run_search
from ringcert.search.budget import Budget, BudgetSettings
from ringcert.search.oracle import Oracle
from ringcert.verify.bab import BranchAndBound
from ringcert.verify.verdict import Verdict, Verifier
from ringcert.vocabulary import Algorithm, Status, UnknownReason, VerifierKind
from tests.fixtures import mlp, tiny_problem

SKIPS = {UnknownReason.SKIPPED_GAP, UnknownReason.SKIPPED_TIME}


class _Spy(Verifier):
    """Delegates to ``inner`` and keeps every verdict and what the call was given."""

    kind = VerifierKind.BAB

    def __init__(self, inner: Verifier) -> None:
        self.inner = inner
        self.verdicts: list[Verdict] = []
        self.hints: list[Verdict | None] = []
        self.warm: list[Verdict | None] = []

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        self.hints.append(hint)
        self.warm.append(warm_start)
        verdict = self.inner.verify(problem, eps, hint=hint, warm_start=warm_start,
                                    time_limit=time_limit)
        self.verdicts.append(verdict)
        return verdict


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _gated() -> BranchAndBound:
    return BranchAndBound(time_limit=5.0, attack_restarts=0, max_gap=0.0)


def test_a_refuted_query_does_not_gate_the_next_one() -> None:
    """A refutation with a negative bound, then a robust query that CROWN cannot prove: the
    second must be proved by branch and bound, not skipped on the first one's bound."""
    problem = tiny_problem(mlp(11), (2, 2), 11, k=1)
    spy = _Spy(_gated())
    oracle = Oracle(problem, spy, Budget())
    refuted = oracle.decide([1.0, 1.0])
    assert refuted.status is Status.NOT_ROBUST
    assert refuted.verdict is not None and refuted.verdict.bound is not None
    assert refuted.verdict.bound < 0
    proved = oracle.decide([0.1, 0.3])  # robust by enumeration (tests/verify/bab/test_search.py)
    assert proved.status is Status.ROBUST
    assert spy.hints == [None, None]
    assert spy.warm[1] is refuted.verdict


def test_guided_search_runs_branch_and_bound_on_more_than_one_query() -> None:
    problem = tiny_problem(mlp(11), (2, 2), 11, k=1)
    spy = _Spy(_gated())
    run_search(problem, spy, algorithm=Algorithm.GUIDED, settings=GuidedSettings(delta=0.05),
               budget=BudgetSettings(max_queries=40))
    ran = [verdict for verdict in spy.verdicts if verdict.reason not in SKIPS]
    assert len(ran) > 1
    assert all(hint is None for hint in spy.hints)


def test_verify_refuses_a_hint_on_another_query() -> None:
    problem = tiny_problem(mlp(11), (2, 2), 11, k=1)
    first = BranchAndBound(attack_restarts=0).verify(problem, [1.0, 1.0])
    assert first.answers(np.array([1.0, 1.0])) and not first.answers(np.array([0.1, 0.3]))
    with pytest.raises(ValueError, match="another query"):
        BranchAndBound(attack_restarts=0).verify(problem, [0.1, 0.3], hint=first)
