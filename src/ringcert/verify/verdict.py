"""The answer of every verifier, and the contract every verifier obeys.

``Verifier.verify`` is final (after foolbox's ``Attack.__call__``): it validates the
epsilon vector, runs the subclass's ``_run``, and re-checks every counterexample by box
membership and a plain float32 forward pass. A witness that fails the check turns the
verdict into ``UNKNOWN``; ``ROBUST`` can only come from a subclass that proved it.

A problem of several targets is verified target by target on the same box (``_per_target``):
ROBUST iff every target's verdict is, NOT_ROBUST as soon as one target's is (its checked
witness breaks the problem too, whose margin is the minimum), else UNKNOWN; the bound is the
minimum over targets, the weakest points are the worst target's first (issue 15).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.vocabulary import Status, UnknownReason, VerifierKind


@dataclass(frozen=True, eq=False)
class Verdict:
    """One query's answer.

    ``bound`` is a sound lower bound on the robustness level ``min_box m`` (None when the
    stage has none); ``counterexample`` (C, H, W) is set only for NOT_ROBUST and has
    passed the forward-pass check; ``weakest_points`` (N, C, H, W) are box points with
    the smallest margins found, ``weakest_margins`` (N,) their margins. ``reason`` says why
    an UNKNOWN is one (None for the other statuses); ``settled_by`` names the method inside
    the stage that decided (a complete stage's PGD phase: ``ATTACK``). ``Verifier.verify``
    sets ``eps`` (the vector this verdict answers) and ``time_s``; a cascade's ``stages``
    are the verdicts of the stages it ran, in order; on a problem of several targets,
    ``targets`` are the per-target verdicts, in the problem's target order, up to the first
    refuted one. ``stats`` holds numbers for a human.
    """

    status: Status
    verifier: VerifierKind
    bound: float | None = None
    counterexample: torch.Tensor | None = None
    weakest_points: torch.Tensor | None = None
    weakest_margins: torch.Tensor | None = None
    reason: UnknownReason | None = None
    settled_by: VerifierKind | None = None
    eps: tuple[float, ...] | None = None
    time_s: float = 0.0
    stages: tuple[Verdict, ...] = ()
    targets: tuple[Verdict, ...] = ()
    stats: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def robust(self) -> bool:
        return self.status is Status.ROBUST

    def answers(self, eps: torch.Tensor | np.ndarray) -> bool:
        """Whether this verdict is an answer to the query ``eps`` (the same vector exactly)."""
        vector = np.asarray(torch.as_tensor(eps).detach().double().cpu(), dtype=np.float64)
        return self.eps is not None and np.array_equal(np.asarray(self.eps), vector)

    def to_json(self) -> dict[str, object]:
        return {"status": self.status.value, "verifier": self.verifier.value,
                "bound": self.bound, "reason": None if self.reason is None else self.reason.value,
                "settled_by": None if self.settled_by is None else self.settled_by.value,
                "time_s": self.time_s,
                "stages": [{"verifier": stage.verifier.value, "status": stage.status.value,
                            "time_s": stage.time_s} for stage in self.stages],
                "targets": [{"status": part.status.value, "bound": part.bound,
                             "time_s": part.time_s} for part in self.targets],
                "stats": dict(self.stats)}


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


def skipped(kind: VerifierKind, hint: Verdict | None, reason: UnknownReason) -> Verdict:
    """UNKNOWN from a stage a gate skipped, carrying the same-query hint's bound and weakest
    points (so a cascade keeps what the earlier stages found)."""
    return Verdict(status=Status.UNKNOWN, verifier=kind, reason=reason,
                   bound=None if hint is None else hint.bound,
                   weakest_points=None if hint is None else hint.weakest_points,
                   weakest_margins=None if hint is None else hint.weakest_margins)


def start_point(*verdicts: Verdict | None) -> torch.Tensor | None:
    """The lowest-margin weakest point of the first verdict that has one (a start for PGD or
    a solver): callers pass the same-query hint first, then the warm start."""
    for verdict in verdicts:
        if verdict is not None and verdict.weakest_points is not None and len(verdict.weakest_points):
            return verdict.weakest_points[0]
    return None


def capped(own: float, cap: float | None) -> float:
    """A verifier's own per-query time limit, lowered to the caller's ``cap`` if smaller."""
    return own if cap is None else min(own, cap)


class Verifier(ABC):
    """Base class: subclasses store keyword-only settings and implement ``_run``."""

    kind: VerifierKind

    def verify(self, problem: Problem, eps: torch.Tensor | np.ndarray | list[float], *,
               hint: Verdict | None = None, warm_start: Verdict | None = None,
               time_limit: float | None = None) -> Verdict:
        """Answer the query.

        ``hint``: an earlier stage's verdict on this same query (a ``ValueError`` if it
        answers another vector); gates may trust its bound, stages may start from its
        weakest points; it never decides the answer. ``warm_start``: a verdict on another,
        nearby query (a search's previous one): only a start point, never a gate's input.
        ``time_limit``: a cap in seconds on this call (a search passes what its budget can
        spare); verifiers with a per-query limit of their own use the smaller of the two,
        the fast stages ignore it."""
        eps_t = problem.check_eps(eps).detach().to(torch.float64)
        if hint is not None and not hint.answers(eps_t):
            raise ValueError("hint is a verdict on another query; pass it as warm_start")
        began = time.perf_counter()
        if len(problem.targets) > 1:
            verdict = self._per_target(problem, eps_t, hint=hint, warm_start=warm_start,
                                       time_limit=time_limit)
        else:
            verdict = self._run(problem, eps_t, hint=hint, warm_start=warm_start,
                                time_limit=time_limit)
        if verdict.status is Status.NOT_ROBUST:
            witness = verdict.counterexample
            if witness is not None:
                witness = project(problem, eps_t, witness[None])[0]
            margin = None if witness is None else check_witness(problem, eps_t, witness)
            if margin is None:
                verdict = replace(verdict, status=Status.UNKNOWN, counterexample=None,
                                  reason=UnknownReason.REJECTED_WITNESS)
            else:
                verdict = replace(verdict, counterexample=witness,
                                  stats={**verdict.stats, "witness_margin": margin})
        if verdict.status is Status.ROBUST and verdict.bound is not None and verdict.bound <= 0:
            raise AssertionError(f"{self.kind.value} claimed ROBUST with bound {verdict.bound}")
        if verdict.status is Status.UNKNOWN:
            reason = verdict.reason or UnknownReason.INCONCLUSIVE
            settled_by = None
        else:
            reason, settled_by = None, verdict.settled_by or verdict.verifier
        return replace(verdict, reason=reason, settled_by=settled_by,
                       eps=tuple(float(value) for value in eps_t.tolist()),
                       time_s=time.perf_counter() - began)

    def _per_target(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
                    warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        """Each target's verdict on the same box (each through ``verify``, so each witness
        is checked against its own target), combined: see the module docstring."""
        began = time.perf_counter()
        parts: list[Verdict] = []
        for index, single in enumerate(problem.split()):
            left = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - began))
            part = self.verify(single, eps, hint=_part(hint, index),
                               warm_start=_part(warm_start, index), time_limit=left)
            parts.append(part)
            if part.status is Status.NOT_ROBUST:
                break
        bounds = [part.bound for part in parts]
        bound = None if None in bounds or len(parts) < len(problem.targets) else min(bounds)
        points = [part.weakest_points for part in parts if part.weakest_points is not None]
        weakest_points = weakest_margins = None
        if points:
            weakest_points = torch.cat(points)
            with torch.no_grad():
                weakest_margins = problem.margin(weakest_points.float()).detach()
            order = torch.argsort(weakest_margins)
            weakest_points, weakest_margins = weakest_points[order], weakest_margins[order]
        last = parts[-1]
        if last.status is Status.NOT_ROBUST:
            return Verdict(status=Status.NOT_ROBUST, verifier=self.kind, bound=bound,
                           counterexample=last.counterexample, weakest_points=weakest_points,
                           weakest_margins=weakest_margins, settled_by=last.settled_by,
                           targets=tuple(parts), stats={"refuted_target": problem.targets[len(parts) - 1]})
        open_parts = [part for part in parts if part.status is not Status.ROBUST]
        if not open_parts:
            return Verdict(status=Status.ROBUST, verifier=self.kind, bound=bound,
                           weakest_points=weakest_points, weakest_margins=weakest_margins,
                           settled_by=parts[_weakest(bounds)].settled_by,
                           targets=tuple(parts))
        return Verdict(status=Status.UNKNOWN, verifier=self.kind, bound=bound,
                       weakest_points=weakest_points, weakest_margins=weakest_margins,
                       reason=open_parts[0].reason, targets=tuple(parts))

    @abstractmethod
    def _run(self, problem: Problem, eps: torch.Tensor, *, hint: Verdict | None,
             warm_start: Verdict | None, time_limit: float | None) -> Verdict:
        """Answer the query for a validated float64 ``eps`` within ``time_limit`` (if not None);
        ``hint`` answers this same query, ``warm_start`` a nearby one (see ``verify``)."""


def _part(verdict: Verdict | None, index: int) -> Verdict | None:
    """A multi-target verdict's verdict on its ``index``-th target (None if it has none)."""
    if verdict is None or index >= len(verdict.targets):
        return None
    return verdict.targets[index]


def _weakest(bounds: list[float | None]) -> int:
    """Index of the lowest bound (a missing bound counts as the lowest)."""
    return min(range(len(bounds)), key=lambda i: -np.inf if bounds[i] is None else bounds[i])
