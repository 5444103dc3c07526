"""The plots of ``compare``, drawn from typed records (``ringcert.report.records``):

- ``epsilon_by_ring.png``: mean epsilon against ring distance per model with a 95%
  t-confidence band (clipped to [0, 1]), over the rings at least half the images have;
- ``size_distribution.png``: the size distribution per model and algorithm (short tick
  labels such as ``guided-fixed``, the full variant labels in a legend below);
- ``fixed_vs_sensitivity.png``: size with fixed against with sensitivity cutting weights,
  one point per image (the seed's comparison of its two CEGIS shrink rules);
- ``fixed_vs_sensitivity_by_ring.png``: the seed's figures 3 and 4 over every image both
  rules analysed: mean epsilon by ring distance per rule, one panel per model;
- ``heatmaps-<model>.png``: for one image per model (the lowest index analysed with both
  rules, not a hand-picked one) the two heatmaps side by side, as in the seed's figures 3
  and 4. They reuse the heatmap PNGs stored next to the JSONs, or, where those are
  missing, redraw epsilon per ring over the image (regenerated, or read from its data file).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ringcert.batch.store import write_atomic
from ringcert.report.records import AnalysisRecord, Variant, show
from ringcert.report.shrink_rules import Pair, shrink_pairs
from ringcert.report.statistics import t_half_width
from ringcert.vocabulary import Algorithm, GradientSource, Shrink, Side

Located = tuple[Path | None, AnalysisRecord]


def new_figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_png(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())
    return path


def _by_model(records: Sequence[AnalysisRecord]) -> dict[str, dict[Variant, list[AnalysisRecord]]]:
    models: dict[str, dict[Variant, list[AnalysisRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        models[record.model][Variant.of(record)].append(record)
    return {model: dict(sorted(variants.items(), key=lambda item: item[0].label))
            for model, variants in sorted(models.items())}


SHORT_LABEL = 16
"""The longest tick label a plot gets (``variant_labels`` shortens further past it)."""

PANELS_ACROSS = 2
"""At most this many models side by side in the size box plots (more go below)."""

ABBREVIATIONS: dict[Shrink | GradientSource, str] = {
    Shrink.FIXED: "fixed", Shrink.SENSITIVITY: "sens", Shrink.ADAPTIVE: "adapt",
    GradientSource.WEAKEST_POINTS: "wp",
    GradientSource.BOUND: "bound", GradientSource.BOTH: "wp+bound"}
"""Short names of the settings in tick labels."""


def _fits(labels: Sequence[str]) -> bool:
    return len(set(labels)) == len(labels) and all(len(label) <= SHORT_LABEL for label in labels)


def variant_labels(variants: Sequence[Variant]) -> dict[Variant, tuple[str, str]]:
    """A (short, full) label per variant of one plot, for ticks and their legend.

    The short label is the algorithm followed by the settings (shrink, gradient, verifier)
    that tell apart variants of one algorithm, abbreviated and joined by ``-``
    (``guided-fixed``, ``guided-sens``, ``naive``): a setting all of them share is left
    out, and so is one an algorithm lacks. When that makes a label longer than
    ``SHORT_LABEL`` characters (or two equal), the settings alone name the variants that
    have any (``sens-wp+bound``); failing that, every variant is numbered per algorithm
    (``guided-1``, ``guided-2``, ``naive-1``). The full label is ``Variant.label``, with
    ``/verifier`` when the verifiers differ."""
    variants = list(dict.fromkeys(variants))
    settings = [(variant.shrink, variant.gradient, variant.verifier) for variant in variants]
    by_algorithm: dict[Algorithm, list[tuple[Any, ...]]] = defaultdict(list)
    for variant, values in zip(variants, settings, strict=True):
        by_algorithm[variant.algorithm].append(values)
    # a setting is named where it tells apart variants of one algorithm
    named = [any(len({values[position] for values in group}) > 1 for group in by_algorithm.values())
             for position in range(3)]
    parts = [[value if isinstance(value, str) else ABBREVIATIONS.get(value, value.value)
              for value, shown in zip(values, named, strict=True) if shown and value is not None]
             for values in settings]
    short = ["-".join([variant.algorithm.value, *names])
             for variant, names in zip(variants, parts, strict=True)]
    if not _fits(short):
        short = ["-".join(names) or variant.algorithm.value
                 for variant, names in zip(variants, parts, strict=True)]
    if not _fits(short):
        counts: dict[Algorithm, int] = defaultdict(int)
        short = []
        for variant in variants:
            counts[variant.algorithm] += 1
            short.append(f"{variant.algorithm.value}-{counts[variant.algorithm]}")
    verifiers = len({variant.verifier for variant in variants}) > 1
    full = [variant.label + (f"/{variant.verifier}" if verifiers else "") for variant in variants]
    return {variant: (brief, whole) for variant, brief, whole in zip(variants, short, full, strict=True)}


def _all_variants(models: dict[str, dict[Variant, list[AnalysisRecord]]]) -> list[Variant]:
    return sorted({variant for variants in models.values() for variant in variants},
                  key=lambda variant: variant.columns)


def mean_with_band(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ring distance: mean epsilon and its 95% t-interval over the analyses that have
    that ring (images differ in ring count). ``rows`` holds one epsilon vector each."""
    depth = max(len(row) for row in rows)
    mean, low, high = (np.full(depth, np.nan) for _ in range(3))
    for ring in range(depth):
        values = np.array([row[ring] for row in rows if len(row) > ring], dtype=np.float64)
        mean[ring] = values.mean()
        half = t_half_width(values)
        if math.isnan(half):  # one value: no band
            half = 0.0
        low[ring], high[ring] = mean[ring] - half, mean[ring] + half
    return mean, low, high


