"""The default verifier: cheap stages first, each only when the earlier ones left UNKNOWN.

attack -> CROWN -> alpha-CROWN -> a complete stage (docs/design.md section 2.5;
the registry's cascade ends with branch and bound, which settles twice as many boundary
queries, see ``registry.make_verifier``). Each stage receives the previous verdict as a
hint (a verdict on the same query: the gates read its bound, the complete stages start
their PGD phase from its best point), the call's warm start, and what is left of the
call's time limit. The returned verdict is the deciding stage's, with the weakest points
of the most informative stage and every stage's verdict in ``stages``.

A hint from one of the cascade's own stage kinds (an UNKNOWN one) means the caller has
already run the stages up to that one on this query (the maximality screen attacks every
ring's step in one batch and bounds each with CROWN): the cascade then resumes after that
stage, with the hint recorded as the first of its ``stages``. Skipping can only lose
refutations and proofs the skipped stages would have found, never add one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from ringcert.problem import Problem
from ringcert.verify.verdict import Verdict, Verifier
from ringcert.vocabulary import Status, VerifierKind


class Cascade(Verifier):
    """Runs ``stages`` in order until one settles the query."""

    kind = VerifierKind.CASCADE

    def __init__(self, *, stages: Sequence[Verifier]) -> None:
        if not stages:
            raise ValueError("a cascade needs at least one stage")
        self.stages = tuple(stages)

    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        stages: list[Verdict] = []
        weakest: Verdict | None = hint  # the same query's most informative verdict so far
        began = time.perf_counter()
        kinds = [stage.kind for stage in self.stages]
        resume = 0
        if hint is not None and hint.status is Status.UNKNOWN and hint.verifier in kinds:
            resume = kinds.index(hint.verifier) + 1
            stages.append(_record(hint))
        verdict = hint
        for stage in self.stages[resume:]:
            left = None if time_limit is None else max(time_limit - (time.perf_counter() - began), 0.0)
            verdict = stage.verify(problem, eps, hint=weakest, warm_start=warm_start, time_limit=left)
            # the record of a stage keeps its answer, not its points (a search keeps every verdict)
            stages.append(_record(verdict))
            if verdict.weakest_points is not None:
                weakest = verdict
            if verdict.status is not Status.UNKNOWN:
                break
        assert verdict is not None  # a cascade has a stage, or resumed from a hint
        best = weakest if weakest is not None else verdict
        return replace(verdict, weakest_points=best.weakest_points,
                       weakest_margins=best.weakest_margins, stages=tuple(stages))


def _record(verdict: Verdict) -> Verdict:
    """A stage's answer without its points (a search keeps every verdict)."""
    return replace(verdict, counterexample=None, weakest_points=None, weakest_margins=None)
