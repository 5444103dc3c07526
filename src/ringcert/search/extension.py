"""The ray extension: after the search, prove larger multiples of its vector with the envelope.

A search asks hundreds of queries, so it runs the fast verifiers (attack, CROWN,
alpha-CROWN, a short complete stage); the ``envelope`` stage (each first-layer ReLU's hull
over the input box, ``verify/bounds/envelope.py``) proves boxes well beyond them but costs
seconds to a minute per query (benchmarks/README.md). The extension spends a few such
queries where they pay most: along the certified vector's own ray, the direction in which
the attack frontier measures the gap (docs/design.md section 3.7b). It asks ``clip(s eps*)``
for the growing scales ``EXTENSION_SCALES`` (the attack first, then the envelope) and keeps
the last one proved; the first scale not proved ends the climb (robustness is monotone
along the ray, and so, in practice, is what the envelope can prove).

The extended vector replaces ``eps*``. Each ring's maximality status was about ``eps*``:
``refuted`` and ``saturated`` still hold (a box above a refuted step holds the same
counterexample), a ring the scaling takes to 1 is ``saturated``, and the others become
``unchecked``, since nobody asked ``eps' + delta e_d``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.search.result import SearchResult
from ringcert.verify.verdict import Verifier
from ringcert.vocabulary import MaximalityStatus, Status

EXTENSION_SCALES = (1.05, 1.1, 1.25, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0)
"""The scales asked, in order: the envelope proves 1.05 times the searches' vectors on the
PGD-trained model and 1.25-1.4 times on the undefended one (benchmarks/README.md), so the
ladder starts fine and widens."""

KEPT = (MaximalityStatus.REFUTED, MaximalityStatus.SATURATED)
"""Statuses that still hold for a larger vector."""


@dataclass(frozen=True, kw_only=True)
class Rung:
    """One scale asked: the verdict's status and bound (None from the attack) and seconds."""

    scale: float
    status: Status
    bound: float | None
    time_s: float

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "status": self.status.value, "bound": self.bound,
                "time_s": self.time_s}


@dataclass(frozen=True, kw_only=True)
class Extension:
    """The largest scale proved (1.0: none) of the search's vector ``base``, and the rungs."""

    base: tuple[float, ...]
    scale: float
    rungs: tuple[Rung, ...]
    time_s: float

    def to_json(self) -> dict[str, Any]:
        return {"base_epsilon": list(self.base), "scale": self.scale,
                "rungs": [rung.to_json() for rung in self.rungs], "time_s": self.time_s}


def scaled(eps: np.ndarray | tuple[float, ...], scale: float) -> np.ndarray:
    """``clip(scale * eps, 0, 1)``: the point at ``scale`` on the ray of ``eps``."""
    return np.clip(np.asarray(eps, dtype=np.float64) * scale, 0.0, 1.0)


def extend_along_ray(problem: Problem, eps: np.ndarray | tuple[float, ...], verifier: Verifier, *,
                     scales: tuple[float, ...] = EXTENSION_SCALES) -> Extension:
    """Climb ``scales`` along the ray of ``eps`` (a verified vector) with ``verifier`` until
    the first scale it does not prove; ``scale`` is the last proved (1.0 if none)."""
    began = time.perf_counter()
    base = np.asarray(eps, dtype=np.float64)
    proved, rungs = 1.0, []
    if base.any():
        for scale in scales:
            if np.array_equal(scaled(base, scale), scaled(base, proved)):
                break  # every ring is saturated: the ray ends
            asked = time.perf_counter()
            verdict = verifier.verify(problem, torch.from_numpy(scaled(base, scale)))
            rungs.append(Rung(scale=scale, status=verdict.status, bound=verdict.bound,
                              time_s=time.perf_counter() - asked))
            if verdict.status is not Status.ROBUST:
                break
            proved = scale
    return Extension(base=tuple(float(v) for v in base), scale=proved, rungs=tuple(rungs),
                     time_s=time.perf_counter() - began)


def extended(search: SearchResult, extension: Extension, problem: Problem) -> SearchResult:
    """``search`` with its vector replaced by the extension's (unchanged at scale 1)."""
    if extension.scale == 1.0:
        return search
    eps = scaled(extension.base, extension.scale)
    statuses = tuple(MaximalityStatus.SATURATED if value >= 1.0 else
                     status if status in KEPT else MaximalityStatus.UNCHECKED
                     for value, status in zip(eps, search.maximality, strict=True))
    return replace(search, epsilon=tuple(float(v) for v in eps), size=problem.size(eps),
                   maximality=statuses)
