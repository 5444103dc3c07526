"""Max-pool relaxation against the max-pool rewritten into ReLUs (issue 14, build item 2).

Issue 14 asks whether the rewrite ``max(a, b) = b + ReLU(a - b)``, which brings max-pool
under the ReLU machinery (alpha slopes, beta splits), bounds better than our own max-pool
relaxation (the nested upper bound of ``layers/maxpool.py``, alpha-optimized). This script
rewrites each shipped model's 4x4 max-pool into a tree of pairwise maxima
(``verify/relu_form.py``, ``layers/maxpool.as_relus``: per level a 1x2 or 2x1 stride-2
convolution into the channels ``[b, a - b]``, a ReLU, and a 1x1 convolution adding them;
``ReLU(b) = b`` since the pool reads a ReLU's output), checks that the rewritten network
computes the same logits on each query's image, and bounds the same queries on both networks
with CROWN and alpha-CROWN (same settings).

Queries: the ring-shaped boundary queries of ``benchmarks/complete.py`` (attack and
alpha-CROWN leave them open), and, with ``--analyses``, stored analyses' certified vectors
at the scales ``--scales`` (1.0: what the search proved).

    python benchmarks/maxpool_rewrite.py --queries 30
    python benchmarks/maxpool_rewrite.py --queries 0 --analyses DIR/pgd/48-left.json ... --scales 1 1.05
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from common import table
from complete import open_queries
from ringcert.models.modelfile import load_model
from ringcert.problem import Problem
from ringcert.samples import sample_problem, test_sample
from ringcert.verify.bounds import BoundMethod, margin_bound
from ringcert.verify.relu_form import relu_form
from ringcert.vocabulary import Side

METHODS = (BoundMethod.CROWN, BoundMethod.ALPHA_CROWN)
HEADERS = ["query", "CROWN pool", "CROWN rewrite", "alpha pool", "alpha rewrite",
           "CROWN s pool / rewrite", "alpha s pool / rewrite"]


def bounds(problem: Problem, eps: torch.Tensor) -> list[tuple[float, float]]:
    """(bound, seconds) per method in ``METHODS``."""
    found = []
    for method in METHODS:
        began = time.perf_counter()
        lower = float(margin_bound(problem, problem.check_eps(eps), method=method).lower.detach())
        found.append((lower, time.perf_counter() - began))
    return found


def compare(label: str, problem: Problem, eps: torch.Tensor) -> list[object]:
    """One table row: both networks' bounds on the same query (the rewrite takes
    milliseconds, so it is built per query)."""
    network = problem.model
    other = dataclasses.replace(problem, model=relu_form(network, tuple(problem.image.shape)))
    with torch.no_grad():
        difference = float((network(problem.image[None]) - other.model(problem.image[None])).abs().max())
    assert difference < 1e-5, f"rewrite changes the logits by {difference}"
    (crown, crown_s), (alpha, alpha_s) = bounds(problem, eps)
    (crown_r, crown_rs), (alpha_r, alpha_rs) = bounds(other, eps)
    return [label, crown, crown_r, alpha, alpha_r, f"{crown_s:.2f} / {crown_rs:.2f}",
            f"{alpha_s:.2f} / {alpha_rs:.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=30, help="boundary queries of complete.py")
    parser.add_argument("--models", nargs="+", default=["none", "l0", "pgd"])
    parser.add_argument("--analyses", nargs="*", default=[], help="stored analysis JSONs")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.05])
    parser.add_argument("--width", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for label, problem, eps, _ in open_queries(args.queries, models=args.models, width=args.width,
                                               seed=args.seed) if args.queries else []:
        rows.append(compare(label, problem, torch.as_tensor(eps)))
        print(table(HEADERS, rows[-1:]), flush=True)
    for path in args.analyses:
        record = json.loads(Path(path).read_text())
        network = load_model(record["model"]).network
        problem = sample_problem(network, test_sample(record["image_index"]), target=Side(record["target"]))
        for scale in args.scales:
            eps = (torch.tensor(record["epsilon"], dtype=torch.float64) * scale).clamp(max=1.0)
            label = f"{record['model']} {record['image_index']}-{record['target']} x{scale:g}"
            rows.append(compare(label, problem, eps))
            print(table(HEADERS, rows[-1:]), flush=True)
    print(f"\n{len(rows)} queries")
    print(table(HEADERS, rows))
    for column, name in ((1, "CROWN"), (3, "alpha-CROWN")):
        gains = [row[column + 1] - row[column] for row in rows]
        higher = sum(gain > 0 for gain in gains)
        print(f"{name}: rewrite minus pool, median {statistics.median(gains):+.3f}, "
              f"higher on {higher} of {len(gains)}; proved pool {sum(r[column] > 0 for r in rows)}, "
              f"rewrite {sum(r[column + 1] > 0 for r in rows)}")


if __name__ == "__main__":
    main()
