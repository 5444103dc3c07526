"""Compare models x algorithms over a set of stored analyses: tables and plots.

Reads the JSON records that ``ringcert analyze`` writes through
:mod:`ringcert.report.records` (any folder of runs: every ``*.json`` record below it counts,
a copy of the same analysis only once; every file or skip record left out is listed in
``Comparison.skipped`` with the reason) and produces

- ``summary.md`` / ``summary.csv``: one row per model x algorithm x shrink x gradient x
  verifier with
  the mean size ``w . eps`` with its 95% t-interval, the median size, the tight ring
  fraction (share of the rings below ``eps = 1`` whose growth by ``delta`` was *refuted* by
  a checked counterexample, i.e. maximal for certain rather than only unproven), verifier
  queries and time;
- ``two_sided.md`` / ``two_sided.csv``: per model x variant and measure (``MEASURES``: size,
  mean epsilon per pixel, epsilon on ring 0, mean epsilon on the rings crossing the target,
  ray scale) the certified side (``eps*``) and the attack frontier's (``u``, 1 on rings no
  attack broke), each as mean with 95% t-interval and median, and their paired difference
  (for the size: the gap); ``n/a`` where no analysis has a frontier (older runs,
  ``--no-frontier``);
- ``paired.md`` / ``paired.csv``: per variant and ordered pair of models (A, B), over the
  (image, target) pairs both analysed, how often A's certified size is above B's certified
  size and above B's frontier size, each with a one-sided sign test. The second is the
  verifier-independent statement: each ring of a robust box of B that contains B's
  certified box stays below that ring's frontier, so its size is at most ``w . u`` and below
  A's certified size, whatever verifier would certify it (it says nothing about B's boxes
  that do not contain its certified one); and A's frontier size above B's, the ranking on the
  attack side alone;
- ``shrink.md`` / ``shrink.csv``: the cutting-weight rules against each other per model over
  the images both analysed (``ringcert.report.shrink_rules``);
- the plots of ``ringcert.report.figures``.

Reads results only; never verifies.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from ringcert.batch.store import write_atomic
from ringcert.report.figures import draw_figures
from ringcert.report.records import (
    NO_SETTING,
    AnalysisRecord,
    Loaded,
    Results,
    Variant,
    image_key,
    read_analyses,
)
from ringcert.report.relations import RelationMatrix, relation_matrices, write_relations
from ringcert.report.shown import Shown, csv_text, markdown, number, p_text
from ringcert.report.shrink_rules import ShrinkRow, shrink_comparison, shrink_csv, shrink_shown
from ringcert.report.statistics import CONFIDENCE, Estimate, sign_test
from ringcert.vocabulary import MaximalityStatus

PAIRED_LEVEL = 0.05
"""The sign-test level at which the paired comparison states a conclusion."""


VARIANT_COLUMNS = ("algorithm", "shrink", "gradient", "verifier")


# --- the summary: one row per model x variant ------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SummaryRow:
    """One line of the comparison table."""

    model: str
    algorithm: str
    shrink: str
    gradient: str
    verifier: str
    analyses: int
    mean_size: float
    median_size: float
    size_ci_low: float  # the CONFIDENCE t-interval of mean_size (nan for one analysis)
    size_ci_high: float
    tight_fraction: float  # refuted rings / rings with eps < 1 (nan if there are none)
    mean_queries: float
    mean_time_s: float


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """What ``compare`` wrote: the rows and paths of its four tables (``summary``,
    ``two_sided``, ``paired``, ``shrink``, each as Markdown and CSV), the figures, ``relations.md`` (mean
    relation matrices and the neighbour test, for images of three or more objects), and what it left
    out: ``(json path or None, why)`` per unreadable file, file that is no analysis record,
    duplicate, and skip record."""

    rows: tuple[SummaryRow, ...]
    markdown: Path
    csv: Path
    two_sided: tuple[TwoSidedRow, ...]
    two_sided_markdown: Path
    two_sided_csv: Path
    paired: tuple[PairedRow, ...]
    paired_markdown: Path
    paired_csv: Path
    shrink: tuple[ShrinkRow, ...]
    shrink_markdown: Path
    shrink_csv: Path
    figures: tuple[Path, ...]
    skipped: tuple[tuple[Path | None, str], ...] = ()
    relations: Path | None = None  # relations.md: matrices of images of 3+ objects, if any
    matrices: tuple[RelationMatrix, ...] = ()  # those matrices, one per image

    @property
    def tables(self) -> tuple[Path, ...]:
        """Every table file written, Markdown then CSV of each."""
        return (self.markdown, self.csv, self.two_sided_markdown, self.two_sided_csv,
                self.paired_markdown, self.paired_csv, self.shrink_markdown, self.shrink_csv)


def _tight(records: Sequence[AnalysisRecord]) -> float:
    statuses = [status for record in records for status in record.maximality
                if status is not MaximalityStatus.SATURATED]
    return statuses.count(MaximalityStatus.REFUTED) / len(statuses) if statuses else math.nan


def _row(model: str, variant: Variant, group: Sequence[AnalysisRecord]) -> SummaryRow:
    sizes = Estimate.of(record.size for record in group)
    algorithm, shrink, gradient, verifier = variant.columns
    return SummaryRow(
        model=model, algorithm=algorithm, shrink=shrink, gradient=gradient, verifier=verifier,
        analyses=len(group), mean_size=sizes.mean, median_size=sizes.median,
        size_ci_low=sizes.low, size_ci_high=sizes.high, tight_fraction=_tight(group),
        mean_queries=float(np.mean([record.queries for record in group])),
        mean_time_s=float(np.mean([record.time_s for record in group])))


def _groups(records: Sequence[AnalysisRecord]) -> list[tuple[tuple[str, Variant], list[AnalysisRecord]]]:
    """The records per model x variant, sorted by model then algorithm, shrink, gradient and
    verifier."""
    groups: dict[tuple[str, Variant], list[AnalysisRecord]] = defaultdict(list)
    for record in records:
        groups[(record.model, Variant.of(record))].append(record)
    return sorted(groups.items(), key=lambda item: (item[0][0], *item[0][1].columns))


def summarize(records: Sequence[AnalysisRecord]) -> list[SummaryRow]:
    """Table rows, one per model x variant, sorted by model then algorithm, shrink, gradient
    and verifier. ``records`` must be analyses (``Loaded.analyses``), not skip records."""
    return [_row(model, variant, group) for (model, variant), group in _groups(records)]


def _ci(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{number(low)}, {number(high)}]"


SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"), ("algorithm", "algorithm"), ("shrink", "shrink"), ("gradient", "gradient"),
    ("verifier", "verifier"), ("analyses", "analyses"), ("mean_size", "mean size"),
    ("size_ci", f"{CONFIDENCE:.0%} CI"), ("median_size", "median size"),
    ("tight_fraction", "tight (refuted) rings"), ("mean_queries", "mean queries"),
    ("mean_time_s", "mean time (s)"))
"""(field, header) of the shown summary; ``size_ci`` is the interval of ``mean_size``."""


def summary_shown(rows: Sequence[SummaryRow]) -> Shown:
    def cell(row: SummaryRow, name: str) -> str:
        return _ci(row.size_ci_low, row.size_ci_high) if name == "size_ci" else number(getattr(row, name))

    return Shown(headers=tuple(header for _, header in SUMMARY_COLUMNS),
                 numeric=tuple(name not in ("model", *VARIANT_COLUMNS) for name, _ in SUMMARY_COLUMNS),
                 rows=tuple(tuple(cell(row, name) for name, _ in SUMMARY_COLUMNS) for row in rows))


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    return markdown(summary_shown(rows))


def csv_table(rows: Sequence[SummaryRow]) -> str:
    return csv_text([asdict(row) for row in rows], [field.name for field in fields(SummaryRow)])


# --- two-sided summaries: certified against frontier -----------------------------------------

@dataclass(frozen=True)
class Measure:
    """A per-analysis summary with its certified and frontier sides: the names of the
    ``AnalysisRecord`` properties (``certified`` None: the measure has only a frontier side)."""

    name: str
    label: str
    certified: str | None
    frontier: str


MEASURES = (
    Measure("size", "size w · eps", "size", "frontier_size"),
    Measure("mean_pixel_eps", "eps per pixel", "mean_pixel_eps", "frontier_mean_pixel_eps"),
    Measure("ring0_eps", "eps on ring 0", "ring0_eps", "frontier_ring0_eps"),
    Measure("target_ring_eps", "eps on target rings", "target_ring_eps", "frontier_target_ring_eps"),
    Measure("ray_scale", "ray scale", None, "ray_scale"),
)
"""The rows of the two-sided table, per model x variant, in this order: the size, epsilon per
pixel (area-weighted mean over the image), on ring 0 (the perturbed object), averaged over the
rings crossing the target object, and the ray scale (the smallest ``s`` at which the attack
broke ``s eps*``; only a frontier side)."""


@dataclass(frozen=True, kw_only=True)
class TwoSidedRow:
    """One measure of one model x variant: over its analyses, the certified side (eps*),
    the frontier side (u, or the ray scale) and ``difference`` = frontier - certified,
    paired per analysis (for ``size``: the gap). A side no analysis has is ``n = 0``."""

    model: str
    algorithm: str
    shrink: str
    gradient: str
    verifier: str
    measure: str
    certified: Estimate
    frontier: Estimate
    difference: Estimate


def _value(record: AnalysisRecord, name: str | None) -> float | None:
    return None if name is None else getattr(record, name)


def _difference(record: AnalysisRecord, measure: Measure) -> float | None:
    certified, frontier = _value(record, measure.certified), _value(record, measure.frontier)
    return None if certified is None or frontier is None else frontier - certified


def two_sided(records: Sequence[AnalysisRecord]) -> list[TwoSidedRow]:
    """Rows per model x variant (sorted as ``summarize``) x ``MEASURES``. The frontier side
    covers the analyses with a frontier (the ray scale: those whose ray an attack broke),
    the target-ring measure those whose record lists ``target_rings``."""
    rows = []
    for (model, variant), group in _groups(records):
        algorithm, shrink, gradient, verifier = variant.columns
        rows += [TwoSidedRow(
            model=model, algorithm=algorithm, shrink=shrink, gradient=gradient, verifier=verifier,
            measure=measure.name,
            certified=Estimate.of(_value(record, measure.certified) for record in group),
            frontier=Estimate.of(_value(record, measure.frontier) for record in group),
            difference=Estimate.of(_difference(record, measure) for record in group))
            for measure in MEASURES]
    return rows


TWO_SIDED_HEADERS = ("model", "algorithm", "shrink", "gradient", "verifier", "measure", "n certified",
                     f"certified: mean [{CONFIDENCE:.0%} CI]", "certified median", "n frontier",
                     f"frontier: mean [{CONFIDENCE:.0%} CI]", "frontier median",
                     f"frontier − certified: mean [{CONFIDENCE:.0%} CI]")


def two_sided_shown(rows: Sequence[TwoSidedRow]) -> Shown:
    labels = {measure.name: measure for measure in MEASURES}
    shown = []
    for row in rows:
        measure = labels[row.measure]
        certified = (NO_SETTING,) * 3 if measure.certified is None else (
            str(row.certified.n), row.certified.text, number(row.certified.median))
        difference = NO_SETTING if measure.certified is None else row.difference.text
        shown.append((row.model, *(getattr(row, name) for name in VARIANT_COLUMNS), measure.label,
                      *certified, str(row.frontier.n), row.frontier.text, number(row.frontier.median),
                      difference))
    return Shown(headers=TWO_SIDED_HEADERS, numeric=(False,) * 6 + (True,) * 7, rows=tuple(shown))


def two_sided_csv(rows: Sequence[TwoSidedRow]) -> str:
    flat = [{"model": row.model, **{name: getattr(row, name) for name in VARIANT_COLUMNS},
             "measure": row.measure, **row.certified.flat("certified"), **row.frontier.flat("frontier"),
             **row.difference.flat("difference")} for row in rows]
    names = ["model", *VARIANT_COLUMNS, "measure",
             *(name for side in ("certified", "frontier", "difference")
               for name in Estimate.of([]).flat(side))]
    return csv_text(flat, names)


# --- paired comparison of models over the same images ----------------------------------------

@dataclass(frozen=True, kw_only=True)
class PairedRow:
    """Model A against model B (one variant) over the ``pairs`` (image, target) analysed by
    both: how often A's certified size is above B's certified size (``certified_*``) and
    above B's frontier size (``frontier_*``, over the ``frontier_pairs`` where B has a
    frontier), as wins (A above), ties and losses, with the one-sided sign test's p-value
    (ties dropped; nan without a win or a loss) for "A above B more often than not".
    ``ray_*`` compare A's certified size with B's ray frontier size ``w . clip(s eps*)``
    (over the ``ray_pairs`` where B's ray was broken): every robust box of B along its own
    certified vector's ray is smaller than that, whatever verifier would certify it.
    ``attacked_*`` rank the models on the attack side alone: A's frontier size above B's
    (over the ``attacked_pairs`` where both have a frontier), the model's own boundary as far
    as the attack found it."""

    model_a: str
    model_b: str
    algorithm: str
    shrink: str
    gradient: str
    verifier: str
    pairs: int
    certified_wins: int
    certified_ties: int
    certified_losses: int
    certified_p: float
    frontier_pairs: int
    frontier_wins: int
    frontier_ties: int
    frontier_losses: int
    frontier_p: float
    ray_pairs: int = 0
    ray_wins: int = 0
    ray_ties: int = 0
    ray_losses: int = 0
    ray_p: float = math.nan
    attacked_pairs: int = 0
    attacked_wins: int = 0
    attacked_ties: int = 0
    attacked_losses: int = 0
    attacked_p: float = math.nan

    @property
    def conclusion(self) -> str:
        """What the sign tests at ``PAIRED_LEVEL`` say: A's certified sizes above B's
        frontier sizes ("on both sides": B's robust boxes that contain its certified one
        are smaller, whatever verifier would certify them), only above B's certified sizes
        (a better verifier for B might reverse it), or nothing."""
        a, b = self.model_a, self.model_b
        if self.frontier_p < PAIRED_LEVEL:
            return f"{a} > {b} on both sides"
        if self.ray_p < PAIRED_LEVEL:
            return f"{a} > {b} beyond {b}'s ray frontier, not its per-ring one"
        if self.certified_p < PAIRED_LEVEL:
            if self.frontier_pairs == 0:
                return f"{a} > {b} as certified ({b} has no frontier)"
            return f"{a} > {b} as certified, not beyond {b}'s frontier"
        return "no conclusion"


def _counts(pairs: Sequence[tuple[float, float]]) -> tuple[int, int, int]:
    wins = sum(1 for a, b in pairs if a > b)
    losses = sum(1 for a, b in pairs if a < b)
    return wins, len(pairs) - wins - losses, losses


def paired_comparison(records: Sequence[AnalysisRecord]) -> list[PairedRow]:
    """One row per variant and ordered pair of models (A, B) that analysed at least one
    common (image, target), sorted by variant, then A, then B. Records without an image
    index take no part; of several analyses of one image by one model and variant the first
    counts."""
    found: dict[Variant, dict[tuple[Any, ...], dict[str, AnalysisRecord]]] = defaultdict(
        lambda: defaultdict(dict))
    for record in records:
        if record.image_index is not None:
            found[Variant.of(record)][image_key(record)].setdefault(record.model, record)
    rows = []
    for variant in sorted(found, key=lambda variant: variant.columns):
        images = list(found[variant].values())
        models = sorted({model for by_model in images for model in by_model})
        for a, b in permutations(models, 2):
            both = [(by_model[a], by_model[b]) for by_model in images if a in by_model and b in by_model]
            if not both:
                continue
            certified = _counts([(x.size, y.size) for x, y in both])
            frontier = [(x.size, y.frontier_size) for x, y in both if y.frontier_size is not None]
            beyond = _counts(frontier)
            ray = [(x.size, y.ray_frontier_size) for x, y in both if y.ray_frontier_size is not None]
            along = _counts(ray)
            frontiers = [(x.frontier_size, y.frontier_size) for x, y in both
                         if x.frontier_size is not None and y.frontier_size is not None]
            attacked = _counts(frontiers)
            algorithm, shrink, gradient, verifier = variant.columns
            rows.append(PairedRow(
                model_a=a, model_b=b, algorithm=algorithm, shrink=shrink, gradient=gradient,
                verifier=verifier, pairs=len(both), certified_wins=certified[0],
                certified_ties=certified[1], certified_losses=certified[2],
                certified_p=sign_test(certified[0], certified[2]), frontier_pairs=len(frontier),
                frontier_wins=beyond[0], frontier_ties=beyond[1], frontier_losses=beyond[2],
                frontier_p=sign_test(beyond[0], beyond[2]), ray_pairs=len(ray), ray_wins=along[0],
                ray_ties=along[1], ray_losses=along[2], ray_p=sign_test(along[0], along[2]),
                attacked_pairs=len(frontiers), attacked_wins=attacked[0], attacked_ties=attacked[1],
                attacked_losses=attacked[2], attacked_p=sign_test(attacked[0], attacked[2])))
    return rows


PAIRED_HEADERS = ("algorithm", "shrink", "gradient", "verifier", "A", "B", "pairs",
                  "A certified > B certified", "p", "pairs with B frontier",
                  "A certified > B frontier", "p", "A certified > B ray frontier", "p",
                  f"conclusion (sign test, {PAIRED_LEVEL:.0%})", "A frontier > B frontier", "p")


def _wins(wins: int, ties: int, pairs: int) -> str:
    if pairs == 0:
        return "n/a"
    return f"{wins} of {pairs}" + (f" ({ties} tied)" if ties else "")


def paired_shown(rows: Sequence[PairedRow]) -> Shown:
    return Shown(headers=PAIRED_HEADERS, numeric=(False,) * 6 + (True,) * 8 + (False, True, True),
                 rows=tuple(
        (*(getattr(row, name) for name in VARIANT_COLUMNS), row.model_a, row.model_b, str(row.pairs),
         _wins(row.certified_wins, row.certified_ties, row.pairs), p_text(row.certified_p),
         str(row.frontier_pairs), _wins(row.frontier_wins, row.frontier_ties, row.frontier_pairs),
         p_text(row.frontier_p), _wins(row.ray_wins, row.ray_ties, row.ray_pairs), p_text(row.ray_p),
         row.conclusion, _wins(row.attacked_wins, row.attacked_ties, row.attacked_pairs),
         p_text(row.attacked_p)) for row in rows))


def paired_csv(rows: Sequence[PairedRow]) -> str:
    names = [field.name for field in fields(PairedRow)]
    return csv_text([{**asdict(row), "conclusion": row.conclusion} for row in rows], [*names, "conclusion"])


def compare(results: Results, out: str | os.PathLike[str]) -> Comparison:
    """Tables and plots for every analysis under ``results`` (one folder or several).

    ``RingcertError`` for a missing folder, or when no file is an analysis (the error
    says how many files were looked at and why the first few were rejected)."""
    return compare_loaded(read_analyses(results), out)


def compare_loaded(loaded: Loaded, out: str | os.PathLike[str]) -> Comparison:
    """``compare`` for records already loaded (``Loaded.of(records)`` for records in
    memory): the analyses make the tables and plots, the rest is ``skipped``."""
    analyses = loaded.require_analyses()
    out = Path(out)
    records = [record for _, record in analyses]
    rows, sides, paired = summarize(records), two_sided(records), paired_comparison(records)
    rules = shrink_comparison(records)
    written = {}
    for name, shown, table in (("summary", summary_shown(rows), csv_table(rows)),
                               ("two_sided", two_sided_shown(sides), two_sided_csv(sides)),
                               ("paired", paired_shown(paired), paired_csv(paired)),
                               ("shrink", shrink_shown(rules), shrink_csv(rules))):
        for suffix, text in ((".md", markdown(shown)), (".csv", table)):
            write_atomic(out / f"{name}{suffix}", text.encode())
            written[name + suffix] = out / f"{name}{suffix}"
    figures = draw_figures(analyses, out)
    matrices = [matrix for matrix in relation_matrices(records) if matrix.objects >= 3]
    relations = None
    if matrices:  # images of three or more objects: the relation matrices, means and tests
        relations, *plots = write_relations(matrices, out, images=False)[1:]
        figures += plots
    return Comparison(rows=tuple(rows), markdown=written["summary.md"], csv=written["summary.csv"],
                      two_sided=tuple(sides), two_sided_markdown=written["two_sided.md"],
                      two_sided_csv=written["two_sided.csv"], paired=tuple(paired),
                      paired_markdown=written["paired.md"], paired_csv=written["paired.csv"],
                      shrink=tuple(rules), shrink_markdown=written["shrink.md"],
                      shrink_csv=written["shrink.csv"],
                      figures=tuple(figures), skipped=loaded.skipped, relations=relations,
                      matrices=tuple(matrices))
