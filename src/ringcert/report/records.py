"""The one typed reader of the JSON records ``ringcert analyze`` writes.

Every report (the summary table, ``compare``, the HTML page) reads records through
``AnalysisRecord``, so a record's keys and vocabularies are checked in one place and the
reports compare Enum members, never strings. A record is either an analysis (what
``AnalysisResult.to_json`` writes, plus ``task_key`` and ``task`` from the results store)
or a skip record ``{"model", "image_index", "target", "skipped": why}`` for an image whose
target was not in the model's top-k.

Besides the size ``w . eps`` a record gives summaries of both sides of its answer, the
certified vector ``eps*`` and the attack frontier ``u`` (docs/design.md section 3.7; 1 on a
ring no attack broke): epsilon per pixel averaged over the image (``mean_pixel_eps``), on
ring 0, the perturbed object (``ring0_eps``), and on the rings crossing the target object
(``target_ring_eps``, from the optional ``target_rings`` key), each with a ``frontier_``
twin. Records of older runs, without frontier or target rings, give None there.

``read_analyses`` is the one reader of results folders (reports, benchmarks, tests): every
file it leaves out is reported with the reason, so a report can say what it did not show.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from ringcert.batch.store import result_files
from ringcert.errors import RingcertError
from ringcert.selection import Selection, parse_target
from ringcert.vocabulary import Algorithm, GradientSource, MaximalityStatus, Shrink, Side

NO_SETTING = "-"
"""How tables show a setting an algorithm does not have (the shrink rule of ``naive``)."""

SHOWN_PROBLEMS = 3
"""How many rejected files the error for a folder without analyses names."""

Results = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""One results folder or several."""

E = TypeVar("E", bound=Enum)


# --- checking one value ------------------------------------------------------------------------

def _get(raw: Mapping[str, Any], key: str) -> Any:
    if key not in raw:
        raise ValueError(f"missing key {key!r}")
    return raw[key]


