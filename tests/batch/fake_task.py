"""A deterministic stand-in for the per-image analysis, so the batch machinery is tested
without the real search: the record is drawn from an RNG seeded by the task's key."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ringcert.batch import AnalysisTask, TaskOutput, run_batch

TIMING_FIELDS = ("time_s",)


def fake_record(task: AnalysisTask) -> dict[str, Any]:
    # the rings depend on the image and target only, as in real runs (so that analyses of
    # one image with different settings pair up); the answer on the whole task
    image = np.random.default_rng([task.image_index, task.target.value == "right"])
    rings = int(image.integers(4, 9))
    sizes = image.integers(20, 400, size=rings)
    rng = np.random.default_rng(int(task.key[:16], 16))
    epsilon = np.clip(np.sort(rng.uniform(0.0, 0.4, size=rings)) + rng.normal(0, 0.02, rings),
                      0, 1).round(4)
    algorithm = {"name": task.settings.get("algorithm", "guided")}
    if algorithm["name"] == "guided":
        algorithm["shrink"] = task.settings.get("shrink", "fixed")
    statuses = rng.choice(["refuted", "unproven", "saturated"], size=rings, p=[0.6, 0.35, 0.05])
    queries = {"attack": int(rng.integers(5, 50)), "crown": int(rng.integers(5, 50))}
    queries["total"] = sum(queries.values())
    return {
        "model": task.model_label, "image_index": task.image_index, "target": task.target.value,
        "target_class": int(rng.integers(0, 10)), "perturbed_class": int(rng.integers(0, 10)),
        "k": 2, "rings": rings, "ring_sizes": sizes.tolist(), "weights": [1.0] * rings,
        "epsilon": epsilon.tolist(), "size": float(epsilon.sum()),
        "maximality": statuses.tolist(), "queries": queries,
        "time_s": float(rng.uniform(0.5, 3.0)) + time.perf_counter() % 1e-3,
        "algorithm": algorithm, "verifier": "fake", "ringcert_version": "test",
    }


def fake_analysis(task: AnalysisTask) -> dict[str, Any]:
    """The task function: sleeps ``settings['sleep']`` seconds (default 0.05), then answers.
    With ``settings['hold']`` (a path), images from ``settings['hold_from']`` on first wait
    until that file exists (at most 60 s): a batch that cannot finish before a test
    interrupts it, however slow the machine."""
    hold = task.settings.get("hold")
    if hold is not None and task.image_index >= int(task.settings.get("hold_from", 0)):
        deadline = time.monotonic() + 60
        while not Path(hold).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    time.sleep(float(task.settings.get("sleep", 0.05)))
    if task.settings.get("fail_index") == task.image_index:
        raise ValueError(f"fake failure on image {task.image_index}")
    return fake_record(task)


def fake_analysis_with_png(task: AnalysisTask) -> TaskOutput:
    """Like ``fake_analysis`` plus a small heatmap PNG of the epsilon per ring."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    record = fake_analysis(task)
    eps = np.asarray(record["epsilon"])
    yy, xx = np.mgrid[0:32, 0:32]
    ring = np.minimum(np.maximum(abs(yy - 16), abs(xx - 10)) // 3, len(eps) - 1)
    figure = Figure(figsize=(1.6, 1.6), dpi=50)
    figure.add_subplot().imshow(eps[ring], cmap="viridis", vmin=0, vmax=1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return TaskOutput(record=record, attachments={".png": buffer.getvalue()})


def tasks(count: int, *, models: tuple[str, ...] = ("none",), **settings: Any
          ) -> list[AnalysisTask]:
    return [AnalysisTask(model=model, image_index=index, target=target, settings=settings)
            for model in models for index in range(count) for target in ("left", "right")]


if __name__ == "__main__":  # python -m tests.batch.fake_task OUT COUNT WORKERS SETTINGS_JSON
    import signal

    # as started from a terminal: a shell starts background jobs (the test suite itself, when
    # run with `&`) with SIGINT ignored, which the batch would inherit, and then Ctrl-C is
    # not what the interrupt test sends
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out, count, workers, settings = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    summary = run_batch(tasks(count, **json.loads(settings)), fake_analysis, out, workers=workers,
                        progress=False)
    print(summary.completed)
