"""Query and time budgets for a search, and the per-verifier query counts it reports.

Every verifier call a search makes goes through one ``Budget``: it refuses a new query
once the query or time limit is spent (``BudgetExhausted``) and counts each answered
query under the ``VerifierKind`` of the stage that decided it (for a cascade: the stage
whose verdict was returned), plus a total. The maximality screen's CROWN calls (one per open
ring, run whatever the budget says: ``search.maximality``) are counted apart as ``screened``,
so ``total`` never exceeds a query budget.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from ringcert.verify.verdict import Verdict

QUERY_SHARE = 0.25
"""The largest part of a search's remaining time one query may take. Without it a complete
stage with a fixed per-query limit (10 s in ``ringcert analyze``) could spend a short
analysis's whole budget on its first hard query; with it every query leaves at least three
quarters of the remaining time to later ones."""


class BudgetExhausted(Exception):
    """Raised instead of running a query once the budget is spent (control flow only)."""


@dataclass(frozen=True, kw_only=True)
class BudgetSettings:
    """``max_queries``: verifier calls (None: unlimited); ``time_limit``: seconds (None: none).

    A running query is never interrupted; the limits are checked before each query.
    """

    max_queries: int | None = None
    time_limit: float | None = None

    def __post_init__(self) -> None:
        if self.max_queries is not None and self.max_queries < 0:
            raise ValueError("max_queries must be non-negative")
        if self.time_limit is not None and self.time_limit < 0:
            raise ValueError("time_limit must be non-negative")


class Budget:
    """Mutable counter for one search (created per analysis, never shared)."""

    def __init__(self, settings: BudgetSettings | None = None) -> None:
        self.settings = settings or BudgetSettings()
        self.share = 1.0  # the part of both limits open to the current phase
        self.started = time.perf_counter()
        self.by_kind: Counter[str] = Counter()
        self.total = 0
        self.cached = 0
        self.screened = 0
        self.verifier_time_s = 0.0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def spent(self) -> bool:
        limit = self.settings.max_queries
        if limit is not None and self.total >= self.share * limit:
            return True
        return (self.settings.time_limit is not None
                and self.elapsed >= self.share * self.settings.time_limit)

    def query_time_cap(self) -> float | None:
        """The time limit for the next query: ``QUERY_SHARE`` of what is left of the current
        phase's time (None without a time limit)."""
        if self.settings.time_limit is None:
            return None
        return QUERY_SHARE * max(self.share * self.settings.time_limit - self.elapsed, 0.0)

    def check(self) -> None:
        """Raise ``BudgetExhausted`` if no further query may run."""
        if self.spent:
            raise BudgetExhausted

    def charge(self, verdict: Verdict) -> None:
        """Count one answered query under its deciding stage."""
        self.total += 1
        self.by_kind[verdict.verifier.value] += 1
        self.verifier_time_s += verdict.time_s

    def screen(self, verdict: Verdict) -> None:
        """Count one maximality-screen call (outside ``total`` and the budget)."""
        self.screened += 1
        self.verifier_time_s += verdict.time_s

    def counts(self) -> dict[str, int]:
        """Queries per verifier kind, ``total``, ``cached`` (decisions made without a
        query, by monotonicity or a stored counterexample) and ``screened``."""
        return {**dict(sorted(self.by_kind.items())), "total": self.total,
                "cached": self.cached, "screened": self.screened}