def _invalid(key: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"invalid {key!r}: expected {expected}, got {reprlib.repr(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, key: str) -> int:
    if not _is_int(value):
        raise _invalid(key, "an integer", value)
    return int(value)


def _float(value: Any, key: str) -> float:
    if not (_is_int(value) or isinstance(value, float)):
        raise _invalid(key, "a number", value)
    return float(value)


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _invalid(key, "a string", value)
    return value


def _optional(read: Callable[[Any, str], Any], value: Any, key: str) -> Any:
    return None if value is None else read(value, key)


def _member(kind: type[E], value: Any, key: str) -> E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise _invalid(key, f"one of {choices}", value) from None


def _target(value: Any, key: str) -> Side | Selection:
    if not isinstance(value, str):
        raise _invalid(key, "left, right or p<i>-t<j>", value)
    try:
        return parse_target(value)
    except RingcertError:
        raise _invalid(key, "left, right or p<i>-t<j>", value) from None


def _classes(value: Any, key: str) -> int | tuple[int, ...]:
    """One target class, or the list of a multi-target analysis's classes."""
    if isinstance(value, list):
        return tuple(_int(item, key) for item in value)
    return _int(value, key)


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(key, "a list", value)
    return value


def _floats(value: Any, key: str) -> tuple[float, ...]:
    return tuple(_float(item, f"{key}[{index}]") for index, item in enumerate(_list(value, key)))


def _ints(value: Any, key: str) -> tuple[int, ...]:
    return tuple(_int(item, f"{key}[{index}]") for index, item in enumerate(_list(value, key)))


def _ring_set(value: Any, key: str) -> tuple[int, ...]:
    """Ring indices, sorted, each once (their range is checked against the record's rings)."""
    return tuple(sorted(set(_ints(value, key))))


def _statuses(value: Any, key: str) -> tuple[MaximalityStatus, ...]:
    return tuple(_member(MaximalityStatus, item, f"{key}[{index}]")
                 for index, item in enumerate(_list(value, key)))


def _total_queries(value: Any) -> int:
    if not isinstance(value, Mapping):
        raise _invalid("queries", "an object of counts", value)
    if "total" not in value:
        raise ValueError("missing key 'queries.total'")
    return _int(value["total"], "queries.total")


def _upper(value: Any, key: str) -> float | None:
    """One ring's frontier: a number in [0, 1], or None (no attack broke the ring up to 1)."""
    if value is None:
        return None
    upper = _float(value, key)
    if not 0.0 <= upper <= 1.0:
        raise _invalid(key, "a number in [0, 1] or null", value)
    return upper


def _frontier(value: Any) -> tuple[float | None, tuple[float | None, ...] | None]:
    """``(ray_scale, u)`` of the ``frontier`` object (None, None for a record without one:
    an older run, or ``--no-frontier``)."""
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise _invalid("frontier", "an object or null", value)
    if "rings" not in value:
        raise ValueError("missing key 'frontier.rings'")
    uppers = _list(value["rings"], "frontier.rings")
    return (_optional(_float, value.get("ray_scale"), "frontier.ray_scale"),
            tuple(_upper(item, f"frontier.rings[{index}]") for index, item in enumerate(uppers)))


def _extension_scale(value: Any) -> float | None:
    """The ``extension`` object's proved ``scale`` (None for a record without one)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _invalid("extension", "an object or null", value)
    if "scale" not in value:
        raise ValueError("missing key 'extension.scale'")
    return _float(value["scale"], "extension.scale")


def _algorithm(value: Any) -> tuple[Algorithm, Shrink | None, GradientSource | None]:
    """The search and, for the guided one, its shrink rule and gradient source:
    ``{"name": ..., "shrink": ..., "gradient": ..., other settings}`` or a bare name."""
    if isinstance(value, str):
        return _member(Algorithm, value, "algorithm"), None, None
    if not isinstance(value, Mapping):
        raise _invalid("algorithm", "an object with a name", value)
    name = _member(Algorithm, value.get("name"), "algorithm.name")
    shrink = value.get("shrink")
    gradient = value.get("gradient")
    return (name, None if shrink is None else _member(Shrink, shrink, "algorithm.shrink"),
            None if gradient is None else _member(GradientSource, gradient, "algorithm.gradient"))


# --- the record ------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class AnalysisRecord:
    """One stored analysis (or skip record), typed: what every report reads.

    On an analysis every field is set except possibly ``image_index``, ``target``,
    ``perturbed_class`` (a problem not from a DOUBLE-MNIST test image) and ``shrink`` /
    ``gradient`` (only the guided search has them). On a skip record (``skipped`` holds
    why) only ``model``, ``image_index`` and ``target`` are: the tuples are empty and the
    other fields None, and the reports leave it out of every statistic. ``queries`` is the
    total verifier query count. ``raw`` is the parsed JSON for anything else (``history``,
    ``task_key``, ...); it takes no part in equality. ``frontier_size`` and ``ray_scale``
    are the attack frontier's (None for records without one, or a ray no attack broke);
    ``frontier_upper`` its per-ring ``u`` (an entry None: no attack broke that ring up to
    1). ``target_rings`` lists the rings that hold pixels of the target object (the JSON key
    ``target_rings``; None for records that lack it). A record without a frontier (an older
    run, ``--no-frontier``) has None in all three frontier fields and every ``frontier_*``
    summary. ``extension_scale``: the ray extension's proved scale (``--extend``; None
    without one): ``epsilon`` is already the extended vector.
    """

    model: str
    image_index: int | None
    target: Side | Selection | None
    target_class: int | tuple[int, ...] | None
    perturbed_class: int | None
    k: int | None
    epsilon: tuple[float, ...]
    weights: tuple[float, ...]
    ring_sizes: tuple[int, ...]
    size: float | None
    maximality: tuple[MaximalityStatus, ...]
    queries: int | None
    time_s: float | None
    algorithm: Algorithm | None
    shrink: Shrink | None
    gradient: GradientSource | None
    verifier: str | None
    skipped: str | None
    frontier_size: float | None = None
    ray_scale: float | None = None
    frontier_upper: tuple[float | None, ...] | None = None
    target_rings: tuple[int, ...] | None = None
    extension_scale: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def gap(self) -> float | None:
        """Frontier size minus certified size: how much the verifier leaves to the model."""
        if self.frontier_size is None or self.size is None:
            return None
        return self.frontier_size - self.size

    @property
    def ray_frontier_size(self) -> float | None:
        """``w . clip(s eps*)`` at the ray scale ``s`` the attack broke: every robust box along
        the certified vector's own ray is smaller; None without a broken ray."""
        if self.ray_scale is None:
            return None
        return sum(w * min(1.0, self.ray_scale * eps) for w, eps in zip(self.weights, self.epsilon,
                                                                       strict=True))

    # --- summaries beyond w . eps: each certified (eps*) and frontier (u) --------------------

    @property
    def frontier_vector(self) -> tuple[float, ...] | None:
        """``u`` with 1.0 on the rings no attack broke (how far the box can grow at most), as
        in ``Frontier.upper``; None without a frontier."""
        if self.frontier_upper is None:
            return None
        return tuple(1.0 if upper is None else upper for upper in self.frontier_upper)

    def _pixel_mean(self, vector: Sequence[float] | None) -> float | None:
        pixels = sum(self.ring_sizes)
        if vector is None or not vector or pixels <= 0:
            return None
        return sum(size * value for size, value in zip(self.ring_sizes, vector, strict=True)) / pixels

    @staticmethod
    def _first(vector: Sequence[float] | None) -> float | None:
        return vector[0] if vector else None

    def _target_mean(self, vector: Sequence[float] | None) -> float | None:
        if vector is None or not self.target_rings:
            return None
        return sum(vector[ring] for ring in self.target_rings) / len(self.target_rings)

    @property
    def mean_pixel_eps(self) -> float | None:
        """Certified epsilon per pixel, averaged over the image: ``sum_d |ring d| eps*_d /
        (H W)`` (whatever the ring weights)."""
        return self._pixel_mean(self.epsilon)

    @property
    def frontier_mean_pixel_eps(self) -> float | None:
        """``mean_pixel_eps`` of the frontier ``u`` (1 on unbreakable rings)."""
        return self._pixel_mean(self.frontier_vector)

    @property
    def ring0_eps(self) -> float | None:
        """Certified epsilon on ring 0, the perturbed object itself."""
        return self._first(self.epsilon)

    @property
    def frontier_ring0_eps(self) -> float | None:
        """``u_0`` (1 if no attack broke ring 0)."""
        return self._first(self.frontier_vector)

    @property
    def target_ring_eps(self) -> float | None:
        """Certified epsilon averaged over the rings that cross the target object (each ring
        once, unweighted); None when the record has no ``target_rings``."""
        return self._target_mean(self.epsilon)

    @property
    def frontier_target_ring_eps(self) -> float | None:
        """``target_ring_eps`` of the frontier ``u`` (1 on unbreakable rings)."""
        return self._target_mean(self.frontier_vector)

    @classmethod
    def from_json(cls, raw: Any) -> AnalysisRecord:
        """Parse one record; ``ValueError`` naming the first missing or invalid key when
        ``raw`` is not an analysis or skip record."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        return cls._skip(raw) if "skipped" in raw else cls._analysis(raw)

    @staticmethod
    def _identity(raw: Mapping[str, Any]) -> dict[str, Any]:
        """Which analysis: model, image index and target side (every record has them)."""
        return {"model": _str(_get(raw, "model"), "model"),
                "image_index": _optional(_int, _get(raw, "image_index"), "image_index"),
                "target": _optional(_target, _get(raw, "target"), "target")}

    @classmethod
    def _skip(cls, raw: Mapping[str, Any]) -> AnalysisRecord:
        return cls(**cls._identity(raw), target_class=None, perturbed_class=None, k=None,
                   epsilon=(), weights=(), ring_sizes=(), size=None, maximality=(), queries=None,
                   time_s=None, algorithm=None, shrink=None, gradient=None, verifier=None,
                   skipped=_str(raw["skipped"], "skipped"), raw=dict(raw))

    @classmethod
    def _analysis(cls, raw: Mapping[str, Any]) -> AnalysisRecord:
        identity = cls._identity(raw)
        algorithm, shrink, gradient = _algorithm(_get(raw, "algorithm"))
        ray_scale, upper = _frontier(raw.get("frontier"))
        record = cls(
            **identity, target_class=_classes(_get(raw, "target_class"), "target_class"),
            perturbed_class=_optional(_int, _get(raw, "perturbed_class"), "perturbed_class"),
            k=_int(_get(raw, "k"), "k"), epsilon=_floats(_get(raw, "epsilon"), "epsilon"),
            weights=_floats(_get(raw, "weights"), "weights"),
            ring_sizes=_ints(_get(raw, "ring_sizes"), "ring_sizes"),
            size=_float(_get(raw, "size"), "size"),
            maximality=_statuses(_get(raw, "maximality"), "maximality"),
            queries=_total_queries(_get(raw, "queries")),
            time_s=_float(_get(raw, "time_s"), "time_s"), algorithm=algorithm, shrink=shrink,
            gradient=gradient, verifier=_str(_get(raw, "verifier"), "verifier"), skipped=None,
            frontier_size=_optional(_float, raw.get("frontier_size"), "frontier_size"),
            ray_scale=ray_scale, frontier_upper=upper,
            target_rings=_optional(_ring_set, raw.get("target_rings"), "target_rings"),
            extension_scale=_extension_scale(raw.get("extension")), raw=dict(raw))
        record._check_rings()
        return record

    def _check_rings(self) -> None:
        """Every per-ring list (the frontier's too) has one entry per ring, and every target
        ring is one of them (else the record is corrupt)."""
        for key in ("weights", "ring_sizes", "maximality"):
            if len(getattr(self, key)) != len(self.epsilon):
                raise ValueError(f"invalid {key!r}: {len(getattr(self, key))} entries for "
                                 f"{len(self.epsilon)} rings in 'epsilon'")
        if self.frontier_upper is not None and len(self.frontier_upper) != len(self.epsilon):
            raise ValueError(f"invalid 'frontier.rings': {len(self.frontier_upper)} entries for "
                             f"{len(self.epsilon)} rings in 'epsilon'")
        if self.target_rings and not 0 <= self.target_rings[0] <= self.target_rings[-1] < len(self.epsilon):
            raise _invalid("target_rings", f"ring indices below {len(self.epsilon)}", list(self.target_rings))

    @property
    def label(self) -> str:
        """``model #index side``: which analysis this is, for messages."""
        return f"{self.model} #{show(self.image_index)} {show(self.target)}"


def show(value: Side | Selection | int | tuple[int, ...] | None) -> str:
    """An optional identity field as the reports print it: a side's or selection's value,
    classes joined by ``+``, ``-`` for none."""
    if value is None:
        return NO_SETTING
    if isinstance(value, tuple):
        return "+".join(map(str, value))
    return value.value if isinstance(value, Side | Selection) else str(value)


def image_key(record: AnalysisRecord) -> tuple[Any, ...]:
    """What makes two analyses of one image comparable (two models, or two settings of one):
    the image (and its data file), the target, ``k`` and the ring weights (the rings depend
    on the image only)."""
    return (record.image_index, show(record.target), record.k, record.weights, record.raw.get("data"))


@dataclass(frozen=True, kw_only=True)
class Variant:
    """How an analysis was run: the grouping key of every table row and plot series."""

    algorithm: Algorithm
    shrink: Shrink | None
    gradient: GradientSource | None
    verifier: str

    @classmethod
    def of(cls, record: AnalysisRecord) -> Variant:
        """The variant of an analysis (a skip record has none: ``ValueError``)."""
        if record.algorithm is None or record.verifier is None:
            raise ValueError(f"{record.label} was skipped: it has no algorithm or verifier")
        return cls(algorithm=record.algorithm, shrink=record.shrink, gradient=record.gradient,
                   verifier=record.verifier)

    @property
    def columns(self) -> tuple[str, str, str, str]:
        """(algorithm, shrink, gradient, verifier) as the tables print them; also the sort key."""
        return (self.algorithm.value, NO_SETTING if self.shrink is None else self.shrink.value,
                NO_SETTING if self.gradient is None else self.gradient.value, self.verifier)

    @property
    def label(self) -> str:
        """``algorithm/shrink/gradient`` without the settings the algorithm lacks."""
        return "/".join(part for part in self.columns[:3] if part != NO_SETTING)


# --- loading folders -------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Loaded:
    """The records under some results folders and every JSON file left out, with why.

    ``records`` holds ``(json path, record)`` (path None for records not read from a file),
    skip records included; ``problems`` the files that gave no record (unreadable JSON,
    not an analysis record, a duplicate of an analysis already read); ``roots`` the
    folders that were read.
    """

    records: tuple[tuple[Path | None, AnalysisRecord], ...]
    problems: tuple[tuple[Path, str], ...] = ()
    roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, records: Sequence[AnalysisRecord]) -> Loaded:
        """Records already in memory (no files, no problems)."""
        return cls(records=tuple((None, record) for record in records))

    @property
    def analyses(self) -> tuple[tuple[Path | None, AnalysisRecord], ...]:
        """The records that are analyses (not skip records): what the statistics cover."""
        return tuple(item for item in self.records if item[1].skipped is None)

    @property
    def skipped(self) -> tuple[tuple[Path | None, str], ...]:
        """Everything that is not in the statistics, with why: the problem files, then the
        skip records."""
        return self.problems + tuple(
            (path, f"analysis {record.label} skipped: {record.skipped}")
            for path, record in self.records if record.skipped is not None)

    def require_analyses(self) -> tuple[tuple[Path | None, AnalysisRecord], ...]:
        """``analyses``, or a ``RingcertError`` saying what was looked at and why nothing
        was an analysis (the first ``SHOWN_PROBLEMS`` reasons)."""
        if analyses := self.analyses:
            return analyses
        where = ", ".join(map(str, self.roots)) or "the given records"
        skipped = self.skipped
        if not skipped:
            raise RingcertError(f"no analysis results in {where}: it holds no *.json files")
        reasons = "; ".join(f"{NO_SETTING if path is None else path}: {why}"
                            for path, why in skipped[:SHOWN_PROBLEMS])
        more = f"; and {len(skipped) - SHOWN_PROBLEMS} more" if len(skipped) > SHOWN_PROBLEMS else ""
        raise RingcertError(f"no analysis results in {where}: looked at {len(skipped)} "
                            f"*.json files, none is an analysis: {reasons}{more}")


