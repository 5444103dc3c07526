"""The batch that ``ringcert analyze`` runs: one task per model x image x target side (or
object selection), and the per-image work each task does (analyze, render the heatmap).

Images come from the DOUBLE-MNIST test split or from the user's ``--data`` file. A task's
settings are ``AnalysisOptions.to_settings()``, the data file's path, and the content hash
of every input file that shapes its result (a model file, a weights file, a data file),
so editing a file under the same name is never mistaken for finished work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ringcert.batch.tasks import AnalysisTask, TaskOutput
from ringcert.errors import RingcertError
from ringcert.models.modelfile import ALL_SHIPPED
from ringcert.options import AnalysisOptions
from ringcert.selection import Selection
from ringcert.vocabulary import Side, Weighting


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content (read in chunks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _input_files(model: str, options: AnalysisOptions, data: str | None) -> dict[str, str]:
    """The data file's path and the content hashes of the task's input files, keyed by role."""
    files: dict[str, str] = {}
    if data is not None:
        files["data"] = str(Path(data).resolve())
        files["data_sha256"] = file_digest(Path(data))
    if model not in ALL_SHIPPED and Path(model).is_file():
        files["model_sha256"] = file_digest(Path(model))
    if options.weights not in {weighting.value for weighting in Weighting}:
        files["weights_sha256"] = file_digest(Path(options.weights))
    return files


def analysis_tasks(*, models: Sequence[str], indices: Sequence[int],
                   sides: Sequence[Side | Selection], options: AnalysisOptions,
                   data: str | None = None, objects: int = 2) -> list[AnalysisTask]:
    """One task per model x image x side, with ``options`` and the inputs' content hashes;
    ``data``: the user's image file (None: the test split of ``objects``-digit images,
    DOUBLE-MNIST for 2). An unset ``k`` becomes the number of objects, so the settings (and
    the keys of two-object tasks) name the k that is verified."""
    if options.k is None:
        options = replace(options, k=objects)
    drawn = {"objects": objects} if data is None and objects != 2 else {}
    tasks = []
    for model in models:
        settings = {**options.to_settings(), **_input_files(model, options, data), **drawn}
        tasks += [AnalysisTask(model=model, image_index=index, target=side, settings=settings)
                  for index in indices for side in sides]
    return tasks


@lru_cache(maxsize=8)
def _network(reference: str, _digest: str | None) -> tuple[str, Any, str]:
    """Name, network and what is verified of its output (``logits``, or the logits before a
    final Sigmoid / Softmax of an ONNX file); cached per file content (``_digest``)."""
    from ringcert.models.modelfile import load_model

    loaded = load_model(reference)
    return loaded.name, loaded.network, str(loaded.metadata.get("verified_output", "logits"))


def run_task(task: AnalysisTask) -> TaskOutput:
    """The per-image work of a batch: analyze, and render the heatmap as an attachment.

    An image whose target is not in the model's top-k (the precondition) gives a record
    with ``skipped`` set, so a rerun does not retry it.
    """
    from ringcert.analysis import analyze
    from ringcert.problem import parse_weights
    from ringcert.report.heatmap import heatmap_png
    from ringcert.samples import image, image_problem

    options = AnalysisOptions.from_settings(task.settings)
    name, network, output = _network(task.model, task.settings.get("model_sha256"))
    side = task.target
    data = task.settings.get("data")
    one = image(task.image_index, data=data, objects=int(task.settings.get("objects", 2)))
    try:
        problem = image_problem(network, one, target=side, k=options.k,
                                weights=parse_weights(options.weights))
    except RingcertError as error:
        return TaskOutput(record={"model": name, "image_index": task.image_index,
                                  "target": side.value, "skipped": str(error)})
    result = analyze(problem, options, model_name=name, image_index=task.image_index, target=side)
    target_mask = one.masks[0, list(Selection.of(side).targets)].any(axis=0)
    record = {**result.to_json(), "data": data, "model_output": output, "objects": one.num_objects,
              # the rings the target objects' pixels lie in (the reports' target-ring epsilon)
              "target_rings": sorted({int(ring) for ring in problem.rings[target_mask]})}
    classes = "+".join(map(str, problem.targets))
    png = heatmap_png(image=problem.image.numpy(), rings=problem.rings, epsilon=result.epsilon,
                      perturbed_mask=problem.mask, target_mask=target_mask,
                      title=(f"{name} #{task.image_index} target {side.value} ({classes}): "
                             f"size {result.size:.3f}, {record['queries']['total']} queries"),
                      frontier=None if result.frontier is None else result.frontier.upper(),
                      weights=result.weights)
    return TaskOutput(record=record, attachments={".png": png})
