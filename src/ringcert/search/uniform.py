"""The uniform baseline: one epsilon for every ring, found by binary search.

This is the classic local-robustness radius (the largest L-infinity ball, restricted to
the ``delta`` grid) and the reference every layered result is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ringcert.search.grid import bisect
from ringcert.search.oracle import Oracle


@dataclass(frozen=True, kw_only=True)
class UniformSettings:
    delta: float = 0.01


def uniform_search(oracle: Oracle, settings: UniformSettings) -> np.ndarray:
    """Largest ``s`` on the grid with ``s * ones`` accepted; returns that vector."""
    rings = oracle.problem.num_rings
    value = bisect(oracle, lambda s: np.full(rings, s), delta=settings.delta)
    return np.full(rings, value)
