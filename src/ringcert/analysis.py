"""The main job: a problem, a search algorithm and a verifier -> a verified layered neighborhood.

``analyze`` is the Python API (one problem -> a frozen ``AnalysisResult`` that serializes
to the JSON ``ringcert analyze`` writes). ``run_task`` is the per-image work that
``ringcert analyze`` hands to ``ringcert.batch.run_batch`` (models x DOUBLE-MNIST test
images x target sides, one JSON and one heatmap per analysis, written atomically,
resumable, serial or on local processes or Dask).

Target side ``right`` means: target class = the right digit, perturbed object = the left
digit (its rings grow from the left digit's pixels); ``left`` the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ringcert.batch.tasks import AnalysisTask, TaskOutput
from ringcert.errors import RingcertError
from ringcert.models.modelfile import SHIPPED
from ringcert.problem import Problem, Weighting
from ringcert.samples import Side, sample_problem, test_sample
from ringcert.search.budget import BudgetSettings
from ringcert.search.result import Algorithm, GradientSource, SearchResult, Shrink
from ringcert.search.runner import SearchSettings, default_settings, run_search
from ringcert.verify.verdict import Verifier


@dataclass(frozen=True, kw_only=True, eq=False)
class AnalysisResult:
    """One analysis: where it came from, the verified vector and what it cost."""

    model: str
    image_index: int | None
    target: Side | None
    target_class: int
    perturbed_class: int | None
    k: int
    ring_sizes: tuple[int, ...]
    weights: tuple[float, ...]
    verifier: str
    search: SearchResult
    version: str

    @property
    def epsilon(self) -> np.ndarray:
        return np.asarray(self.search.epsilon)

    @property
    def size(self) -> float:
        return self.search.size

    def to_json(self) -> dict[str, Any]:
        search = self.search.to_json()
        return {
            "model": self.model, "image_index": self.image_index,
            "target": None if self.target is None else self.target.value,
            "target_class": self.target_class, "perturbed_class": self.perturbed_class,
            "k": self.k, "rings": len(self.ring_sizes), "ring_sizes": list(self.ring_sizes),
            "weights": list(self.weights), "epsilon": search.pop("epsilon"),
            "size": search.pop("size"), "maximality": search.pop("maximality"),
            "queries": search.pop("queries"), "time_s": search.pop("time_s"),
            "algorithm": search.pop("algorithm"), "verifier": self.verifier,
            "ringcert_version": self.version, **search,
        }


# Search-tuned verifier settings (a search asks hundreds of queries; UNKNOWN = not robust):
# alpha-CROWN only runs on queries CROWN nearly proves (AlphaCrown.max_gap), and the
# complete stage (branch and bound in the cascade) only on queries whose bound is already
# within the float padding of a proof (gap 0), with 10 s at most. Replayed alone, branch
# and bound proved 14 of 36 queries the default run's searches had left open (1.3-8.4 s
# each, all with bounds above -0.74), but inside a 20 s analysis its seconds cost as much as
# its proofs gain: the default run's 9 analyses (one torch thread each, two at a time) sum
# to 14.25 with gap 1 and 14.38 with gap 0. The MILP (``--verifier milp``) keeps to queries
# with at most 150 unstable ReLUs.
SEARCH_COMPLETE_SECONDS = 10.0
SEARCH_COMPLETE_GAP = 0.0
SEARCH_MAX_UNSTABLE = 150
SEARCH_ALPHA_GAP = 0.5


def _verifier_of(verifier: Verifier | str) -> tuple[Verifier, str]:
    """The verifier; by name, the registry's with the search-tuned settings above (with a
    time limit, the search lowers the complete stage's limit further, see ``QUERY_SHARE``)."""
    if isinstance(verifier, Verifier):
        return verifier, verifier.kind.value
    from ringcert.verify.registry import make_verifier

    try:
        return make_verifier(verifier, time_limit=SEARCH_COMPLETE_SECONDS,
                             max_unstable=SEARCH_MAX_UNSTABLE, alpha_gap=SEARCH_ALPHA_GAP,
                             complete_gap=SEARCH_COMPLETE_GAP), str(verifier)
    except ValueError:
        raise RingcertError(f"unknown verifier {verifier!r}") from None


def analyze(problem: Problem, *, algorithm: Algorithm | str = Algorithm.GUIDED,
            verifier: Verifier | str = "cascade", settings: SearchSettings | None = None,
            delta: float = 0.01, shrink: Shrink | str = Shrink.FIXED,
            gradient: GradientSource | str = GradientSource.BOTH,
            max_queries: int | None = None, time_limit: float | None = None,
            model_name: str = "model", image_index: int | None = None,
            target: Side | str | None = None) -> AnalysisResult:
    """Find a verified, maximal-at-``delta`` epsilon vector for ``problem``.

    ``settings`` overrides ``delta``/``shrink``/``gradient`` (which build the algorithm's
    default settings). ``model_name``, ``image_index`` and ``target`` only label the result.
    """
    from ringcert import __version__

    algorithm = Algorithm(algorithm)
    if not 0 < delta <= 1:
        raise RingcertError(f"delta must be in (0, 1], got {delta}")
    if settings is None:
        extra: dict[str, Any] = {}
        if algorithm is Algorithm.GUIDED:
            extra = {"shrink": Shrink(shrink), "gradient": GradientSource(gradient)}
        settings = default_settings(algorithm, delta=delta, **extra)
    engine, verifier_name = _verifier_of(verifier)
    search = run_search(problem, engine, algorithm=algorithm, settings=settings,
                        budget=BudgetSettings(max_queries=max_queries, time_limit=time_limit))
    return AnalysisResult(
        model=model_name, image_index=image_index,
        target=None if target is None else Side(target),
        target_class=problem.target, perturbed_class=problem.perturbed_class, k=problem.k,
        ring_sizes=tuple(int(n) for n in problem.ring_sizes),
        weights=tuple(float(w) for w in problem.weights), verifier=verifier_name,
        search=search, version=__version__)


