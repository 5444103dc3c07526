"""How often the complete (MILP) stage settles the queries the cheap stages leave open.

Queries: shipped models x test images, target = one digit, perturbed object = the other,
ring-shaped epsilon vectors ``eps_d = e * max(0, 1 - d / width)`` with ``e`` placed between
the largest value alpha-CROWN proves and the smallest the attack refutes (the robustness
boundary). Only queries that attack and alpha-CROWN both leave UNKNOWN are kept. Each is
then run through MILP variants (each tractability measure on its own):

- ``baseline``: plain big-M with interval (IBP) bounds, no warm start, no early stop;
- ``crown``: CROWN pre-activation bounds, no warm start, no early stop;
- ``crown+ws+es``: plus warm start from the attack and early stop on the sign;
- ``partial``: the latter with binaries only for the 200 most uncertain unstable ReLUs;
- ``falsify``: crown+ws+es after a stronger PGD phase (32 restarts x 100 steps);
- ``tighten``: falsify plus alpha-optimized second-conv bounds (``milp_bounds``);
- ``tighten+pool64``: plus max-pool binaries only for the 64 widest windows (Planet
  relaxation for the others);
- ``bab``: not a MILP: branch and bound over ReLU splits with CROWN bounds per branch
  (``verify/bab``), default settings (its own PGD phase first; max-pools in the form with
  the better root bound, ``PoolForm.BEST``);
- ``bab-relaxed``: the same with the max-pool's own relaxation always (and its splits), as
  before ``PoolForm``;
- ``bab-envelope`` / ``bab-envelope5``: ``bab`` with the root's second-layer bounds from the
  first ReLU layer's hull over the box (20 / 5 envelope steps), kept by every branch;
- ``bab-hull``: branch and bound as single queries get it (``make_verifier``): the hull pass
  with ``BAB_ENVELOPE_STEPS`` only where CROWN's root bound is above ``-ENVELOPE_GAP``.

Prints the fraction settled within each time limit and the median time.
Usage: ``python benchmarks/complete.py --queries 30 --limits 30 60 120`` (``--shard 1/2`` and
``--shard 2/2`` in two processes split the queries between them).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ringcert.data.double_mnist import Split, dataset
from ringcert.errors import RingcertError
from ringcert.models.modelfile import load_model
from ringcert.problem import Problem
from ringcert.verify.attack import Attack
from ringcert.verify.bab import BranchAndBound
from ringcert.verify.bounds import BoundMethod, margin_bound
from ringcert.verify.milp import Milp
from ringcert.verify.registry import BAB_ENVELOPE_STEPS, ENVELOPE_GAP
from ringcert.verify.verdict import Verifier
from ringcert.vocabulary import PoolForm, Status

VARIANTS = {
    "baseline": {"bounds": BoundMethod.IBP, "warm_start": False, "early_stop": False},
    "crown": {"bounds": BoundMethod.CROWN, "warm_start": False, "early_stop": False},
    "crown+ws+es": {"bounds": BoundMethod.CROWN, "warm_start": True, "early_stop": True},
    "partial": {"bounds": BoundMethod.CROWN, "warm_start": True, "early_stop": True,
                "binary_budget": 200},
    "falsify": {"attack_restarts": 32},
    "tighten": {"attack_restarts": 32, "tighten_steps": 30},
    "tighten+pool64": {"attack_restarts": 32, "tighten_steps": 30, "pool_budget": 64},
    "bab": {"verifier": BranchAndBound},
    "bab-relaxed": {"verifier": BranchAndBound, "pool_form": PoolForm.RELAXED},
    "bab-envelope": {"verifier": BranchAndBound, "envelope_steps": 20},
    "bab-envelope5": {"verifier": BranchAndBound, "envelope_steps": 5},
    "bab-hull": {"verifier": BranchAndBound, "envelope_steps": BAB_ENVELOPE_STEPS,
                 "envelope_gap": ENVELOPE_GAP},
}


def build(variant: str, time_limit: float) -> Verifier:
    """The variant's verifier (a ``Milp`` unless its settings name another class)."""
    settings = dict(VARIANTS[variant])
    verifier = settings.pop("verifier", Milp)
    return verifier(time_limit=time_limit, **settings)


def ring_eps(problem: Problem, level: float, width: int) -> np.ndarray:
    rings = np.arange(problem.num_rings)
    return np.clip(level * np.maximum(0.0, 1.0 - rings / width), 0.0, 1.0)


def proved(problem: Problem, eps: np.ndarray) -> bool:
    bound = margin_bound(problem, problem.check_eps(eps), method=BoundMethod.ALPHA_CROWN)
    return float(bound.lower.detach()) > 0


