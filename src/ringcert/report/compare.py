"""Compare models x algorithms over a set of stored analyses: tables and plots.

Reads the JSON records that ``ringcert analyze`` writes (any folder of runs: every
``*.json`` record below it counts, a copy of the same analysis only once) and produces

- ``summary.md`` / ``summary.csv``: one row per model x algorithm x shrink x gradient x
  verifier with
  the mean and median size ``w . eps``, the tight ring fraction (share of the rings below
  ``eps = 1`` whose growth by ``delta`` was *refuted* by a checked counterexample, i.e.
  maximal for certain rather than only unproven), verifier queries and time;
- ``epsilon_by_ring.png``: mean epsilon against ring distance per model with a 95%
  t-confidence band (clipped to [0, 1]), over the rings at least half the images have;
- ``size_distribution.png``: the size distribution per model and algorithm;
- ``fixed_vs_sensitivity.png``: size with fixed against with sensitivity cutting weights,
  one point per image (the seed's comparison of its two CEGIS shrink rules);
- ``heatmaps-<model>.png``: for one image per model (the lowest index analysed with both
  rules, not a hand-picked one) the two heatmaps side by side, as in the seed's figures 3
  and 4. They reuse the heatmap PNGs stored next to the JSONs, or, where those are
  missing, redraw epsilon per ring over the regenerated DOUBLE-MNIST test image.

Reads results only; never verifies.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ringcert.batch.store import load_records, write_atomic

Record = dict[str, Any]
NO_SHRINK = "-"


@dataclass(frozen=True, kw_only=True)
class Variant:
    """How an analysis was run: the grouping key of every table row and plot series."""

    algorithm: str
    shrink: str
    gradient: str
    verifier: str

    @classmethod
    def of(cls, record: Record) -> Variant:
        algorithm = record.get("algorithm") or {}
        if isinstance(algorithm, str):
            algorithm = {"name": algorithm}
        return cls(algorithm=str(algorithm.get("name", "?")),
                   shrink=str(algorithm.get("shrink") or NO_SHRINK),
                   gradient=str(algorithm.get("gradient") or NO_SHRINK),
                   verifier=str(record.get("verifier", "?")))

    @property
    def label(self) -> str:
        return "/".join(part for part in (self.algorithm, self.shrink, self.gradient)
                        if part != NO_SHRINK)


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
    tight_fraction: float  # refuted rings / rings with eps < 1 (nan if there are none)
    mean_queries: float
    mean_time_s: float


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """What ``compare`` wrote: the rows, the two tables and the figures."""

    rows: tuple[SummaryRow, ...]
    markdown: Path
    csv: Path
    figures: tuple[Path, ...]


def _queries(record: Record) -> float:
    queries = record.get("queries") or {}
    if isinstance(queries, dict):
        return float(queries.get("total", sum(v for k, v in queries.items() if k != "cached")))
    return float(queries)


def _tight(records: Sequence[Record]) -> float:
    statuses = [status for record in records for status in record.get("maximality", [])
                if status != "saturated"]
    return statuses.count("refuted") / len(statuses) if statuses else math.nan


def summarize(records: Sequence[Record]) -> list[SummaryRow]:
    """Table rows, one per model x variant, sorted by model then algorithm."""
    groups: dict[tuple[str, Variant], list[Record]] = defaultdict(list)
    for record in records:
        groups[(str(record["model"]), Variant.of(record))].append(record)
    rows = []
    for (model, variant), group in sorted(groups.items(), key=lambda item: (
            item[0][0], item[0][1].algorithm, item[0][1].shrink, item[0][1].gradient,
            item[0][1].verifier)):
        sizes = np.array([float(record["size"]) for record in group])
        rows.append(SummaryRow(
            model=model, algorithm=variant.algorithm, shrink=variant.shrink,
            gradient=variant.gradient, verifier=variant.verifier, analyses=len(group),
            mean_size=float(sizes.mean()),
            median_size=float(np.median(sizes)), tight_fraction=_tight(group),
            mean_queries=float(np.mean([_queries(record) for record in group])),
            mean_time_s=float(np.mean([float(record.get("time_s", math.nan))
                                       for record in group]))))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


HEADERS = {"model": "model", "algorithm": "algorithm", "shrink": "shrink",
           "gradient": "gradient", "verifier": "verifier", "analyses": "analyses", "mean_size": "mean size",
           "median_size": "median size", "tight_fraction": "tight (refuted) rings",
           "mean_queries": "mean queries", "mean_time_s": "mean time (s)"}


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    names = [field.name for field in fields(SummaryRow)]
    lines = ["| " + " | ".join(HEADERS[name] for name in names) + " |",
             "|" + "|".join("---" if name in ("model", "algorithm", "shrink", "gradient", "verifier")
                            else "---:" for name in names) + "|"]
    lines += ["| " + " | ".join(_fmt(getattr(row, name)) for name in names) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[SummaryRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[field.name for field in fields(SummaryRow)],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    return buffer.getvalue()


# --- figures ---------------------------------------------------------------------------------

def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())
    return path


def _by_model(records: Sequence[Record]) -> dict[str, dict[Variant, list[Record]]]:
    models: dict[str, dict[Variant, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        models[str(record["model"])][Variant.of(record)].append(record)
    return {model: dict(sorted(variants.items(), key=lambda item: item[0].label))
            for model, variants in sorted(models.items())}


def mean_with_band(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ring distance: mean epsilon and its 95% t-interval over the analyses that have
    that ring (images differ in ring count). ``rows`` holds one epsilon vector each."""
    from scipy import stats

    depth = max(len(row) for row in rows)
    mean, low, high = (np.full(depth, np.nan) for _ in range(3))
    for ring in range(depth):
        values = np.array([row[ring] for row in rows if len(row) > ring], dtype=np.float64)
        mean[ring] = values.mean()
        if len(values) > 1:
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
            low[ring], high[ring] = mean[ring] - half, mean[ring] + half
        else:
            low[ring] = high[ring] = mean[ring]
    return mean, low, high


