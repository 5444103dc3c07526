"""How far along its own ray the envelope stage certifies a stored analysis (issue 14).

For each stored analysis (its certified vector ``eps*``, its attack frontier's ray scale
``r``: a strong attack breaks ``r * eps*``), it asks alpha-CROWN and the envelope verifier
(``verify.propagation.Envelope``: the first-layer ReLUs' hull over the box, for the second
affine layer's bounds and for the margin rows) on ``s * eps*`` for growing ``s`` on
``SCALES`` and reports the largest ``s`` each proves (robustness is monotone, so the first
failure ends the climb), the bounds at the first scale alpha-CROWN fails, the seconds per
envelope query, and the ray scale that remains, ``r / s``.

    python benchmarks/envelope.py OUT/pgd/0-left.json OUT/pgd/1-left.json --model pgd
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from common import table
from ringcert.models.modelfile import load_model
from ringcert.samples import sample_problem, test_sample
from ringcert.verify.propagation import AlphaCrown, Envelope
from ringcert.vocabulary import Side, Status

SCALES = (1.0, 1.05, 1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.5, 3.0)

HEADERS = ["analysis", "ray scale", "alpha-CROWN proves", "envelope proves", "first alpha failure",
           "alpha bound there", "envelope bound there", "envelope s/query", "ray left"]


def climb(verifier, problem, eps: torch.Tensor) -> tuple[float, list[tuple[float, float, float]]]:
    """The largest scale on ``SCALES`` proved (0 if none) and (scale, bound, seconds) per query."""
    proved, asked = 0.0, []
    for scale in SCALES:
        began = time.perf_counter()
        verdict = verifier.verify(problem, (eps * scale).clamp(max=1.0))
        asked.append((scale, float(verdict.bound), time.perf_counter() - began))
        if verdict.status is not Status.ROBUST:
            break
        proved = scale
    return proved, asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("analyses", nargs="+", help="analysis JSONs with an attack frontier")
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=None, help="envelope steps (default: the stage's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network = load_model(args.model).network
    rows, remaining = [], {"alpha-CROWN": [], "envelope": []}
    for path in args.analyses:
        with open(path) as handle:
            record = json.load(handle)
        problem = sample_problem(network, test_sample(record["image_index"]), target=Side(record["target"]))
        eps = torch.tensor(record["epsilon"], dtype=torch.float64)
        ray = record["frontier"]["ray_scale"]
        alpha, alpha_asked = climb(AlphaCrown(), problem, eps)
        hull = Envelope() if args.steps is None else Envelope(envelope_steps=args.steps)
        proved, asked = climb(hull, problem, eps)
        failed = alpha_asked[-1][0]
        at_failed = next((bound for scale, bound, _ in asked if scale == failed), float("nan"))
        seconds = float(np.mean([s for _, _, s in asked]))
        remaining["alpha-CROWN"].append(ray / alpha if alpha else float("inf"))
        remaining["envelope"].append(ray / proved if proved else float("inf"))
        rows.append([f"{record['image_index']}-{record['target']}", ray, alpha, proved, failed,
                     alpha_asked[-1][1], at_failed, seconds, remaining["envelope"][-1]])
        print(table(HEADERS, rows[-1:]), flush=True)
    print(f"\n{args.model}, {len(rows)} analyses")
    print(table(HEADERS, rows))
    for name, values in remaining.items():
        print(f"median ray scale left after {name}: {float(np.median(values)):.3f}")


if __name__ == "__main__":
    main()
