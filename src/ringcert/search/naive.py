"""The seed's baseline: rings one at a time, binary search on each with the others fixed.

Mour & Drachsler-Cohen (2023), section 3: "a naive algorithm computes the epsilon series
one by one, where at each iteration it computes the maximal epsilon using a binary
search". Rings are taken in order of decreasing weight (ties: nearer rings first), so
the result suits weight vectors that order the rings strictly, and costs about
``log2(1/delta)`` queries per ring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringcert.search.grid import bisect
from ringcert.search.oracle import Oracle


@dataclass(frozen=True, kw_only=True)
class NaiveSettings:
    delta: float = 0.01


def naive_search(oracle: Oracle, settings: NaiveSettings) -> np.ndarray:
    eps = np.zeros(oracle.problem.num_rings)
    for ring in np.argsort(-oracle.problem.weights, kind="stable"):

        def vector_at(value: float, ring: int = int(ring)) -> np.ndarray:
            out = eps.copy()
            out[ring] = value
            return out

        eps[ring] = bisect(oracle, vector_at, delta=settings.delta)
    return eps
