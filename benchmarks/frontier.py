"""The two sides of every answer, per model: certified against attacked (issue: two-sided answers).

Reads the JSON records of ``ringcert analyze`` runs (any folders) and prints, per model, the
number of analyses, the median ray scale (the smallest ``s`` at which the frontier attack
breaks ``clip(s eps*)``; unbroken rays are counted apart), the median per-ring gap
``u_d - eps*_d`` over breakable rings, unbreakable rings, refuted rings, the median
certified and frontier sizes, the seconds the frontier took (median and max), the seconds
of the maximality pass (median; records from before it was timed show ``-``) and the rings
it left ``unchecked``.

    ringcert analyze --index 0-9 --out two-sided && python benchmarks/frontier.py two-sided
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from ringcert.report.records import read_analyses
from ringcert.vocabulary import MaximalityStatus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    loaded = read_analyses(args.results)
    by_model: dict[str, list] = {}
    for _, record in loaded.analyses:
        if record.raw.get("frontier") is not None:
            by_model.setdefault(record.model, []).append(record)
    print(f"{'model':8} {'n':>4} {'ray med':>8} {'no ray':>6} {'ring gap med':>12} {'unbreak':>8} "
          f"{'refuted':>8} {'size med':>9} {'frontier med':>12} {'frontier s med/max':>19} "
          f"{'max. s med':>10} {'unchecked':>9}")
    for model, records in sorted(by_model.items()):
        rays = [r.ray_scale for r in records if r.ray_scale is not None]
        gaps, unbreakable, refuted, unchecked, seconds = [], 0, 0, 0, []
        passes = [float(r.raw["maximality_time_s"]) for r in records
                  if r.raw.get("maximality_time_s") is not None]
        for record in records:
            frontier = record.raw["frontier"]
            seconds.append(float(frontier["time_s"]))
            for eps, upper in zip(record.epsilon, frontier["rings"], strict=True):
                if upper is None:
                    unbreakable += 1
                else:
                    gaps.append(upper - eps)
            refuted += sum(1 for status in record.maximality if status is MaximalityStatus.REFUTED)
            unchecked += sum(1 for status in record.maximality if status is MaximalityStatus.UNCHECKED)
        rings = sum(len(r.epsilon) for r in records)
        print(f"{model:8} {len(records):4d} {statistics.median(rays) if rays else float('nan'):8.2f} "
              f"{len(records) - len(rays):6d} {float(np.median(gaps)) if gaps else float('nan'):12.3f} "
              f"{unbreakable:4d}/{rings:<4d}{refuted:4d}/{rings:<4d}"
              f"{statistics.median(r.size for r in records):8.3f} "
              f"{statistics.median(r.frontier_size for r in records):12.3f} "
              f"{statistics.median(seconds):10.1f} / {max(seconds):5.1f} "
              f"{f'{statistics.median(passes):.1f}' if passes else '-':>10} {unchecked:4d}/{rings:<4d}")


if __name__ == "__main__":
    main()