def open_queries(count: int, *, models: list[str], width: int, seed: int):
    """Yield (name, problem, eps, attack verdict) left UNKNOWN by attack and alpha-CROWN."""
    rng = np.random.default_rng(seed)
    data = dataset(Split.TEST, count=200)
    attack = Attack()
    found = 0
    for index in rng.permutation(len(data.images)):
        for name in models:
            network = load_model(name).network
            image = torch.tensor(data.images[index] / 255.0, dtype=torch.float32)
            side = int(rng.integers(2))
            try:
                problem = Problem.create(model=network, image=image, target=int(data.labels[index][side]),
                                         mask=data.masks[index][1 - side], k=2)
            except RingcertError:
                continue
            low, high = 0.0, 0.5  # alpha-CROWN proves low; the attack refutes high
            if attack.verify(problem, ring_eps(problem, high, width)).status is not Status.NOT_ROBUST:
                continue
            for _ in range(6):
                mid = (low + high) / 2
                if proved(problem, ring_eps(problem, mid, width)):
                    low = mid
                elif attack.verify(problem, ring_eps(problem, mid, width)).status is Status.NOT_ROBUST:
                    high = mid
                else:
                    break
            level = float(rng.uniform(low, high))
            eps = ring_eps(problem, level, width)
            verdict = attack.verify(problem, eps)
            if verdict.status is Status.UNKNOWN and not proved(problem, eps):
                yield f"{name}#{index}@{level:.4f}", problem, eps, verdict
                found += 1
                if found >= count:
                    return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--limits", type=float, nargs="+", default=[30.0, 60.0, 120.0])
    parser.add_argument("--models", nargs="+", default=["none", "l0", "pgd"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--width", type=int, default=6, help="rings with non-zero epsilon")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", default=None, metavar="MODEL#INDEX",
                        help="run only these of the queries (e.g. pgd#65), by their label's prefix")
    parser.add_argument("--shard", default="1/1", help="K/N: run queries K, K+N, ... (1-based), "
                        "to split one run over N processes")
    args = parser.parse_args()
    try:
        shard, shards = (int(part) for part in args.shard.split("/"))
        if not 1 <= shard <= shards:
            raise ValueError
    except ValueError:
        parser.error(f"--shard must be K/N with 1 <= K <= N, got {args.shard!r}")
    torch.set_num_threads(1)
    models = []
    for name in args.models:
        try:
            load_model(name)
            models.append(name)
        except RingcertError as error:
            print(f"skipping model {name}: {error}")
    queries = list(open_queries(args.queries, models=models, width=args.width, seed=args.seed))
    print(f"{len(queries)} queries left UNKNOWN by attack + alpha-CROWN")
    if args.only is not None:
        queries = [query for query in queries if query[0].split("@")[0] in args.only]
        print(f"{len(queries)} of them asked for with --only")
    queries = queries[shard - 1::shards]
    limits = sorted(args.limits)
    results: dict[str, list[tuple[Status, float]]] = {}
    for variant in args.variants:
        verifier = build(variant, limits[-1])
        rows = []
        for label, problem, eps, hint in queries:
            began = time.perf_counter()
            verdict = verifier.verify(problem, eps, hint=hint)
            elapsed = time.perf_counter() - began
            rows.append((verdict.status, elapsed))
            print(f"  {variant:14s} {label:24s} {verdict.status.value:10s} {elapsed:7.1f}s "
                  f"bound={verdict.bound} unstable={verdict.stats.get('unstable')} "
                  f"binaries={verdict.stats.get('binaries')} "
                  f"nodes={verdict.stats.get('nodes', verdict.stats.get('branches'))} "
                  f"pool_form={verdict.stats.get('pool_form')} root={verdict.stats.get('root_bound')} "
                  f"envelope_s={verdict.stats.get('envelope_s')}",
                  flush=True)
        results[variant] = rows
    print("\n" + f"{'variant':16s}" + "".join(f"{'settled<=' + f'{t:g}' + 's':>14s}" for t in limits)
          + f" {'robust':>7s} {'not_rob':>7s} {'median s':>9s}")
    for variant, rows in results.items():
        n = max(len(rows), 1)
        settled = [sum(1 for s, t in rows if s is not Status.UNKNOWN and t <= limit) / n
                   for limit in limits]
        robust = sum(1 for s, _ in rows if s is Status.ROBUST)
        refuted = sum(1 for s, _ in rows if s is Status.NOT_ROBUST)
        median = statistics.median(t for _, t in rows) if rows else float("nan")
        print(f"{variant:16s}" + "".join(f"{v:14.0%}" for v in settled)
              + f" {robust:7d} {refuted:7d} {median:9.1f}")


if __name__ == "__main__":
    main()
