"""The robustness relation between objects: one matrix per image, aggregated over images.

Issue 15 (the seed's stated aim: how much, and how far around it, one object can change
before the classifier loses another). Entry ``(i, j)`` of an image's matrix is the analysis
that perturbs object ``i`` (rings grow from its mask) and keeps object ``j`` in the top-k:
its certified size ``w . eps``, the attack frontier's size ``w . u`` beside it, the
certified epsilon of ring 0 (object ``i`` itself), and the certified and frontier epsilon over
the rings that cross object ``j`` (``MEASURES``). ``rest[i]`` is object ``i`` perturbed
against all the others as targets at once. The matrices are built from the analysis records
``ringcert analyze --relations`` writes; a pair that was not run (or was skipped: a target
outside the top-k) is nan.

``neighbour_test`` answers whether perturbing a digit hurts its neighbour more than the
digit two cells away: per image, the mean over perturbed objects ``i`` of the difference
``value(i -> i +- 2) - value(i -> i +- 1)`` (positive: the neighbour's neighborhood is
smaller, i.e. the neighbour is hurt more), tested with the Wilcoxon signed-rank test and the
sign test over images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ringcert.batch.store import write_atomic
from ringcert.report.records import AnalysisRecord
from ringcert.report.shown import Shown, markdown, p_text
from ringcert.report.statistics import sign_test, t_half_width, wilcoxon_test
from ringcert.selection import Selection

MEASURES = ("certified", "frontier", "ring0", "target_rings", "frontier_target_rings")
"""What a matrix holds per pair: certified size, frontier size, certified ring-0 epsilon, and
the certified and frontier epsilon averaged over the rings that cross the target object (the
size sums every ring, so it also counts the rings beyond the target, which are more for a
near target than for a far one; the target-ring means compare the targets' own regions)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class RelationMatrix:
    """One image's relation matrices: ``values[measure]`` (N, N), nan on the diagonal and
    where no analysis is; ``rest[measure]`` (N,) each object against all others."""

    model: str
    image_index: int | None
    data: str | None
    objects: int
    values: dict[str, np.ndarray]
    rest: dict[str, np.ndarray]

    def to_json(self) -> dict[str, Any]:
        def listed(array: np.ndarray) -> list[Any]:
            return [None if math.isnan(value) else float(value) for value in array.ravel()]

        n = self.objects
        return {"model": self.model, "image_index": self.image_index, "data": self.data,
                "objects": n,
                **{measure: [listed(row) for row in self.values[measure].reshape(n, n)]
                   for measure in MEASURES},
                **{f"rest_{measure}": listed(self.rest[measure]) for measure in MEASURES}}


def _measure(record: AnalysisRecord) -> dict[str, float]:
    def value(number: float | None) -> float:
        return math.nan if number is None else float(number)

    return {"certified": value(record.size), "frontier": value(record.frontier_size),
            "ring0": value(record.ring0_eps), "target_rings": value(record.target_ring_eps),
            "frontier_target_rings": value(record.frontier_target_ring_eps)}


def relation_matrices(records: Sequence[AnalysisRecord]) -> list[RelationMatrix]:
    """One matrix per (model, image, data file) among ``records``, for the groups that hold
    at least one single-object pair; the object count is the records' ``objects`` (or the
    highest index named, plus one)."""
    groups: dict[tuple[Any, ...], list[tuple[Selection, AnalysisRecord]]] = {}
    for record in records:
        if record.target is None:
            continue
        selection = Selection.of(record.target)
        key = (record.model, record.image_index, record.raw.get("data"))
        groups.setdefault(key, []).append((selection, record))
    matrices = []
    for (model, index, data), members in groups.items():
        named = max(max(s.perturbed + s.targets) for s, _ in members) + 1
        objects = max([named, *(int(r.raw["objects"]) for _, r in members if "objects" in r.raw)])
        values = {measure: np.full((objects, objects), np.nan) for measure in MEASURES}
        rest = {measure: np.full(objects, np.nan) for measure in MEASURES}
        pairs = 0
        for selection, record in members:
            if record.skipped is not None or len(selection.perturbed) != 1:
                continue
            [i] = selection.perturbed
            measured = _measure(record)
            if len(selection.targets) == 1:
                pairs += 1
                for measure in MEASURES:
                    values[measure][i, selection.targets[0]] = measured[measure]
            if len(selection.targets) == objects - 1:
                for measure in MEASURES:
                    rest[measure][i] = measured[measure]
        if pairs:
            matrices.append(RelationMatrix(model=model, image_index=index, data=data,
                                           objects=objects, values=values, rest=rest))
    return sorted(matrices, key=lambda m: (m.model, m.image_index if m.image_index is not None else -1))


def mean_matrices(matrices: Sequence[RelationMatrix]) -> list[RelationMatrix]:
    """Per (model, objects): the mean of each measure over images, as a matrix with no image
    (``image_index`` None; nan-aware: an entry no image has stays nan)."""
    grouped: dict[tuple[str, int], list[RelationMatrix]] = {}
    for matrix in matrices:
        grouped.setdefault((matrix.model, matrix.objects), []).append(matrix)

    def mean(arrays: list[np.ndarray]) -> np.ndarray:
        stack = np.stack(arrays)
        counts = (~np.isnan(stack)).sum(axis=0)
        return np.where(counts > 0, np.nansum(stack, axis=0) / np.maximum(counts, 1), np.nan)

    return [RelationMatrix(model=model, image_index=None, data=None, objects=objects,
                           values={name: mean([m.values[name] for m in group]) for name in MEASURES},
                           rest={name: mean([m.rest[name] for m in group]) for name in MEASURES})
            for (model, objects), group in grouped.items()]


@dataclass(frozen=True, kw_only=True)
class NeighbourTest:
    """Far-minus-near differences of one measure over a model's images and their tests:
    ``wins`` = images where the neighbour's value is smaller (hurt more), ``losses`` the
    reverse; ``wilcoxon_p`` / ``sign_p`` one-sided for 'the neighbour is hurt more'."""

    model: str
    measure: str
    images: int
    mean: float
    ci_half: float
    wins: int
    losses: int
    ties: int
    wilcoxon_p: float
    sign_p: float


def _far_minus_near(matrix: RelationMatrix, measure: str) -> float | None:
    """Mean over perturbed objects of ``value(i, two away) - value(i, neighbour)``."""
    values = matrix.values[measure]
    n = matrix.objects
    differences = []
    for i in range(n):
        for step in (-1, 1):
            near, far = i + step, i + 2 * step
            if 0 <= far < n and not (math.isnan(values[i, near]) or math.isnan(values[i, far])):
                differences.append(values[i, far] - values[i, near])
    return float(np.mean(differences)) if differences else None


def neighbour_test(matrices: Sequence[RelationMatrix]) -> list[NeighbourTest]:
    """One ``NeighbourTest`` per model and measure over the images of three or more objects."""
    rows = []
    for model in sorted({m.model for m in matrices if m.objects >= 3}):
        for measure in MEASURES:
            found = [_far_minus_near(m, measure) for m in matrices if m.model == model and m.objects >= 3]
            data = np.array([d for d in found if d is not None], dtype=np.float64)
            if not len(data):
                continue
            wins, losses = int((data > 0).sum()), int((data < 0).sum())
            rows.append(NeighbourTest(model=model, measure=measure, images=len(data),
                                      mean=float(data.mean()), ci_half=t_half_width(data), wins=wins,
                                      losses=losses, ties=len(data) - wins - losses,
                                      wilcoxon_p=wilcoxon_test(data), sign_p=sign_test(wins, losses)))
    return rows


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def relation_tables(matrices: Sequence[RelationMatrix]) -> list[tuple[str, Shown]]:
    """(caption, table) pairs: per model and measure its mean matrix (rows perturbed, columns
    target, the last column against all others), then the neighbour test."""
    tables = []
    for means in mean_matrices(matrices):
        objects = means.objects
        count = sum(1 for m in matrices if (m.model, m.objects) == (means.model, objects))
        headers = ("perturbed", *(f"target {j}" for j in range(objects)), "all others")
        for measure in MEASURES:
            rows = tuple((str(i), *(_cell(means.values[measure][i, j]) for j in range(objects)),
                          _cell(means.rest[measure][i])) for i in range(objects))
            tables.append((f"{means.model}: mean {measure} over {count} images (row: perturbed "
                           "object, column: target; last column: against all others)",
                           Shown(headers=headers, numeric=(False,) + (True,) * (objects + 1), rows=rows)))
    tests = neighbour_test(matrices)
    if tests:
        rows = tuple((row.model, row.measure, str(row.images),
                      f"{row.mean:.4f} [{row.mean - row.ci_half:.4f}, {row.mean + row.ci_half:.4f}]",
                      f"{row.wins} / {row.losses} / {row.ties}", p_text(row.wilcoxon_p),
                      p_text(row.sign_p)) for row in tests)
        tables.append(("Neighbour against two cells away (per image: mean over perturbed objects of "
                       "far - near; > 0: the neighbour is hurt more)",
                       Shown(headers=("model", "measure", "images", "mean far - near [95% CI]",
                                      "neighbour smaller / larger / tie", "Wilcoxon p", "sign p"),
                             numeric=(False, False) + (True,) * 5, rows=rows)))
    return tables


def relations_markdown(matrices: Sequence[RelationMatrix]) -> str:
    """``relation_tables`` as Markdown, each table under its caption."""
    return "\n".join(f"{caption}\n\n{markdown(shown)}" for caption, shown in relation_tables(matrices))


def plot_relations(matrix: RelationMatrix, image: np.ndarray | None, path: Path) -> Path:
    """The image beside its certified and frontier matrices (cells annotated)."""
    from ringcert.report.figures import new_figure, save_png

    panels = [("certified", "certified size"), ("frontier", "frontier size")]
    shown = [(name, title) for name, title in panels if not np.isnan(matrix.values[name]).all()]
    figure = new_figure(3.2 * (len(shown) + (image is not None)) + 0.4, 3.2)
    columns = len(shown) + (image is not None)
    at = 1
    if image is not None:
        axes = figure.add_subplot(1, columns, at)
        axes.imshow(np.asarray(image).squeeze(), cmap="gray", vmin=0, vmax=1)
        axes.set_title(f"{matrix.model} #{matrix.image_index}", fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
        at += 1
    top = max(float(np.nanmax(matrix.values[name])) for name, _ in shown) if shown else 1.0
    for name, title in shown:
        axes = figure.add_subplot(1, columns, at)
        values = matrix.values[name]
        axes.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=top or 1.0)
        for i in range(matrix.objects):
            for j in range(matrix.objects):
                axes.text(j, i, _cell(values[i, j]), ha="center", va="center", fontsize=8,
                          color="white" if math.isnan(values[i, j]) or values[i, j] < top / 2 else "black")
        where = "mean over images" if matrix.image_index is None else f"#{matrix.image_index}"
        axes.set_title(f"{matrix.model} {where}: {title}", fontsize=8)
        axes.set_xlabel("target object", fontsize=8)
        axes.set_ylabel("perturbed object", fontsize=8)
        axes.set_xticks(range(matrix.objects))
        axes.set_yticks(range(matrix.objects))
        at += 1
    return save_png(figure, path)


def write_relations(matrices: Sequence[RelationMatrix], out: Path, *, images: bool = True) -> list[Path]:
    """``relations.json`` (every matrix), ``relations.md`` (means and tests), the mean
    matrices' figure per model (``relations-<model>-mean.png``) and, with ``images``, one
    figure per image beside it (``relations-<model>-<index>.png``) in ``out``; the paths."""
    from ringcert.samples import image as load_image

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "relations.json", out / "relations.md"]
    write_atomic(written[0], json.dumps([m.to_json() for m in matrices], indent=1).encode())
    write_atomic(written[1], relations_markdown(matrices).encode())
    for mean in mean_matrices(matrices):
        written.append(plot_relations(mean, None, out / f"relations-{mean.model}-mean.png"))
    if images:
        for matrix in matrices:
            picture = None
            if matrix.image_index is not None:
                picture = load_image(matrix.image_index, data=matrix.data, objects=matrix.objects).images[0]
            written.append(plot_relations(matrix, picture, out / f"relations-{matrix.model}-"
                                          f"{matrix.image_index}.png"))
    return written