def plot_epsilon_by_ring(records: Sequence[AnalysisRecord], path: Path) -> Path:
    models = _by_model(records)
    labels = variant_labels(_all_variants(models))
    figure = new_figure(4.2 * len(models), 3.4)
    for index, (model, variants) in enumerate(models.items()):
        axes = figure.add_subplot(1, len(models), index + 1)
        for variant, group in variants.items():
            vectors = [record.epsilon for record in group]
            _plot_band(axes, vectors, _common_rings(vectors), labels[variant][1])
        _label_ring_axes(axes, f"model {model}")
    return save_png(figure, path)


def _common_rings(vectors: Sequence[Sequence[float]]) -> int:
    """How many rings to plot: those at least half the images have (the last rings exist in
    a few images only, often with a handful of pixels, and their means say little)."""
    return max(1, int(np.median([len(vector) for vector in vectors])))


def _plot_band(axes: Any, vectors: Sequence[Sequence[float]], shown: int, label: str) -> None:
    """Mean epsilon by ring distance over ``vectors`` with its 95% band, first ``shown`` rings."""
    mean, low, high = (values[:shown] for values in mean_with_band(vectors))
    ring = np.arange(shown)
    axes.plot(ring, mean, marker="o", markersize=3, label=label)
    axes.fill_between(ring, np.clip(low, 0, 1), np.clip(high, 0, 1), alpha=0.2)


def _label_ring_axes(axes: Any, title: str) -> None:
    axes.set(title=title, xlabel="ring distance (px, 0 = perturbed digit)",
             ylabel="mean epsilon (95% CI)", ylim=(0, None))
    axes.legend(fontsize=7)


