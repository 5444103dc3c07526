"""The searches' frozen, JSON-serializable result (their vocabularies are in ``ringcert.vocabulary``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ringcert.vocabulary import Algorithm, MaximalityStatus


@dataclass(frozen=True, kw_only=True, eq=False)
class SearchResult:
    """A verified epsilon vector, its maximality per ring, and what finding it cost.

    ``epsilon`` was answered ROBUST by the verifier (or is all zeros, robust by the
    problem's precondition). ``queries`` maps verifier kind -> count plus ``total`` and
    ``cached``; ``search_queries`` / ``maximality_queries`` split the total by phase, and
    ``maximality_time_s`` is the maximality pass's part of ``time_s``.
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
    maximality_time_s: float
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
            "maximality_time_s": self.maximality_time_s,
            "budget_exhausted": self.budget_exhausted,
            "history": [list(point) for point in self.history],
        }
