"""Bisection on the ``delta`` grid, shared by the uniform and naive searches."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ringcert.search.oracle import Oracle


def grid_points(delta: float) -> int:
    """Index of the top of the grid ``0, delta, 2 delta, ..., 1`` (the last point is 1)."""
    return math.ceil(1.0 / delta - 1e-9)


def bisect(oracle: Oracle, vector_at: Callable[[float], np.ndarray], *, delta: float) -> float:
    """Largest grid value ``v`` whose ``vector_at(v)`` the oracle accepts (0 is accepted).

    Classic binary search between a robust bottom (0) and a virtual failure above 1.
    """
    top = grid_points(delta)
    lo, hi = 0, top + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if oracle.decide(vector_at(min(1.0, mid * delta))).robust:
            lo = mid
        else:
            hi = mid
    return min(1.0, lo * delta)
