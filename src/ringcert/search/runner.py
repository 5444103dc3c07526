"""Run one search on one problem: budget, oracle, algorithm, maximality pass, result."""

from __future__ import annotations

import dataclasses
import time
from enum import Enum
from typing import Any

import numpy as np

from ringcert.problem import Problem
from ringcert.search.budget import Budget, BudgetExhausted, BudgetSettings
from ringcert.search.guided import GuidedSettings, guided_search
from ringcert.search.maximality import maximality_pass
from ringcert.search.naive import NaiveSettings, naive_search
from ringcert.search.oracle import Oracle
from ringcert.search.result import SearchResult
from ringcert.search.uniform import UniformSettings, uniform_search
from ringcert.verify.verdict import Verifier
from ringcert.vocabulary import Algorithm, MaximalityStatus

SearchSettings = UniformSettings | NaiveSettings | GuidedSettings

SEARCH_SHARE = 0.75
"""Share of the query and time limits the search may use; the maximality pass always has
the rest, so a binding budget still leaves each ring's status checked where it can be."""
_SETTINGS: dict[Algorithm, type] = {Algorithm.UNIFORM: UniformSettings,
                                    Algorithm.NAIVE: NaiveSettings,
                                    Algorithm.GUIDED: GuidedSettings}


def default_settings(algorithm: Algorithm, **overrides: Any) -> SearchSettings:
    """The algorithm's settings dataclass with ``overrides`` (unknown names raise)."""
    return _SETTINGS[algorithm](**overrides)


def settings_json(settings: SearchSettings) -> dict[str, Any]:
    return {key: value.value if isinstance(value, Enum) else value
            for key, value in dataclasses.asdict(settings).items()}


def run_search(problem: Problem, verifier: Verifier, *, algorithm: Algorithm = Algorithm.GUIDED,
               settings: SearchSettings | None = None,
               budget: BudgetSettings | None = None) -> SearchResult:
    """Search, then the maximality pass (which grows every ring to ``delta`` except for the
    uniform baseline). Everything, maximality included, runs inside one budget, of which
    the search may use ``SEARCH_SHARE``."""
    algorithm = Algorithm(algorithm)
    settings = settings if settings is not None else default_settings(algorithm)
    if not isinstance(settings, _SETTINGS[algorithm]):
        raise TypeError(f"{algorithm.value} needs {_SETTINGS[algorithm].__name__}")
    counter = Budget(budget)
    oracle = Oracle(problem, verifier, counter)
    began = time.perf_counter()
    exhausted = False
    counter.share = SEARCH_SHARE
    try:
        if algorithm is Algorithm.UNIFORM:
            uniform_search(oracle, settings)
        elif algorithm is Algorithm.NAIVE:
            naive_search(oracle, settings)
        else:
            guided_search(oracle, settings)
    except BudgetExhausted:
        exhausted = True
    search_queries = counter.total
    counter.share = 1.0
    maximality_began = time.perf_counter()
    eps, statuses = maximality_pass(oracle, oracle.best, delta=settings.delta,
                                    grow=algorithm is not Algorithm.UNIFORM)
    exhausted = exhausted or MaximalityStatus.UNCHECKED in statuses
    if not any(np.array_equal(eps, vector) for vector in oracle.proved):
        raise AssertionError("a search reported a vector it did not verify")
    return SearchResult(
        algorithm=algorithm, settings=settings_json(settings),
        epsilon=tuple(float(value) for value in eps), size=problem.size(eps),
        maximality=statuses, queries=counter.counts(), search_queries=search_queries,
        maximality_queries=counter.total - search_queries,
        time_s=time.perf_counter() - began,
        maximality_time_s=time.perf_counter() - maximality_began, budget_exhausted=exhausted,
        history=tuple(oracle.history))
