"""How much of a fixed query ladder each verifier settles, and how fast (issue: verifiers).

For each shipped model over N test images (target = right digit) and the ladder
uniform eps in {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1} plus ring-shaped vectors
eps_d = a * max(0, 1 - d/D) for a in {0.1, 0.2, 0.4, 0.8}, D in {5, 10, 20}, it prints the
fraction of queries each verifier settles (ROBUST or NOT_ROBUST) with median and 90th
percentile time, and how many queries CROWN proves with the joint top-k bound versus
bounding each class on its own (and by how much the joint bound rises over the k-th
smallest per-class bound). ``cascade-3`` is attack -> CROWN -> alpha-CROWN;
``cascade`` is what ``ringcert analyze`` asks: those three (alpha-CROWN gated and warm
started) plus branch and bound, with the gates and the time of ``ringcert.verify.registry``'s
``SEARCH_*`` settings (the complete stage on its own is measured in benchmarks/complete.py).

    python benchmarks/verifiers.py [--images 20] [--models none l0 pgd]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import problems, table
from ringcert.models.modelfile import load_model
from ringcert.verify.attack import Attack
from ringcert.verify.bounds import BoundMethod, margin_bound
from ringcert.verify.cascade import Cascade
from ringcert.verify.propagation import AlphaCrown, Crown, Ibp
from ringcert.verify.registry import search_verifier
from ringcert.vocabulary import Status

UNIFORM = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
AMPLITUDES = (0.1, 0.2, 0.4, 0.8)
DEPTHS = (5, 10, 20)


def ladder(rings: int) -> list[tuple[str, np.ndarray]]:
    shapes = [(f"uniform {e}", np.full(rings, e)) for e in UNIFORM]
    d = np.arange(rings)
    shapes += [(f"ring a={a} D={depth}", a * np.maximum(0.0, 1 - d / depth))
               for a in AMPLITUDES for depth in DEPTHS]
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["none", "l0", "pgd"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    verifiers = {"attack": Attack(), "ibp": Ibp(), "crown": Crown(), "alpha-crown": AlphaCrown(),
                 "cascade-3": Cascade(stages=[Attack(), Crown(), AlphaCrown()]),
                 "cascade": search_verifier("cascade")}
    rows, joint_rows = [], []
    for name in args.models:
        network = load_model(name).network
        settled = {v: 0 for v in verifiers}
        times: dict[str, list[float]] = {v: [] for v in verifiers}
        joint_proved = separate_proved = total = 0
        gains: list[float] = []
        for _, problem in problems(network, count=args.images):
            for _, eps in ladder(problem.num_rings):
                total += 1
                for label, verifier in verifiers.items():
                    verdict = verifier.verify(problem, eps)
                    times[label].append(verdict.time_s)
                    settled[label] += verdict.status is not Status.UNKNOWN
                eps_t = torch.as_tensor(eps)
                with torch.no_grad():
                    joint = margin_bound(problem, eps_t, method=BoundMethod.CROWN, joint=True)
                    separate = margin_bound(problem, eps_t, method=BoundMethod.CROWN, joint=False)
                joint_proved += float(joint.lower) > 0
                separate_proved += float(separate.lower) > 0
                gains.append(float(joint.lower) - float(separate.lower))
        for label in verifiers:
            rows.append([name, label, f"{settled[label] / total:.1%}",
                         1000 * float(np.median(times[label])),
                         1000 * float(np.percentile(times[label], 90))])
        joint_rows.append([name, total, separate_proved, joint_proved, joint_proved - separate_proved,
                           sum(g > 1e-6 for g in gains), float(np.median(gains)), float(np.max(gains))])
        print(f"[{name}] {total} queries done", flush=True)
    print()
    print(table(["model", "verifier", "settled", "median ms", "p90 ms"], rows))
    print()
    print(table(["model", "queries", "CROWN proved (per class)", "CROWN proved (joint top-k)",
                 "gain", "bound raised", "median rise", "max rise"], joint_rows))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\ntotal {time.perf_counter() - start:.0f}s")
