"""The attack frontier: where a strong attack first breaks the model, beside the certificate.

A certified vector ``eps*`` says the model is robust up to it; nothing about how far the
truth lies beyond. The frontier bounds that from above, by attack (docs/design.md section 3.7):

- the *ray frontier* is the smallest scale ``s >= 1`` at which PGD breaks ``clip(s eps*)``,
  bisected to a relative ``ray_tolerance``;
- the *per-ring frontier* ``u_d`` is, with the other rings at ``eps*``, the smallest
  ``eps_d`` PGD breaks, bisected to ``delta``. All rings share one batch per round
  (``pgd_boxes``): first every ring at ``eps_d = 1`` (a ring not broken there is
  unbreakable), then each broken ring's interval ``(eps*_d, need_d]`` is split in a grid,
  ``need_d`` being how far the witness itself moved ring ``d`` (a witness lies in every
  box that holds it, so ``need_d`` is already an upper bound).

Every witness passes the same float32 forward-pass check as a verifier's counterexample
(``check_witness``). The frontier is an upper bound on the robust region only along the
directions it tries: where the attack fails, the truth may lie anywhere above ``eps*``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ringcert.problem import Problem
from ringcert.search.oracle import witness_need
from ringcert.search.result import SearchResult
from ringcert.verify.attack import pgd_boxes
from ringcert.verify.verdict import check_witness
from ringcert.vocabulary import MaximalityStatus


@dataclass(frozen=True, kw_only=True)
class FrontierSettings:
    """The frontier attack: stronger than the search's cheap stage (8 x 40). ``restarts`` x
    ``steps`` (half the restarts targeted at likely k-sets) for the ray, ``ring_restarts`` x
    ``ring_steps`` per ring and round; ``step_fraction`` of the box per step; ``grid``
    candidate scales per ray round, ``ring_grid`` candidates per ring and round (1: plain
    bisection, which halves the boxes a ring frontier attacks against 3 for the same
    resolution); ``ray_tolerance`` the relative resolution of the ray scale. The defaults
    find the same ray scales as 32 x 200 within 1% at a third of the time
    (benchmarks/README.md, frontier)."""

    restarts: int = 16
    steps: int = 100
    ring_restarts: int = 4
    ring_steps: int = 40
    step_fraction: float = 0.05
    grid: int = 3
    ring_grid: int = 1
    ray_tolerance: float = 0.01
    seed: int = 0


@dataclass(frozen=True, eq=False)
class RingFrontier:
    """``upper``: the smallest epsilon of this ring the attack broke (None: unbreakable up to
    1); ``margin``: the witness's margin there; ``witness`` (C, H, W) the checked point."""

    upper: float | None
    margin: float | None
    witness: torch.Tensor | None


@dataclass(frozen=True, eq=False)
class Frontier:
    """The attack's side of an answer: the ray scale (None: no scale up to saturation broke
    it, or ``eps*`` is all zero), its witness, and one ``RingFrontier`` per ring."""

    ray_scale: float | None
    ray_margin: float | None
    ray_witness: torch.Tensor | None
    rings: tuple[RingFrontier, ...]
    time_s: float

    def upper(self) -> np.ndarray:
        """``u`` per ring, 1.0 where unbreakable (the box cannot grow beyond it)."""
        return np.array([1.0 if ring.upper is None else ring.upper for ring in self.rings])

    def to_json(self) -> dict[str, object]:
        return {"ray_scale": self.ray_scale, "ray_witness_margin": self.ray_margin,
                "rings": [ring.upper for ring in self.rings],
                "ring_witness_margins": [ring.margin for ring in self.rings],
                "unbreakable": [ring.upper is None for ring in self.rings],
                "time_s": self.time_s}


def _broken(problem: Problem, vectors: np.ndarray, points: torch.Tensor) -> list[float | None]:
    """The checked margin of each box's point (None where it does not break the top-k)."""
    return [check_witness(problem, torch.as_tensor(vector), point)
            for vector, point in zip(vectors, points, strict=True)]