def size_distribution_figure(records: Sequence[AnalysisRecord]) -> Any:
    """The size box plots, one panel per model (``PANELS_ACROSS`` a row), as a matplotlib
    ``Figure``: each box has a short horizontal tick label (``variant_labels``), and a
    legend below the panels gives the full label of every variant whose tick label is
    shortened."""
    from matplotlib.lines import Line2D

    models = _by_model(records)
    labels = variant_labels(_all_variants(models))
    entries = [f"{short} = {full}" for short, full in labels.values() if short != full]
    # room for every horizontal tick label (about 7 px a character at 9 pt, 100 dpi), and at
    # most two panels side by side, so that the page shows the figure near its own size
    boxes = max(len(variants) for variants in models.values())
    longest = max(len(short) for short, _ in labels.values())
    panel = max(4.2, 1.0 + boxes * (0.15 + 0.075 * longest))
    across = min(len(models), PANELS_ACROSS)
    down = -(-len(models) // across)
    width = panel * across
    # legend columns as wide as the longest entry (about 6 px a character at 8 pt)
    columns = max(1, min(len(entries), int(width * 100 // (6 * max(map(len, entries), default=1) + 30))))
    figure = new_figure(width, 3.4 * down + 0.2 * -(-len(entries) // columns))
    for index, (model, variants) in enumerate(models.items()):
        axes = figure.add_subplot(down, across, index + 1)
        sizes = [[record.size for record in group] for group in variants.values()]
        axes.boxplot(sizes, showmeans=True)
        axes.set_xticks(range(1, len(variants) + 1), [labels[variant][0] for variant in variants],
                        rotation=0, fontsize=9)
        axes.set(title=f"model {model}", ylabel="size w . eps")
    if entries:
        handles = [Line2D([], [], linestyle="none", label=entry) for entry in entries]
        figure.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize=8,
                      handlelength=0, handletextpad=0, frameon=False)
    return figure


def plot_size_distribution(records: Sequence[AnalysisRecord], path: Path) -> Path:
    return save_png(size_distribution_figure(records), path)


def plot_fixed_vs_sensitivity(pairs: dict[str, list[Pair]], path: Path) -> Path:
    figure = new_figure(4.6, 4.2)
    axes = figure.add_subplot()
    top = 0.0
    for model, items in pairs.items():
        fixed = [a.size for a, _ in items]
        sensitivity = [b.size for _, b in items]
        axes.scatter(fixed, sensitivity, s=14, alpha=0.7, label=f"{model} ({len(items)})")
        top = max(top, *fixed, *sensitivity)
    axes.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
    axes.set(xlabel="size with fixed cutting weights", ylabel="size with sensitivity weights",
             title="guided search: shrink rule, per image")
    axes.legend(fontsize=7)
    return save_png(figure, path)


def plot_rules_by_ring(pairs: dict[str, list[Pair]], path: Path) -> Path:
    """The seed's figures 3 and 4 over the whole image set: per model, the mean epsilon by
    ring distance with fixed and with sensitivity cutting weights (95% t-bands), over the
    same images, the rings at least half of them have (as ``plot_epsilon_by_ring``)."""
    figure = new_figure(4.2 * len(pairs), 3.4)
    for index, (model, items) in enumerate(pairs.items()):
        axes = figure.add_subplot(1, len(pairs), index + 1)
        shown = _common_rings([a.epsilon for a, _ in items])
        for rule, vectors in (("fixed", [a.epsilon for a, _ in items]),
                              ("sensitivity", [b.epsilon for _, b in items])):
            _plot_band(axes, vectors, shown, f"{rule} weights")
        _label_ring_axes(axes, f"model {model} ({len(items)} image-target pairs)")
    return save_png(figure, path)


def _stored_heatmap(path: Path | None) -> np.ndarray | None:
    if path is None or not path.with_suffix(".png").is_file():
        return None
    from matplotlib.image import imread

    try:
        return imread(path.with_suffix(".png"))
    except (OSError, ValueError, SyntaxError):
        return None


def _redrawn_heatmap(record: AnalysisRecord) -> np.ndarray | None:
    """Epsilon per pixel over the record's image (regenerated, or read from its data file),
    if its rings match the record."""
    from ringcert.errors import RingcertError
    from ringcert.problem import ring_map
    from ringcert.samples import image

    if record.image_index is None or not isinstance(record.target, Side):
        return None
    try:
        masks = image(record.image_index, data=record.raw.get("data")).masks[0]
        rings = ring_map(masks[record.target.other.column])
    except (RingcertError, ValueError, OSError, ImportError):
        return None
    epsilon = np.asarray(record.epsilon, dtype=np.float64)
    if int(rings.max()) + 1 != len(epsilon):
        return None
    return epsilon[rings]


def plot_heatmap_pair(fixed: Located, sensitivity: Located, path: Path) -> Path | None:
    """The seed's figures 3-4: one image's neighborhoods with both shrink rules."""
    pictures = []
    for json_path, record in (fixed, sensitivity):
        stored = _stored_heatmap(json_path)
        pictures.append((stored, True) if stored is not None else (_redrawn_heatmap(record), False))
    if any(picture is None for picture, _ in pictures):
        return None
    figure = new_figure(8.4, 4.2)
    record = fixed[1]
    figure.suptitle(f"model {record.model}, image {record.image_index}, target "
                    f"{show(record.target)} (class {record.target_class})", fontsize=9)
    for index, ((picture, stored), (_, item), rule) in enumerate(
            zip(pictures, (fixed, sensitivity), (Shrink.FIXED, Shrink.SENSITIVITY), strict=True)):
        axes = figure.add_subplot(1, 2, index + 1)
        shown = axes.imshow(picture, interpolation="nearest",
                            **({} if stored else {"cmap": "viridis", "vmin": 0, "vmax": 1}))
        if not stored:
            figure.colorbar(shown, ax=axes, fraction=0.046, label="ring epsilon")
        axes.set_axis_off()
        axes.set_title(f"{rule.value} cutting weights: size {item.size:.3g}", fontsize=9)
    return save_png(figure, path)


def draw_figures(loaded: Sequence[Located], out: Path) -> list[Path]:
    """Every figure the analyses (no skip records) allow, written to ``out``; their paths."""
    records = [record for _, record in loaded]
    paths = [plot_epsilon_by_ring(records, out / "epsilon_by_ring.png"),
             plot_size_distribution(records, out / "size_distribution.png")]
    pairs = shrink_pairs(records)
    if pairs:
        paths.append(plot_fixed_vs_sensitivity(pairs, out / "fixed_vs_sensitivity.png"))
        paths.append(plot_rules_by_ring(pairs, out / "fixed_vs_sensitivity_by_ring.png"))
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


