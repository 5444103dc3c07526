"""Search algorithms side by side on DOUBLE-MNIST test images x the shipped models.

For each algorithm (uniform, naive, and the guided search with fixed and with sensitivity
cutting weights: ``guided-*`` is the default step rule, the seed's then LP steps on the
CROWN bound; ``seed-*`` the seed's rule alone; ``bound-only`` the LP steps alone) prints
mean and median size (w . eps), queries (total, and the search phase alone), time, and
the fraction of rings refuted by a counterexample; then checks the targets: guided
reaches at least naive's size with at most a third of its queries (median over images),
and every layered result is at least uniform's size.

    python benchmarks/search.py --images 10 --models none l0 pgd --time-limit 600

Not a test: it prints tables. Analyses whose target is not in the top-2 are skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

import torch

from ringcert.analysis import analyze
from ringcert.errors import RingcertError
from ringcert.models.modelfile import load_model
from ringcert.samples import sample_problem, test_sample
from ringcert.vocabulary import Algorithm, GradientSource, Shrink, Side

POINTS, BOUND, BOTH = GradientSource.WEAKEST_POINTS, GradientSource.BOUND, GradientSource.BOTH
CONFIGS = {"uniform": (Algorithm.UNIFORM, Shrink.FIXED, POINTS),
           "naive": (Algorithm.NAIVE, Shrink.FIXED, POINTS),
           "guided-fixed": (Algorithm.GUIDED, Shrink.FIXED, BOTH),
           "guided-sensitivity": (Algorithm.GUIDED, Shrink.SENSITIVITY, BOTH),
           "seed-fixed": (Algorithm.GUIDED, Shrink.FIXED, POINTS),
           "seed-sensitivity": (Algorithm.GUIDED, Shrink.SENSITIVITY, POINTS),
           "bound-only": (Algorithm.GUIDED, Shrink.FIXED, BOUND)}
GUIDED = [name for name, config in CONFIGS.items() if config[0] is Algorithm.GUIDED]


@dataclass(frozen=True)
class Row:
    config: str
    model: str
    image: int
    size: float
    queries: int
    search_queries: int
    time_s: float
    refuted: float
    exhausted: bool


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    for name in args.models:
        network = load_model(name).network
        for index in range(args.start, args.start + args.images):
            try:
                problem = sample_problem(network, test_sample(index), target=Side.RIGHT)
            except RingcertError as error:
                print(f"skip {name} #{index}: {error}")
                continue
            for config in args.configs:
                algorithm, shrink, gradient = CONFIGS[config]
                began = time.perf_counter()
                result = analyze(problem, algorithm=algorithm, shrink=shrink, gradient=gradient,
                                 verifier=args.verifier, time_limit=args.time_limit,
                                 max_queries=args.budget, delta=args.delta)
                counts = result.search.maximality_counts()
                row = Row(config=config, model=name, image=index, size=result.size,
                          queries=result.search.queries["total"],
                          search_queries=result.search.search_queries,
                          time_s=time.perf_counter() - began,
                          refuted=counts["refuted"] / problem.num_rings,
                          exhausted=result.search.budget_exhausted)
                rows.append(row)
                print(json.dumps(row.__dict__), flush=True)
    return rows


def _stats(values: list[float]) -> str:
    return f"{statistics.fmean(values):8.3f} {statistics.median(values):8.3f}"


def report(rows: list[Row], configs: list[str]) -> None:
    print(f"\n{'algorithm':19} {'size mean':>8} {'median':>8} {'queries':>8} {'median':>8} "
          f"{'search q':>8} {'time s':>8} {'refuted':>8} {'n':>4} {'cut':>4}")
    for config in configs:
        mine = [row for row in rows if row.config == config]
        if not mine:
            continue
        print(f"{config:19} {_stats([r.size for r in mine])} "
              f"{_stats([float(r.queries) for r in mine])} "
              f"{statistics.median([r.search_queries for r in mine]):8.1f} "
              f"{statistics.fmean([r.time_s for r in mine]):8.1f} "
              f"{statistics.fmean([r.refuted for r in mine]):8.3f} {len(mine):4d} "
              f"{sum(r.exhausted for r in mine):4d}")
    by_key = {(r.config, r.model, r.image): r for r in rows}
    pairs = sorted({(r.model, r.image) for r in rows})
    for guided in GUIDED:
        ratios, reached = [], []
        for key in pairs:
            g, n = by_key.get((guided, *key)), by_key.get(("naive", *key))
            if g and n:
                ratios.append(g.queries / max(1, n.queries))
                reached.append(g.size >= n.size - 1e-9)
        if ratios:
            print(f"{guided}: median queries / naive's = {statistics.median(ratios):.3f} "
                  f"(target <= 1/3); size >= naive's on {sum(reached)}/{len(reached)} images")
    for config in configs:
        if config == "uniform":
            continue
        beaten = [r.size >= by_key[("uniform", r.model, r.image)].size - 1e-9 for r in rows
                  if r.config == config and ("uniform", r.model, r.image) in by_key]
        if beaten:
            print(f"{config}: size >= uniform's on {sum(beaten)}/{len(beaten)} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["none", "l0", "pgd"])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--verifier", default="cascade")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per analysis")
    parser.add_argument("--budget", type=int, help="queries per analysis")
    parser.add_argument("--delta", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one core)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report(run(args), args.configs)


if __name__ == "__main__":
    main()
