"""The seed's experiment, summarized: which shipped model has the largest neighborhoods?

Reads a results folder of ``ringcert analyze`` over several models (for example the
README's run: 100 test images x both targets x none/l0/pgd) and prints, per model and
target side, how many analyses ran (and were skipped because the target was not in the
top-2), mean and median size, the mean epsilon of ring 0 (the perturbed digit itself)
and of rings 1-5; then, over the (image, target) pairs every model analysed, how often
one model's neighborhood is larger than another's, with a sign test p-value.

    python benchmarks/experiment.py RESULTS_DIR
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import defaultdict

from scipy import stats

from common import table
from ringcert.report.records import read_analyses, show


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    args = parser.parse_args()
    loaded = read_analyses(args.results)
    records = [record for _, record in loaded.require_analyses()]
    skipped: dict[tuple[str, str], int] = defaultdict(int)
    for _, record in loaded.records:
        if record.skipped is not None:
            skipped[(record.model, show(record.target))] += 1
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for record in records:
        groups[(record.model, show(record.target))].append(record)
        groups[(record.model, "both")].append(record)
    rows = []
    for (model, side), group in sorted(groups.items()):
        sizes = [r.size for r in group]
        near = [statistics.fmean(r.epsilon[1:6]) for r in group]
        skips = (sum(v for (m, _), v in skipped.items() if m == model) if side == "both"
                 else skipped[(model, side)])
        rows.append([model, side, len(group), skips, statistics.fmean(sizes),
                     statistics.median(sizes), statistics.fmean(r.epsilon[0] for r in group),
                     statistics.fmean(near), statistics.fmean(r.queries for r in group),
                     statistics.fmean(r.time_s for r in group)])
    print(table(["model", "target", "analyses", "skipped", "mean size", "median size",
                 "mean eps ring 0", "mean eps rings 1-5", "mean queries", "mean time s"], rows))
    by_pair: dict[tuple[int, str], dict[str, float]] = defaultdict(dict)
    for record in records:
        by_pair[(record.image_index, show(record.target))][record.model] = record.size
    models = sorted({record.model for record in records})
    wins = []
    for a, b in itertools.permutations(models, 2):
        common = [sizes for sizes in by_pair.values() if a in sizes and b in sizes]
        larger = sum(sizes[a] > sizes[b] for sizes in common)
        smaller = sum(sizes[a] < sizes[b] for sizes in common)
        if common and a < b:
            p_value = stats.binomtest(larger, larger + smaller).pvalue if larger + smaller else 1.0
            ratio = statistics.median(sizes[a] / sizes[b] for sizes in common if sizes[b] > 0)
            wins.append([f"{a} vs {b}", len(common), larger, smaller, ratio, f"{p_value:.2g}"])
    print()
    print(table(["pair", "common (image, target)", "first larger", "second larger",
                 "median size ratio", "sign test p"], wins))


if __name__ == "__main__":
    main()
