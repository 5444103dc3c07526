"""Closed vocabularies of the searches and their frozen, JSON-serializable result."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Algorithm(Enum):
    UNIFORM = "uniform"
    NAIVE = "naive"
    GUIDED = "guided"


class Shrink(Enum):
    """Cutting weights of the guided search's CEGIS step (seed, section 3)."""

    FIXED = "fixed"
    SENSITIVITY = "sensitivity"


class GradientSource(Enum):
    """How the guided search picks its step (see ``ringcert.search.guided``)."""

    WEAKEST_POINTS = "weakest-points"  # the seed / MaRVeL: RL gradient at the weakest points
    BOUND = "bound"  # an LP step on the CROWN bound's gradient in epsilon (Liu et al. 2019)
    BOTH = "weakest-points+bound"  # the seed's rule until it stops, then bound steps


class MaximalityStatus(Enum):
    """Outcome of trying ``eps + delta * e_d`` for one ring after a search."""

    REFUTED = "refuted"  # a checked counterexample: the ring is maximal at delta
    UNPROVEN = "unproven"  # only the verifier's incompleteness stops growth
    SATURATED = "saturated"  # eps_d = 1
    EXPANDABLE = "expandable"  # eps + delta * e_d was proved robust (not grown)
    UNCHECKED = "unchecked"  # the budget ran out before this ring was tried


@dataclass(frozen=True, kw_only=True, eq=False)
class SearchResult:
    """A verified epsilon vector, its maximality per ring, and what finding it cost.

    ``epsilon`` was answered ROBUST by the verifier (or is all zeros, robust by the
    problem's precondition). ``queries`` maps verifier kind -> count plus ``total`` and
    ``cached``; ``search_queries`` / ``maximality_queries`` split the total by phase.
    """

    algorithm: Algorithm
    settings: dict[str, Any]
    epsilon: tuple[float, ...]
    size: float
    maximality: tuple[MaximalityStatus, ...]
    queries: dict[str, int]
    search_queries: int
    maximality_queries: int
    time_s: float
    budget_exhausted: bool
    history: tuple[tuple[int, float], ...] = field(default=())  # (total queries, best size)

    def maximality_counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in MaximalityStatus}
        for status in self.maximality:
            counts[status.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": {"name": self.algorithm.value, **self.settings},
            "epsilon": list(self.epsilon),
            "size": self.size,
            "maximality": [status.value for status in self.maximality],
            "maximality_counts": self.maximality_counts(),
            "queries": dict(self.queries),
            "search_queries": self.search_queries,
            "maximality_queries": self.maximality_queries,
            "time_s": self.time_s,
            "budget_exhausted": self.budget_exhausted,
            "history": [list(point) for point in self.history],
        }
