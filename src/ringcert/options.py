"""The settings of one analysis, with their defaults in one place.

``AnalysisOptions`` is read by the Python API (``ringcert.analysis.analyze``), the CLI (its
option defaults and choices) and the batch tasks (``to_settings`` is what enters a task's
identity, ``from_settings`` what a worker rebuilds). Torch-free, so the CLI can build its
parser without loading the verifiers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

from ringcert.errors import RingcertError
from ringcert.vocabulary import Algorithm, GradientSource, Shrink, VerifierKind, Weighting

COMPLETE_SECONDS = 60.0
"""The complete stage's time limit for one query asked alone (``ringcert verify``,
``make_verifier``); searches use the registry's shorter, search-tuned limit."""

MAX_K = 9
"""The largest top-k on DOUBLE-MNIST: 10 classes, one of them the target."""


@dataclass(frozen=True, kw_only=True)
class AnalysisOptions:
    """How to analyse one problem.

    ``weights``: ``uniform``, ``area`` or a file holding one number per ring
    (``ringcert.problem.parse_weights``); ``delta``: the resolution of maximality;
    ``max_queries`` / ``time_limit``: the analysis's budget in verifier queries and
    seconds (None: no limit; the time limit is checked between queries). A time-limited
    analysis depends on machine load; a query budget alone is reproducible. ``frontier``:
    after the search, attack the certified vector for the model's own boundary
    (``ringcert.search.frontier``), outside the budget. ``extend``: between the two, prove
    larger multiples of the vector with the envelope verifier (``ringcert.search.extension``),
    also outside the budget.
    """

    algorithm: Algorithm = Algorithm.GUIDED
    shrink: Shrink = Shrink.FIXED
    gradient: GradientSource = GradientSource.BOTH
    verifier: VerifierKind = VerifierKind.CASCADE
    weights: str = Weighting.UNIFORM.value
    delta: float = 0.01
    k: int | None = None  # None: the number of objects in the image (2 on DOUBLE-MNIST)
    max_queries: int | None = None
    time_limit: float | None = 20.0
    frontier: bool = True
    extend: bool = False

    def __post_init__(self) -> None:
        for name, kind in (("algorithm", Algorithm), ("shrink", Shrink),
                           ("gradient", GradientSource), ("verifier", VerifierKind)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                choices = ", ".join(member.value for member in kind)
                raise RingcertError(f"{name} must be one of {choices}, got {value!r}") from None
        if not (isinstance(self.delta, int | float) and 0 < self.delta <= 1):
            raise RingcertError(f"delta must be in (0, 1], got {self.delta}")
        if self.k is not None and not (isinstance(self.k, int) and 1 <= self.k <= MAX_K):
            raise RingcertError(f"k must be in 1..{MAX_K}, got {self.k}")
        for name in ("frontier", "extend"):
            if not isinstance(getattr(self, name), bool):
                raise RingcertError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.max_queries is not None and not (isinstance(self.max_queries, int)
                                                 and self.max_queries > 0):
            raise RingcertError(f"max_queries must be a positive integer, got {self.max_queries}")
        if self.time_limit is not None and not (isinstance(self.time_limit, int | float)
                                                and math.isfinite(self.time_limit)
                                                and self.time_limit > 0):
            raise RingcertError(f"time_limit must be a positive number of seconds, got {self.time_limit}")

    @property
    def deterministic(self) -> bool:
        """A query budget and no time limit: the analysis does not depend on machine load
        (the complete stage is then bounded by work, not time; ``verify.registry``)."""
        return self.max_queries is not None and self.time_limit is None

    def to_settings(self) -> dict[str, Any]:
        """JSON-ready settings (enum values as strings). ``extend`` appears only when on, so
        that results folders written before the option existed keep their identity."""
        settings = {key: value.value if isinstance(value, Enum) else value
                    for key, value in asdict(self).items()}
        if not self.extend:
            del settings["extend"]
        return settings

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AnalysisOptions:
        """The options ``to_settings`` wrote; keys that are no option are ignored (a task's
        settings also record the model file's identity)."""
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in settings.items() if key in names})


DEFAULTS = AnalysisOptions()
