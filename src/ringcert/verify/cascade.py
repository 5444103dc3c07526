"""The default verifier: cheap stages first, each only when the earlier ones left UNKNOWN.

attack -> CROWN -> alpha-CROWN -> a complete stage (DESIGN.md section 2 names the MILP;
the registry's cascade ends with branch and bound, which settles twice as many boundary
queries, see ``registry.make_verifier``). Each stage receives the previous verdict as a
hint (the complete stages start their PGD phase from the attack's best point) and what is
left of the call's time limit. The returned verdict is the deciding stage's, with the
weakest points of the most informative stage and the time of every stage in ``stats``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from ringcert.problem import Problem
from ringcert.verify.verdict import Status, Verdict, Verifier, VerifierKind


class Cascade(Verifier):
    """Runs ``stages`` in order until one settles the query."""

    kind = VerifierKind.CASCADE

    def __init__(self, *, stages: Sequence[Verifier]) -> None:
        if not stages:
            raise ValueError("a cascade needs at least one stage")
        self.stages = tuple(stages)

    def _run(self, problem: Problem, eps: torch.Tensor, hint: Verdict | None,
             time_limit: float | None) -> Verdict:
        stats: dict[str, float | int | str] = {}
        weakest: Verdict | None = hint
        verdict = hint
        began = time.perf_counter()
        for stage in self.stages:
            left = None if time_limit is None else max(time_limit - (time.perf_counter() - began), 0.0)
            verdict = stage.verify(problem, eps, hint=weakest, time_limit=left)
            stats[f"{stage.kind.value}_time_s"] = verdict.stats.get("time_s", 0.0)
            if verdict.weakest_points is not None:
                weakest = verdict
            if verdict.status is not Status.UNKNOWN:
                break
        assert verdict is not None
        stats["stages_run"] = sum(1 for key in stats if key.endswith("_time_s"))
        best = weakest if weakest is not None else verdict
        return replace(verdict, weakest_points=best.weakest_points,
                       weakest_margins=best.weakest_margins,
                       stats={**verdict.stats, **stats})
