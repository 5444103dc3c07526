"""How fast one CROWN query is, before and after the receptive-field patch pass.

"before" pushes every refined neuron back at full size (``crown_layer_bounds(...,
use_patches=False)``, the original implementation); "after" is the default (patches where
the layers allow). Both then bound the joint top-2 margin. The query mix: the first N
test images whose right digit is in the top-2, eps on rings 0-2 in {0.02, 0.05, 0.1, 0.2}
(other rings 0) and uniform eps in {0.001, 0.002, 0.005, 0.01}; one thread. It also
times the full ``Crown().verify`` and checks that both paths give the same bounds: the
margin bound and every layer bound, relative difference ``|a - b| / max(1, |a|)``. The
intermediate bounds the patch pass computes agree to float rounding (~1e-6); after a
max-pool a near-tie among the lower bounds of a window can make that rounding pick another
(equally sound) input for the pool's linear lower bound, which moves later bounds by up to
~1e-3: the last columns count the queries whose margin bound moved by more than 1e-4 and
how many of those had such a flip (the reference itself moves that much when its
intermediate bounds get 1e-6 relative noise).

    python benchmarks/crown_speed.py [--images 10] [--models none l0 pgd]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import problems, table
from ringcert.errors import RingcertError
from ringcert.layers.maxpool import relax
from ringcert.models.modelfile import load_model
from ringcert.problem import Problem
from ringcert.verify.bounds import BoundMethod, NetworkBounds, margin_bound
from ringcert.verify.bounds.crown import crown_layer_bounds
from ringcert.verify.propagation import Crown

RING_EPS = (0.02, 0.05, 0.1, 0.2)
UNIFORM_EPS = (0.001, 0.002, 0.005, 0.01)


def query_mix(rings: int) -> list[np.ndarray]:
    mix = []
    for value in RING_EPS:
        eps = np.zeros(rings)
        eps[:3] = value
        mix.append(eps)
    mix += [np.full(rings, value) for value in UNIFORM_EPS]
    return mix


def crown_query(problem: Problem, eps: np.ndarray, *, use_patches: bool
                ) -> tuple[float, NetworkBounds, float]:
    """Seconds, layer bounds and margin bound of one CROWN query."""
    began = time.perf_counter()
    with torch.no_grad():
        lo, hi = problem.box(torch.as_tensor(eps))
        layers = crown_layer_bounds(problem.model, lo, hi, use_patches=use_patches)
        bounds = NetworkBounds(input=(lo, hi), layers=layers)
        result = margin_bound(problem, torch.as_tensor(eps), method=BoundMethod.CROWN,
                              network_bounds=bounds)
    return time.perf_counter() - began, bounds, float(result.lower)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / a.abs().clamp(min=1)).max())


def pool_choice_flips(network: torch.nn.Sequential, old: NetworkBounds, new: NetworkBounds) -> int:
    """Windows whose max-pool relaxation picks another input in ``new`` than in ``old``."""
    flips = 0
    for layer, old_in, new_in in zip(network, old.inputs, new.inputs, strict=True):
        if isinstance(layer, torch.nn.MaxPool2d):
            flips += int((relax(layer, *old_in).index != relax(layer, *new_in).index).sum())
    return flips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["none", "l0", "pgd"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.models:
        try:
            network = load_model(name).network
        except RingcertError as error:
            print(f"[{name}] skipped: {error}")
            continue
        before, after, verify_times = [], [], []
        layer_diff = margin_diff = 0.0
        looser = moved = flipped = 0
        for _, problem in problems(network, count=args.images):
            for eps in query_mix(problem.num_rings):
                old_time, old_bounds, old_margin = crown_query(problem, eps, use_patches=False)
                new_time, new_bounds, new_margin = crown_query(problem, eps, use_patches=True)
                before.append(old_time)
                after.append(new_time)
                verify_times.append(Crown().verify(problem, eps).time_s)
                pool_at = next((i for i, layer in enumerate(network)
                                if isinstance(layer, torch.nn.MaxPool2d)), len(network))
                for (old_l, old_u), (new_l, new_u) in zip(old_bounds.layers[:pool_at],
                                                          new_bounds.layers[:pool_at], strict=True):
                    layer_diff = max(layer_diff, relative(old_l, new_l), relative(old_u, new_u))
                change = abs(old_margin - new_margin) / max(1, abs(old_margin))
                margin_diff = max(margin_diff, change)
                if change > 1e-4:
                    moved += 1
                    flipped += pool_choice_flips(network, old_bounds, new_bounds) > 0
                looser += new_margin < old_margin - 1e-4 * max(1, abs(old_margin))
        ms = [1000 * np.array(t) for t in (before, after, verify_times)]
        rows.append([name, len(before), float(np.median(ms[0])), float(np.percentile(ms[0], 90)),
                     float(np.median(ms[1])), float(np.percentile(ms[1], 90)),
                     float(np.median(ms[2])), float(np.median(ms[0]) / np.median(ms[1])),
                     f"{layer_diff:.1e}", f"{margin_diff:.1e}", looser, f"{moved} ({flipped})"])
        print(f"[{name}] {len(before)} queries done", flush=True)
    print()
    print(table(["model", "queries", "before median ms", "before p90 ms", "after median ms",
                 "after p90 ms", "Crown.verify median ms", "speed-up", "max rel diff layers before pool",
                 "max rel diff margin", "queries looser", "margin moved > 1e-4 (pool flip)"],
                rows))


if __name__ == "__main__":
    main()