def plot_epsilon_by_ring(records: Sequence[Record], path: Path) -> Path:
    models = _by_model(records)
    figure = _figure(4.2 * len(models), 3.4)
    for index, (model, variants) in enumerate(models.items()):
        axes = figure.add_subplot(1, len(models), index + 1)
        for variant, group in variants.items():
            vectors = [record["epsilon"] for record in group]
            # only rings that at least half the images have: the last rings exist in a few
            # images only, often with a handful of pixels, and their means say little
            shown = max(1, int(np.median([len(vector) for vector in vectors])))
            mean, low, high = (values[:shown] for values in mean_with_band(vectors))
            ring = np.arange(shown)
            axes.plot(ring, mean, marker="o", markersize=3, label=variant.label)
            axes.fill_between(ring, np.clip(low, 0, 1), np.clip(high, 0, 1), alpha=0.2)
        axes.set(title=f"model {model}",
                 xlabel="ring distance (px, 0 = perturbed digit)",
                 ylabel="mean epsilon (95% CI)", ylim=(0, None))
        axes.legend(fontsize=7)
    return _save(figure, path)


def plot_size_distribution(records: Sequence[Record], path: Path) -> Path:
    models = _by_model(records)
    figure = _figure(4.2 * len(models), 3.4)
    for index, (model, variants) in enumerate(models.items()):
        axes = figure.add_subplot(1, len(models), index + 1)
        labels = [variant.label for variant in variants]
        sizes = [[float(record["size"]) for record in group] for group in variants.values()]
        axes.boxplot(sizes, showmeans=True)
        axes.set_xticks(range(1, len(labels) + 1), labels, rotation=20, fontsize=8)
        axes.set(title=f"model {model}", ylabel="size w . eps")
    return _save(figure, path)


def shrink_pairs(records: Sequence[Record]) -> dict[str, list[tuple[Record, Record]]]:
    """Per model, (fixed, sensitivity) guided analyses of the same image and target with
    the same gradient and verifier, sorted by image index then target."""
    found: dict[tuple[str, int, str, str, str], dict[str, Record]] = defaultdict(dict)
    for record in records:
        variant = Variant.of(record)
        if record.get("image_index") is None:
            continue
        if variant.algorithm == "guided" and variant.shrink in ("fixed", "sensitivity"):
            key = (str(record["model"]), int(record["image_index"]), str(record["target"]),
                   variant.gradient, variant.verifier)
            found[key][variant.shrink] = record
    pairs: dict[str, list[tuple[Record, Record]]] = defaultdict(list)
    for key in sorted(found):
        if len(found[key]) == 2:
            pairs[key[0]].append((found[key]["fixed"], found[key]["sensitivity"]))
    return dict(pairs)


