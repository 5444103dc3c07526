"""Which of our relaxations makes the proofs alpha-beta-CROWN cannot make (issue 14).

On queries only we prove, our alpha-CROWN bound runs about 3 logits above auto_LiRPA's on the
same pair combinations. The two verifiers differ in two places a query of the seed classifier
reaches:

- **the top-k specification**: we bound each candidate pair jointly (convex combinations of
  its classes, ``verify/bounds/topk.py``); the peer proves a pair only when one class alone is
  provable, which is our ``joint=False``;
- **the max-pool's upper bound**: ours is the alpha-optimized combination of nested linear
  bounds following up to ``maxpool.UPPER_DEPTH`` = 4 of a window's inputs
  (``layers/maxpool.py``). auto_LiRPA's ``BoundMaxPool`` (read, not run: it does not install
  with this torch) is exact on a window whose largest-lower-bound input dominates the others
  and the constant ``max u`` elsewhere, not optimized. Here ``peer`` is that bound (our
  relaxation with depth 1, its choice fixed to "follow the top input only when it
  dominates", alpha not applied to it); depth 1 (optimized) and ``constant`` (DeepPoly's
  ``max u`` on every window) bracket it.

(The peer optimizes its max-pool lower bound over the simplex of a window's inputs where ours
takes the input with the largest lower bound; that difference favours the peer and is not
reproduced.) Each variant is alpha-CROWN (20 steps) on the same CROWN layer bounds, switched
by patching the max-pool rules for the duration of one bound; the queries are stored
analyses' certified vectors (what the searches proved) at ``--scales`` times.

    python benchmarks/components.py \
        benchmarks/results/exp16-images-48-59/exp-fixed/{none,l0,pgd}/{48,49,50}-*.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from common import table
from ringcert.layers import maxpool
from ringcert.models.modelfile import load_model
from ringcert.samples import sample_problem, test_sample
from ringcert.verify.bounds import BoundMethod, margin_bound
from ringcert.vocabulary import Side

VARIANTS = {  # name: (joint, max-pool upper bound)
    "ours": (True, "nested"),
    "pool depth 1": (True, "depth1"),
    "pool peer": (True, "peer"),
    "pool constant": (True, "constant"),
    "per class": (False, "nested"),
    "per class + pool peer": (False, "peer"),
}


def _fixed_relax(original, *, dominated_only: bool):
    """``relax`` following a window's top input only where it dominates the window (the peer's
    exact case), or nowhere (the constant bound)."""
    def relax(layer, lower, upper):
        found = original(layer, lower, upper)
        follow = torch.zeros_like(found.follow)
        if dominated_only:
            low_w = maxpool._windows(layer, lower, -torch.inf)
            up_w = maxpool._windows(layer, upper, -torch.inf)
            values, ranked = up_w.topk(min(2, up_w.shape[1]), dim=1)
            second = values[:, 1] if values.shape[1] > 1 else torch.full_like(values[:, 0], -torch.inf)
            follow = (second <= low_w.gather(1, ranked[:, :1])[:, 0])[None].to(lower.dtype)
        return dataclasses.replace(found, follow=follow)
    return relax


@contextmanager
def pool_upper(kind: str) -> Iterator[None]:
    """The max-pool rules with the upper bound ``kind`` while the block runs."""
    depth, relax, backward = maxpool.UPPER_DEPTH, maxpool.relax, maxpool.MaxPoolType.backward
    try:
        if kind != "nested":
            maxpool.UPPER_DEPTH = 1
        if kind in ("peer", "constant"):
            maxpool.relax = _fixed_relax(relax, dominated_only=kind == "peer")
            maxpool.MaxPoolType.backward = (  # alpha does not move the peer's upper bound
                lambda self, layer, coef, lower, upper, *, alpha=None:
                backward(self, layer, coef, lower, upper, alpha=None))
        yield
    finally:
        maxpool.UPPER_DEPTH, maxpool.relax, maxpool.MaxPoolType.backward = depth, relax, backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("analyses", nargs="+", help="stored analysis JSONs")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for path in args.analyses:
        record = json.loads(Path(path).read_text())
        network = load_model(record["model"]).network
        problem = sample_problem(network, test_sample(record["image_index"]), target=Side(record["target"]))
        for scale in args.scales:
            vector = torch.tensor(record["epsilon"], dtype=torch.float64) * scale
            eps = problem.check_eps(vector.clamp(max=1.0))
            row: list[object] = [f"{record['model']} {record['image_index']}-{record['target']} x{scale:g}"]
            for joint, kind in VARIANTS.values():
                with pool_upper(kind):
                    row.append(float(margin_bound(problem, eps, method=BoundMethod.ALPHA_CROWN,
                                                  joint=joint).lower.detach()))
            rows.append(row)
            print(table(["query", *VARIANTS], rows[-1:]), flush=True)
    print(f"\n{len(rows)} queries, alpha-CROWN margin bound per variant")
    print(table(["query", *VARIANTS], rows))
    summary = []
    for column, name in enumerate(VARIANTS, start=1):
        loss = [row[1] - row[column] for row in rows]
        summary.append([name, sum(row[column] > 0 for row in rows), statistics.median(loss),
                        min(loss), max(loss)])
    print("\n" + table(["variant", "proved", "median loss vs ours", "min loss", "max loss"], summary))


if __name__ == "__main__":
    main()