def parse_weights(text: str) -> Weighting | np.ndarray:
    """``uniform``, ``area``, or a file holding a vector (JSON list or whitespace numbers)."""
    try:
        return Weighting(text)
    except ValueError:
        pass
    path = Path(text)
    if not path.is_file():
        raise RingcertError(f"weights must be uniform, area or a file; {text!r} is none")
    raw = path.read_text()
    try:
        values = json.loads(raw) if raw.lstrip().startswith("[") else raw.split()
        return np.asarray([float(value) for value in values], dtype=np.float64)
    except (ValueError, TypeError):
        raise RingcertError(f"weights file {text} does not hold a list of numbers") from None


def analysis_tasks(*, models: Sequence[str], indices: Sequence[int], sides: Sequence[Side],
                   settings: Mapping[str, Any]) -> list[AnalysisTask]:
    """One task per model x image x side; ``settings`` are ``run_task``'s analysis options.

    A model given by path also records the file's size and modification time in the
    settings, so a retrained file under the same path is not mistaken for done work.
    """
    tasks = []
    for model in models:
        extra: dict[str, Any] = {}
        path = Path(model)
        if model not in SHIPPED and path.is_file():
            stat = path.stat()
            extra = {"model_file": {"bytes": stat.st_size, "mtime": stat.st_mtime}}
        tasks += [AnalysisTask(model=model, image_index=index, target=side,
                               settings={**settings, **extra})
                  for index in indices for side in sides]
    return tasks


@lru_cache(maxsize=8)
def _network(reference: str) -> tuple[str, Any]:
    from ringcert.models.modelfile import load_model

    loaded = load_model(reference)
    return loaded.name, loaded.network


def run_task(task: AnalysisTask) -> TaskOutput:
    """The per-image work of a batch: analyze, and render the heatmap as an attachment.

    ``task.settings`` keys: algorithm, shrink, gradient, verifier, weights, delta, k,
    max_queries, time_limit. An image whose target is not in the model's top-k (the
    precondition) gives a record with ``skipped`` set, so a rerun does not retry it.
    """
    from ringcert.report.heatmap import heatmap_png

    options = dict(task.settings)
    name, network = _network(task.model)
    side = Side(task.target)
    sample = test_sample(task.image_index)
    try:
        problem = sample_problem(network, sample, target=side, k=options.get("k", 2),
                                 weights=parse_weights(options.get("weights", "uniform")))
    except RingcertError as error:
        return TaskOutput(record={"model": name, "image_index": task.image_index,
                                  "target": side.value, "skipped": str(error)})
    result = analyze(problem, algorithm=options.get("algorithm", "guided"),
                     verifier=options.get("verifier", "cascade"),
                     delta=options.get("delta", 0.01), shrink=options.get("shrink", "fixed"),
                     gradient=options.get("gradient", GradientSource.BOTH.value),
                     max_queries=options.get("max_queries"),
                     time_limit=options.get("time_limit"), model_name=name,
                     image_index=task.image_index, target=side)
    record = result.to_json()
    png = heatmap_png(image=problem.image.numpy(), rings=problem.rings, epsilon=result.epsilon,
                      perturbed_mask=problem.mask, target_mask=sample.masks[0, side.column],
                      title=(f"{name} #{task.image_index} target {side.value} ({problem.target}): "
                             f"size {result.size:.3f}, {record['queries']['total']} queries"))
    return TaskOutput(record=record, attachments={".png": png})


def summary_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The table ``ringcert analyze`` prints at the end."""
    header = (f"{'model':8} {'image':>5} {'target':6} {'t':>2} {'p':>2} {'rings':>5} "
              f"{'size':>8} {'refuted':>7} {'queries':>7} {'time s':>7}  note")
    lines = [header, "-" * len(header)]
    for record in records:
        start = f"{record['model']:8} {record['image_index']:5d} {record['target']:6}"
        if "skipped" in record:
            lines.append(f"{start}  skipped: {record['skipped']}")
            continue
        refuted = sum(1 for status in record["maximality"] if status == "refuted")
        lines.append(
            f"{start} {record['target_class']:2d} {record['perturbed_class']!s:>2} "
            f"{record['rings']:5d} {record['size']:8.3f} {refuted:7d} "
            f"{record['queries']['total']:7d} {record['time_s']:7.1f}")
    return "\n".join(lines)
