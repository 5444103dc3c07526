"""The seed's experiment, summarized: which shipped model has the largest neighborhoods?

Reads results folders of ``ringcert analyze`` over several models (for example the
README's runs: the four shipped models x 60 test images x both targets, one folder per
cutting-weight rule) and prints, per model and
target side, how many analyses ran (and were skipped because the target was not in the
top-2), mean and median size, the mean epsilon of ring 0 (the perturbed digit itself)
and of rings 1-5; then, over the (image, target) pairs every model analysed, how often
one model's neighborhood is larger than another's, with a sign test p-value.

    python benchmarks/experiment.py RESULTS_DIR [RESULTS_DIR ...]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import defaultdict

from common import table
from ringcert.report.records import Variant, read_analyses, show
from ringcert.report.statistics import Estimate, sign_test
from ringcert.vocabulary import Alternative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    loaded = read_analyses(args.results)
    records = [record for _, record in loaded.require_analyses()]
    skips = {(record.model, record.image_index, show(record.target))
             for _, record in loaded.records if record.skipped is not None}  # once per folder
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    for record in records:
        rule = Variant.of(record).label
        groups[(record.model, rule, show(record.target))].append(record)
        groups[(record.model, rule, "both")].append(record)
    rows = []
    for (model, rule, side), group in sorted(groups.items()):
        size = Estimate.of(r.size for r in group)
        skipped = sum(1 for m, _, t in skips if m == model and side in ("both", t))
        rows.append([model, rule, side, len(group), skipped, size.text, size.median,
                     Estimate.of(r.mean_pixel_eps for r in group).mean,
                     Estimate.of(r.ring0_eps for r in group).mean,
                     statistics.fmean(statistics.fmean(r.epsilon[1:6]) for r in group),
                     statistics.fmean(r.queries for r in group),
                     statistics.fmean(r.time_s for r in group)])
    print(table(["model", "variant", "target", "analyses", "skipped", "mean size [95% CI]",
                 "median size", "mean eps per pixel", "mean eps ring 0", "mean eps rings 1-5",
                 "mean queries", "mean time s"], rows))
    by_pair: dict[tuple[str, int, str], dict[str, float]] = defaultdict(dict)
    for record in records:
        key = (Variant.of(record).label, record.image_index, show(record.target))
        by_pair[key][record.model] = record.size
    models = sorted({record.model for record in records})
    wins = []
    for rule in sorted({key[0] for key in by_pair}):
        for a, b in itertools.combinations(models, 2):
            common = [sizes for key, sizes in by_pair.items()
                      if key[0] == rule and a in sizes and b in sizes]
            larger = sum(sizes[a] > sizes[b] for sizes in common)
            smaller = sum(sizes[a] < sizes[b] for sizes in common)
            if common:
                p_value = (sign_test(larger, smaller, alternative=Alternative.TWO_SIDED)
                           if larger + smaller else 1.0)
                ratio = statistics.median(sizes[a] / sizes[b] for sizes in common if sizes[b] > 0)
                wins.append([rule, f"{a} vs {b}", len(common), larger, smaller, ratio, f"{p_value:.2g}"])
    print()
    print(table(["variant", "pair", "common (image, target)", "first larger", "second larger",
                 "median size ratio", "sign test p (two-sided)"], wins))


if __name__ == "__main__":
    main()
