"""Export one query as ONNX + VNN-LIB so any VNN-COMP verifier can check the same property.

The property file states the *violation* (as VNN-LIB requires): the input box per pixel
and, for the top-k query, an OR over every k-set S of other classes of
``AND_{c in S} Y_c >= Y_t`` (for k=2 and 10 classes, 36 pairs). A verifier that proves
the file UNSAT proves ringcert's ROBUST; a SAT witness is a ringcert counterexample.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import torch

from ringcert.errors import RingcertError
from ringcert.models.onnx_io import export_onnx
from ringcert.problem import Problem


def vnnlib_text(problem: Problem, eps: torch.Tensor) -> str:
    lo, hi = problem.box(eps)
    lo, hi = lo.flatten().tolist(), hi.flatten().tolist()
    classes = problem.num_classes
    if len(problem.targets) != 1:
        raise RingcertError("VNN-LIB export takes one target; export each target's query alone")
    t = problem.target
    lines = [f"; ringcert top-{problem.k} query: target class {t}, {problem.num_rings} rings"]
    lines += [f"(declare-const X_{i} Real)" for i in range(len(lo))]
    lines += [f"(declare-const Y_{c} Real)" for c in range(classes)]
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        lines.append(f"(assert (<= X_{i} {b!r}))")
        lines.append(f"(assert (>= X_{i} {a!r}))")
    others = [c for c in range(classes) if c != t]
    clauses = []
    for subset in combinations(others, problem.k):
        atoms = " ".join(f"(>= Y_{c} Y_{t})" for c in subset)
        clauses.append(f"(and {atoms})")
    lines.append(f"(assert (or {' '.join(clauses)}))")
    return "\n".join(lines) + "\n"


def export_query(problem: Problem, eps: torch.Tensor, folder: str | Path) -> tuple[Path, Path]:
    """Write ``model.onnx`` and ``property.vnnlib`` into ``folder``; their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_path, property_path = folder / "model.onnx", folder / "property.vnnlib"
    export_onnx(problem.model, model_path, input_shape=tuple(problem.image.shape))
    property_path.write_text(vnnlib_text(problem, problem.check_eps(eps)))
    return model_path, property_path
