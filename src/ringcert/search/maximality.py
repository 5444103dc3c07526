"""The maximality pass every search ends with (docs/design.md section 3.6; the seed's condition 2).

For each ring ``d`` with ``eps_d < 1`` it tries ``eps + delta * e_d``: a checked
counterexample means the ring is maximal at ``delta`` (``refuted``), an ``UNKNOWN`` means
only the verifier's incompleteness stops it (``unproven``). With ``grow`` a proved step
is kept and the ring is pushed further (galloping by doubling, then bisection on the
``delta`` grid) until its next ``delta`` step fails, so the returned vector is maximal
at ``delta`` in every ring; since the vector only grows, earlier rings' verdicts stay
valid by monotonicity. Without ``grow`` (the uniform baseline) the ring is only marked
``expandable``.
"""

from __future__ import annotations

import numpy as np

from ringcert.search.budget import BudgetExhausted
from ringcert.search.oracle import Decision, Oracle
from ringcert.vocabulary import MaximalityStatus, Status


def _failure_status(decision: Decision) -> MaximalityStatus:
    if decision.status is Status.NOT_ROBUST:
        return MaximalityStatus.REFUTED
    return MaximalityStatus.UNPROVEN


def _with(eps: np.ndarray, ring: int, value: float) -> np.ndarray:
    out = eps.copy()
    out[ring] = min(1.0, max(out[ring], value))
    return out


def _grow_ring(oracle: Oracle, eps: np.ndarray, ring: int, delta: float
               ) -> tuple[np.ndarray, MaximalityStatus]:
    """Push ``ring`` up on the grid ``eps_d + j * delta``; returns the new vector and status."""
    base = eps[ring]
    lo, hi, jump = 0, None, 1
    failed: Decision | None = None
    while hi is None:  # gallop: j = 1, 3, 7, ...
        j = lo + jump
        decision = oracle.decide(_with(eps, ring, base + j * delta))
        if decision.robust:
            eps = np.maximum(eps, oracle.cover(decision.eps))
            if eps[ring] >= 1.0:
                return eps, MaximalityStatus.SATURATED
            lo, jump = j, jump * 2
        else:
            hi, failed = j, decision
    while hi - lo > 1:  # bisect on the grid
        mid = (lo + hi) // 2
        decision = oracle.decide(_with(eps, ring, base + mid * delta))
        if decision.robust:
            eps = np.maximum(eps, oracle.cover(decision.eps))
            lo = mid
        else:
            hi, failed = mid, decision
    assert failed is not None
    return eps, _failure_status(failed)


def maximality_pass(oracle: Oracle, eps: np.ndarray, *, delta: float, grow: bool
                    ) -> tuple[np.ndarray, tuple[MaximalityStatus, ...]]:
    """Statuses per ring for ``eps`` (grown first when ``grow``); ``UNCHECKED`` past the budget.

    ``eps`` must be robust (proved, or zero). The returned vector is ``eps`` itself or a
    proved vector above it.
    """
    eps = np.asarray(eps, dtype=np.float64).copy()
    statuses = [MaximalityStatus.UNCHECKED] * len(eps)
    try:
        for ring in range(len(eps)):
            if eps[ring] >= 1.0:
                statuses[ring] = MaximalityStatus.SATURATED
                continue
            if grow:
                eps, statuses[ring] = _grow_ring(oracle, eps, ring, delta)
                continue
            decision = oracle.decide(_with(eps, ring, eps[ring] + delta))
            statuses[ring] = (MaximalityStatus.EXPANDABLE if decision.robust
                              else _failure_status(decision))
    except BudgetExhausted:
        pass
    return eps, tuple(statuses)
