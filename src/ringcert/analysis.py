"""The main job: a problem, a search algorithm and a verifier -> a verified layered neighborhood.

``analyze`` is the Python API: one problem and its ``AnalysisOptions`` -> a frozen
``AnalysisResult`` that serializes to the JSON ``ringcert analyze`` writes. Batches of
analyses (models x test images x target sides) live in ``ringcert.batch.analyses``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ringcert.options import DEFAULTS, AnalysisOptions
from ringcert.problem import Problem
from ringcert.search.budget import BudgetSettings
from ringcert.search.extension import Extension, extend_along_ray, extended
from ringcert.search.frontier import Frontier, attack_frontier, refuted_by_frontier
from ringcert.search.result import SearchResult
from ringcert.search.runner import SearchSettings, default_settings, run_search
from ringcert.selection import Selection, parse_target
from ringcert.verify.verdict import Verifier
from ringcert.vocabulary import Algorithm, Side, VerifierKind


@dataclass(frozen=True, kw_only=True, eq=False)
class AnalysisResult:
    """One analysis: where it came from, the verified vector, what it cost, (``extension``)
    how far along its ray the envelope verifier took it, and (``frontier``) where a strong
    attack first breaks the model beyond it."""

    model: str
    image_index: int | None
    target: Side | Selection | None
    target_class: int | tuple[int, ...]
    perturbed_class: int | None
    k: int
    ring_sizes: tuple[int, ...]
    weights: tuple[float, ...]
    verifier: str
    search: SearchResult
    version: str
    frontier: Frontier | None = None
    extension: Extension | None = None

    @property
    def epsilon(self) -> np.ndarray:
        return np.asarray(self.search.epsilon)

    @property
    def size(self) -> float:
        return self.search.size

    @property
    def frontier_size(self) -> float | None:
        """``w . u``: the size of the per-ring frontier (1 on unbreakable rings)."""
        return None if self.frontier is None else float(np.dot(self.weights, self.frontier.upper()))

    def to_json(self) -> dict[str, Any]:
        search = self.search.to_json()
        return {
            "model": self.model, "image_index": self.image_index,
            "target": None if self.target is None else self.target.value,
            "target_class": (self.target_class if isinstance(self.target_class, int)
                             else list(self.target_class)),
            "perturbed_class": self.perturbed_class,
            "k": self.k, "rings": len(self.ring_sizes), "ring_sizes": list(self.ring_sizes),
            "weights": list(self.weights), "epsilon": search.pop("epsilon"),
            "size": search.pop("size"), "maximality": search.pop("maximality"),
            "queries": search.pop("queries"), "time_s": search.pop("time_s"),
            "algorithm": search.pop("algorithm"), "verifier": self.verifier,
            "ringcert_version": self.version, **search,
            "frontier": None if self.frontier is None else self.frontier.to_json(),
            "frontier_size": self.frontier_size,
            "extension": None if self.extension is None else self.extension.to_json(),
        }


def analyze(problem: Problem, options: AnalysisOptions = DEFAULTS, *,
            verifier: Verifier | VerifierKind | str | None = None,
            settings: SearchSettings | None = None,
            model_name: str = "model", image_index: int | None = None,
            target: Side | Selection | str | None = None, **changes: Any) -> AnalysisResult:
    """Find a verified, maximal-at-``delta`` epsilon vector for ``problem``.

    ``options`` (defaults: ``ringcert.options.AnalysisOptions``), with any of its fields
    changed by keyword (``analyze(problem, algorithm="naive", time_limit=30)``); the
    problem's own ``k`` and weights are used, not the options'. ``verifier``: a name (the
    registry's search-tuned verifier, as ``options.verifier``) or an instance to use as is. ``settings``
    overrides the search settings that ``delta``/``shrink``/``gradient`` build.
    ``model_name``, ``image_index`` and ``target`` only label the result.
    """
    from ringcert import __version__
    from ringcert.verify.registry import extension_verifier, search_verifier

    if verifier is not None and not isinstance(verifier, Verifier):
        changes["verifier"] = verifier
        verifier = None
    options = replace(options, **changes) if changes else options
    if settings is None:
        extra: dict[str, Any] = {}
        if options.algorithm is Algorithm.GUIDED:
            extra = {"shrink": options.shrink, "gradient": options.gradient}
        settings = default_settings(options.algorithm, delta=options.delta, **extra)
    engine = verifier if verifier is not None else search_verifier(
        options.verifier, deterministic=options.deterministic)
    search = run_search(problem, engine, algorithm=options.algorithm, settings=settings,
                        budget=BudgetSettings(max_queries=options.max_queries,
                                              time_limit=options.time_limit))
    extension = None
    if options.extend:
        extension = extend_along_ray(problem, search.epsilon, extension_verifier())
        search = extended(search, extension, problem)
    frontier = None
    if options.frontier:
        frontier = attack_frontier(problem, search.epsilon, delta=options.delta)
        search = refuted_by_frontier(search, frontier, delta=options.delta)
    return AnalysisResult(
        model=model_name, image_index=image_index,
        target=None if target is None else parse_target(target),
        target_class=problem.target_classes,
        perturbed_class=problem.perturbed_class, k=problem.k,
        ring_sizes=tuple(int(n) for n in problem.ring_sizes),
        weights=tuple(float(w) for w in problem.weights),
        verifier=engine.kind.value if verifier is not None else options.verifier.value,
        search=search, version=__version__, frontier=frontier, extension=extension)