def _attack(problem: Problem, vectors: np.ndarray, *, restarts: int, steps: int,
            settings: FrontierSettings, round_index: int) -> tuple[torch.Tensor, list[float | None]]:
    lo, hi = problem.boxes(vectors)
    found = pgd_boxes(problem, lo, hi, restarts=restarts, steps=steps,
                      step_fraction=settings.step_fraction, seed=settings.seed + round_index,
                      targeted=restarts // 2)
    return found.points, _broken(problem, vectors, found.points)


def _holding_scale(need: np.ndarray, eps: np.ndarray) -> float:
    """The smallest ``s`` with ``clip(s eps) >= need`` on every ring (inf if none does)."""
    if np.any((need > 0) & (eps <= 0)):
        return math.inf
    return float(max(1.0, (need[eps > 0] / eps[eps > 0]).max()))


def ray_frontier(problem: Problem, eps: np.ndarray, settings: FrontierSettings
                 ) -> tuple[float | None, float | None, torch.Tensor | None]:
    """(scale, witness margin, witness) of the smallest scale ``s >= 1`` that breaks
    ``clip(s eps)``; Nones when no scale up to saturation does."""
    eps = np.asarray(eps, dtype=np.float64)
    if not eps.any():
        return None, None, None
    top = 1.0 / float(eps[eps > 0].min())  # every ring saturated beyond this scale
    scales = np.unique(np.minimum([1.1, 1.5, 2.5, 5.0, top], top))
    scales = scales[scales > 1.0]
    low, found = 1.0, None
    for round_index in range(12):
        vectors = np.clip(scales[:, None] * eps[None], 0.0, 1.0)
        points, margins = _attack(problem, vectors, restarts=settings.restarts, steps=settings.steps,
                                  settings=settings, round_index=round_index)
        hits = [index for index, margin in enumerate(margins) if margin is not None]
        if hits:
            first = hits[0]
            # the witness lies in every box that holds it: the smallest scale whose box does
            need = witness_need(problem, points[first])
            scale = min(float(scales[first]), _holding_scale(need, eps))
            if found is None or scale < found[0]:
                found = (scale, margins[first], points[first])
            low = float(scales[first - 1]) if first else low
        elif found is None:
            return None, None, None
        else:
            low = float(scales[-1])
        high = found[0]
        if high <= low * (1 + settings.ray_tolerance):
            break
        scales = np.geomspace(low, high, settings.grid + 2)[1:-1]
    assert found is not None
    return found


def ring_frontier(problem: Problem, eps: np.ndarray, *, delta: float,
                  settings: FrontierSettings) -> tuple[RingFrontier, ...]:
    """Per ring ``d``, with the other rings at ``eps``: the smallest ``eps_d`` (to ``delta``)
    the attack breaks, all rings batched per round."""
    eps = np.asarray(eps, dtype=np.float64)
    rings = len(eps)
    low = eps.copy()
    high = np.full(rings, math.inf)
    best: list[tuple[float, torch.Tensor] | None] = [None] * rings
    candidates = {ring: [1.0] for ring in range(rings) if eps[ring] < 1.0}
    for round_index in range(64):
        if not candidates:
            break
        order = [(ring, value) for ring, values in candidates.items() for value in values]
        vectors = np.repeat(eps[None], len(order), axis=0)
        for row, (ring, value) in enumerate(order):
            vectors[row, ring] = value
        points, margins = _attack(problem, vectors, restarts=settings.ring_restarts,
                                  steps=settings.ring_steps, settings=settings,
                                  round_index=round_index)
        for row, (ring, value) in enumerate(order):
            if margins[row] is None:  # not broken here: the frontier lies above (as far as PGD sees)
                if value < high[ring]:
                    low[ring] = max(low[ring], value)
                continue
            # the witness lies in every box that holds it: its own need on this ring is an
            # upper bound too (below eps only if eps itself is not robust)
            upper = min(value, float(witness_need(problem, points[row])[ring]))
            if upper < high[ring]:
                high[ring], best[ring] = upper, (margins[row], points[row])
        candidates = {}
        for ring in range(rings):
            if not math.isfinite(high[ring]) or high[ring] - low[ring] <= delta:
                continue
            candidates[ring] = list(np.linspace(low[ring], high[ring], settings.ring_grid + 2)[1:-1])
    return tuple(RingFrontier(upper=float(high[ring]), margin=best[ring][0], witness=best[ring][1])
                 if best[ring] is not None else RingFrontier(upper=None, margin=None, witness=None)
                 for ring in range(rings))


def attack_frontier(problem: Problem, eps: np.ndarray | list[float], *, delta: float = 0.01,
                    settings: FrontierSettings | None = None) -> Frontier:
    """The ray and per-ring frontiers of ``eps`` (usable on any vector, not only a search's)."""
    settings = settings or FrontierSettings()
    began = time.perf_counter()
    vector = problem.check_eps(eps).detach().double().numpy()
    with torch.no_grad():
        scale, margin, witness = ray_frontier(problem, vector, settings)
        rings = ring_frontier(problem, vector, delta=delta, settings=settings)
    return Frontier(ray_scale=scale, ray_margin=margin, ray_witness=witness, rings=rings,
                    time_s=time.perf_counter() - began)


def refuted_by_frontier(search: SearchResult, frontier: Frontier, *, delta: float) -> SearchResult:
    """Maximality as an interval: a ring whose frontier lies within ``delta`` of ``eps*`` has a
    checked witness inside ``eps* + delta e_d``, so that step is refuted (the ring is maximal
    at ``delta``), whatever the verifier could not prove."""
    statuses = list(search.maximality)
    for ring, (status, eps, found) in enumerate(zip(statuses, search.epsilon, frontier.rings,
                                                   strict=True)):
        if (status in (MaximalityStatus.UNPROVEN, MaximalityStatus.UNCHECKED)
                and found.upper is not None and found.upper <= eps + delta):
            statuses[ring] = MaximalityStatus.REFUTED
    return replace(search, maximality=tuple(statuses))
