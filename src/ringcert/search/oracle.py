"""Budgeted, monotone access to a verifier for one problem: the searches' only oracle.

Robustness is monotone in the epsilon vector: a box inside a proved box is robust, and a
box that contains a checked counterexample is not. The oracle uses this to answer
without a query when it can, and to keep every accept/reject decision of a search
consistent with monotonicity even when the verifier is incomplete (an ``UNKNOWN`` on
``eps`` makes every ``eps' >= eps`` count as not robust, unless ``eps'`` lies under a
proved vector). ``UNKNOWN`` is never treated as robust. The best vector it reports is
always one the verifier answered ``ROBUST`` for, or the all-zero vector (robust by the
problem's precondition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.search.budget import Budget
from ringcert.verify.verdict import Verdict, Verifier, check_witness
from ringcert.vocabulary import Status


@dataclass(frozen=True, eq=False)
class Decision:
    """One accept/reject decision. ``verdict`` is None when it came from the cache."""

    eps: np.ndarray
    status: Status
    verdict: Verdict | None = None
    counterexample: torch.Tensor | None = None

    @property
    def robust(self) -> bool:
        return self.status is Status.ROBUST

    @property
    def cached(self) -> bool:
        return self.verdict is None


def witness_need(problem: Problem, z: torch.Tensor) -> np.ndarray:
    """Per ring, the smallest epsilon whose box holds ``z``: max |z_p - x_p| over the ring."""
    delta = (z.detach().double().reshape(problem.image.shape) - problem.image.double()).abs()
    per_pixel = delta.amax(dim=0).numpy().ravel()
    need = np.zeros(problem.num_rings)
    np.maximum.at(need, problem.rings.ravel(), per_pixel)
    return need


class Oracle:
    """Decides robustness of epsilon vectors for ``problem`` with ``verifier`` under ``budget``."""

    def __init__(self, problem: Problem, verifier: Verifier, budget: Budget) -> None:
        self.problem = problem
        self.verifier = verifier
        self.budget = budget
        zero = np.zeros(problem.num_rings)
        self.proved: list[np.ndarray] = [zero]
        self.failed: list[np.ndarray] = []  # NOT_ROBUST or UNKNOWN answers
        self.witnesses: list[tuple[np.ndarray, torch.Tensor]] = []
        self.log: list[Decision] = []
        self.best = zero
        self.history: list[tuple[int, float]] = [(0, 0.0)]
        self.last_verdict: Verdict | None = None

    @property
    def best_size(self) -> float:
        return self.problem.size(self.best)

    def cover(self, eps: np.ndarray) -> np.ndarray | None:
        """A proved vector ``>= eps`` (coordinatewise), if any."""
        for vector in self.proved:
            if np.all(eps <= vector):
                return vector
        return None

    def _from_cache(self, eps: np.ndarray) -> Decision | None:
        if self.cover(eps) is not None:
            return Decision(eps=eps, status=Status.ROBUST)
        eps_t = torch.as_tensor(eps)
        for need, z in self.witnesses:
            if np.all(need <= eps) and check_witness(self.problem, eps_t, z) is not None:
                return Decision(eps=eps, status=Status.NOT_ROBUST, counterexample=z)
        if any(np.all(eps >= vector) for vector in self.failed):
            return Decision(eps=eps, status=Status.UNKNOWN)
        return None

    def decide(self, eps: np.ndarray | list[float], *, hint: Verdict | None = None) -> Decision:
        """Robust or not (cached when monotonicity settles it); may raise ``BudgetExhausted``.

        The previous query's verdict goes to the verifier as a warm start (its weakest
        points start the attacks), never as a hint: a hint is a verdict on the same query,
        and the gates trust its bound. ``hint``: such a verdict, from a stage the caller ran
        on ``eps`` itself (the maximality screen's CROWN bound; a cascade resumes after it)."""
        eps = np.clip(np.asarray(eps, dtype=np.float64), 0.0, 1.0)
        decision = self._from_cache(eps)
        if decision is not None:
            self.budget.cached += 1
        else:
            self.budget.check()
            verdict = self.verifier.verify(self.problem, eps, hint=hint, warm_start=self.last_verdict,
                                           time_limit=self.budget.query_time_cap())
            decision = self.record(verdict)
        self.log.append(decision)
        return decision

    def record(self, verdict: Verdict, *, screened: bool = False) -> Decision:
        """Count and remember a verdict on ``verdict.eps`` from a query made on this problem
        (through ``decide``, or, ``screened``, by the maximality screen: counted apart)."""
        assert verdict.eps is not None, "a verdict from Verifier.verify carries its eps"
        eps = np.asarray(verdict.eps, dtype=np.float64)
        if screened:
            self.budget.screen(verdict)
        else:
            self.budget.charge(verdict)
        self.last_verdict = verdict
        decision = Decision(eps=eps, status=verdict.status, verdict=verdict,
                            counterexample=verdict.counterexample)
        self._record(decision)
        return decision

    def add_witness(self, eps: np.ndarray, z: torch.Tensor) -> bool:
        """Keep ``z`` as a counterexample if it lies in ``box(eps)`` and breaks the top-k on a
        float32 forward pass (``check_witness``); later queries whose box holds it are
        refuted from the cache. Returns whether it was kept."""
        if check_witness(self.problem, torch.as_tensor(eps), z) is None:
            return False
        self._keep(z)
        return True

    def _keep(self, z: torch.Tensor) -> None:
        z = z.detach().float().reshape(self.problem.image.shape)
        self.witnesses.append((witness_need(self.problem, z), z))

    def _record(self, decision: Decision) -> None:
        eps = decision.eps
        if decision.robust:
            self.proved.append(eps)
            if self.problem.size(eps) > self.best_size:
                self.best = eps
                self.history.append((self.budget.total, self.best_size))
            return
        self.failed.append(eps)
        if decision.counterexample is not None:  # checked by Verifier.verify
            self._keep(decision.counterexample)