def plot_fixed_vs_sensitivity(pairs: dict[str, list[tuple[Record, Record]]], path: Path) -> Path:
    figure = _figure(4.6, 4.2)
    axes = figure.add_subplot()
    top = 0.0
    for model, items in pairs.items():
        fixed = [float(a["size"]) for a, _ in items]
        sensitivity = [float(b["size"]) for _, b in items]
        axes.scatter(fixed, sensitivity, s=14, alpha=0.7, label=f"{model} ({len(items)})")
        top = max(top, *fixed, *sensitivity)
    axes.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
    axes.set(xlabel="size with fixed cutting weights", ylabel="size with sensitivity weights",
             title="guided search: shrink rule, per image")
    axes.legend(fontsize=7)
    return _save(figure, path)


def _stored_heatmap(path: Path | None) -> np.ndarray | None:
    if path is None or not path.with_suffix(".png").is_file():
        return None
    from matplotlib.image import imread

    try:
        return imread(path.with_suffix(".png"))
    except (OSError, ValueError, SyntaxError):
        return None


def _redrawn_heatmap(record: Record) -> np.ndarray | None:
    """Epsilon per pixel over the regenerated test image, if its rings match the record."""
    from ringcert.errors import RingcertError
    from ringcert.problem import ring_map
    from ringcert.samples import Side, test_sample

    try:
        side = Side(record["target"])
        sample = test_sample(int(record["image_index"]))
        rings = ring_map(sample.masks[0, side.other.column])
    except (RingcertError, KeyError, ValueError, OSError, ImportError):
        return None
    epsilon = np.asarray(record["epsilon"], dtype=np.float64)
    if int(rings.max()) + 1 != len(epsilon):
        return None
    return epsilon[rings]


def plot_heatmap_pair(fixed: tuple[Path | None, Record], sensitivity: tuple[Path | None, Record],
                      path: Path) -> Path | None:
    """The seed's figures 3-4: one image's neighborhoods with both shrink rules."""
    pictures = []
    for json_path, record in (fixed, sensitivity):
        stored = _stored_heatmap(json_path)
        pictures.append((stored, True) if stored is not None else (_redrawn_heatmap(record), False))
    if any(picture is None for picture, _ in pictures):
        return None
    figure = _figure(8.4, 4.2)
    record = fixed[1]
    figure.suptitle(f"model {record['model']}, image {record['image_index']}, target "
                    f"{record['target']} (class {record.get('target_class', '?')})", fontsize=9)
    for index, ((picture, stored), (_, item), name) in enumerate(
            zip(pictures, (fixed, sensitivity), ("fixed", "sensitivity"), strict=True)):
        axes = figure.add_subplot(1, 2, index + 1)
        shown = axes.imshow(picture, interpolation="nearest",
                            **({} if stored else {"cmap": "viridis", "vmin": 0, "vmax": 1}))
        if not stored:
            figure.colorbar(shown, ax=axes, fraction=0.046, label="ring epsilon")
        axes.set_axis_off()
        axes.set_title(f"{name} cutting weights: size {float(item['size']):.3g}", fontsize=9)
    return _save(figure, path)


def draw_figures(loaded: Sequence[tuple[Path | None, Record]], out: Path) -> list[Path]:
    """Every figure the records allow, written to ``out``; their paths."""
    records = [record for _, record in loaded]
    paths = [plot_epsilon_by_ring(records, out / "epsilon_by_ring.png"),
             plot_size_distribution(records, out / "size_distribution.png")]
    pairs = shrink_pairs(records)
    if pairs:
        paths.append(plot_fixed_vs_sensitivity(pairs, out / "fixed_vs_sensitivity.png"))
    where = {id(record): path for path, record in loaded}
    for model, items in pairs.items():
        for fixed, sensitivity in items:  # the lowest image index that can be drawn
            drawn = plot_heatmap_pair((where.get(id(fixed)), fixed),
                                      (where.get(id(sensitivity)), sensitivity),
                                      out / f"heatmaps-{model}.png")
            if drawn is not None:
                paths.append(drawn)
                break
    return paths


def compare(results: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
            out: str | os.PathLike[str]) -> Comparison:
    """Tables and plots for every analysis under ``results`` (one folder or several)."""
    return compare_loaded(load_records(
        results if isinstance(results, str | os.PathLike) else list(results)), out)


def compare_loaded(loaded: Sequence[tuple[Path | None, Record]],
                   out: str | os.PathLike[str]) -> Comparison:
    """``compare`` for records already loaded (``(json path or None, record)`` pairs)."""
    out = Path(out)
    rows = summarize([record for _, record in loaded])
    markdown, table = out / "summary.md", out / "summary.csv"
    write_atomic(markdown, markdown_table(rows).encode())
    write_atomic(table, csv_table(rows).encode())
    figures = draw_figures(loaded, out)
    return Comparison(rows=tuple(rows), markdown=markdown, csv=table, figures=tuple(figures))