def _folders(results: Results) -> list[Path]:
    if isinstance(results, str | os.PathLike):
        return [Path(results)]
    return [Path(folder) for folder in results]


def _read_json(path: Path) -> tuple[Any, str | None]:
    """The parsed JSON in ``path``, or (None, why it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, "unreadable JSON: not UTF-8 text"
    except OSError as error:
        return None, f"unreadable: {error.strerror or error}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, f"unreadable JSON: {error.msg} at line {error.lineno} column {error.colno}"


def _parse(path: Path) -> AnalysisRecord | str:
    """The record in ``path``, or why it gives none."""
    raw, why = _read_json(path)
    if why is not None:
        return why
    try:
        return AnalysisRecord.from_json(raw)
    except ValueError as error:
        return f"not an analysis record: {error}"


def read_analyses(results: Results, *, exclude: str | os.PathLike[str] | None = None) -> Loaded:
    """Every record under one or more results folders (any depth), each analysis once.

    Folders in the given order, files sorted (``batch.store.result_files``), hidden and
    temp files ignored, and a record whose ``task_key`` was already read is a duplicate
    (a copy of the same analysis) and left out. Every file left out is in
    ``problems`` with the reason, and skip records are kept. Files under ``exclude`` (a
    report written inside its results folder) are not looked at. ``RingcertError`` for a
    folder that does not exist.
    """
    roots = _folders(results)
    for root in roots:
        if not root.is_dir():
            raise RingcertError(f"results folder {root} does not exist")
    left_out = None if exclude is None else Path(exclude).resolve()
    records: list[tuple[Path | None, AnalysisRecord]] = []
    problems: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    for path in (path for root in roots for path in result_files(root)):
        if left_out is not None and path.resolve().is_relative_to(left_out):
            continue
        outcome = _parse(path)
        if not isinstance(outcome, str) and isinstance(key := outcome.raw.get("task_key"), str):
            if key in seen:
                outcome = f"duplicate of {seen[key]} (same task_key)"
            else:
                seen[key] = path
        if isinstance(outcome, str):
            problems.append((path, outcome))
        else:
            records.append((path, outcome))
    return Loaded(records=tuple(records), problems=tuple(problems), roots=tuple(roots))
