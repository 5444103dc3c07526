"""The answer of every verifier, and the contract every verifier obeys.

``Verifier.verify`` is final (after foolbox's ``Attack.__call__``): it validates the
epsilon vector, runs the subclass's ``_run``, and re-checks every counterexample by box
membership and a plain float32 forward pass. A witness that fails the check turns the
verdict into ``UNKNOWN``; ``ROBUST`` can only come from a subclass that proved it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import torch

from ringcert.problem import Problem


class Status(Enum):
    ROBUST = "robust"
    NOT_ROBUST = "not_robust"
    UNKNOWN = "unknown"


class VerifierKind(Enum):
    """Which stage produced a verdict; also the key under which searches count queries."""

    ATTACK = "attack"
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"
    MILP = "milp"
    BAB = "bab"
    CASCADE = "cascade"


@dataclass(frozen=True, eq=False)
class Verdict:
    """One query's answer.

    ``bound`` is a sound lower bound on the robustness level ``min_box m`` (None when the
    stage has none); ``counterexample`` (C, H, W) is set only for NOT_ROBUST and has
    passed the forward-pass check; ``weakest_points`` (N, C, H, W) are box points with
    the smallest margins found, ``weakest_margins`` (N,) their margins.
    """

    status: Status
    verifier: VerifierKind
    bound: float | None = None
    counterexample: torch.Tensor | None = None
    weakest_points: torch.Tensor | None = None
    weakest_margins: torch.Tensor | None = None
    stats: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def robust(self) -> bool:
        return self.status is Status.ROBUST

    def to_json(self) -> dict[str, object]:
        return {"status": self.status.value, "verifier": self.verifier.value,
                "bound": self.bound, "stats": dict(self.stats)}


def check_witness(problem: Problem, eps: torch.Tensor, z: torch.Tensor) -> float | None:
    """Margin of ``z`` if it lies in the box and a float32 forward pass puts the target
    outside the top-k; None otherwise. This is the only road to NOT_ROBUST."""
    lo, hi = problem.box(eps.detach())
    z = z.detach().float().reshape(problem.image.shape)
    if not bool(((z >= lo) & (z <= hi)).all()):
        return None
    margin = float(problem.margin(z[None]).detach()[0])
    return margin if margin <= 0 else None


def project(problem: Problem, eps: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Clamp points (N, C, H, W) into the box (solver points may sit a hair outside)."""
    lo, hi = problem.box(eps.detach())
    return torch.max(torch.min(z.detach().float(), hi), lo)


def skipped(kind: VerifierKind, hint: Verdict | None, reason: str) -> Verdict:
    """UNKNOWN from a stage a gate skipped, carrying the hint's bound and weakest points (so a
    cascade keeps what the earlier stages found); ``reason`` becomes a stats key."""
    return Verdict(status=Status.UNKNOWN, verifier=kind,
                   bound=None if hint is None else hint.bound,
                   weakest_points=None if hint is None else hint.weakest_points,
                   weakest_margins=None if hint is None else hint.weakest_margins,
                   stats={reason: 1})


def capped(own: float, cap: float | None) -> float:
    """A verifier's own per-query time limit, lowered to the caller's ``cap`` if smaller."""
    return own if cap is None else min(own, cap)


class Verifier(ABC):
    """Base class: subclasses store keyword-only settings and implement ``_run``."""

    kind: VerifierKind

    def verify(self, problem: Problem, eps: torch.Tensor | np.ndarray | list[float], *,
               hint: Verdict | None = None, time_limit: float | None = None) -> Verdict:
        """Answer the query. ``hint``: an earlier stage's verdict on the same query, whose
        weakest points a stage may use (warm starts); it never decides the answer.
        ``time_limit``: a cap in seconds on this call (a search passes what its budget can
        spare); verifiers with a per-query limit of their own use the smaller of the two,
        the fast stages ignore it."""
        eps_t = problem.check_eps(eps).detach().to(torch.float64)
        began = time.perf_counter()
        verdict = self._run(problem, eps_t, hint, time_limit)
        if verdict.status is Status.NOT_ROBUST:
            witness = verdict.counterexample
            if witness is not None:
                witness = project(problem, eps_t, witness[None])[0]
            margin = None if witness is None else check_witness(problem, eps_t, witness)
            if margin is None:
                verdict = replace(verdict, status=Status.UNKNOWN, counterexample=None,
                                  stats={**verdict.stats, "rejected_witness": 1})
            else:
                verdict = replace(verdict, counterexample=witness,
                                  stats={**verdict.stats, "witness_margin": margin})
        if verdict.status is Status.ROBUST and verdict.bound is not None and verdict.bound <= 0:
            raise AssertionError(f"{self.kind.value} claimed ROBUST with bound {verdict.bound}")
        return replace(verdict, stats={**verdict.stats, "time_s": time.perf_counter() - began})

    @abstractmethod
    def _run(self, problem: Problem, eps: torch.Tensor, hint: Verdict | None,
             time_limit: float | None) -> Verdict:
        """Answer the query for a validated float64 ``eps`` within ``time_limit`` (if not None)."""
