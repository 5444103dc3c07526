"""The cutting-weight rules over images 0-59, pooled from two halves run in different sessions.

Issue 16's sensitivity run covered images 0-47 in one session; its results folders did not
survive to the next, only the README's table of them (pairs, wins, losses, mean paired
difference with its 95% t-interval). Images 48-59 ran later with the same code path and
settings (a query budget: the same JSON under any load). This script prints the rules'
table of the new folders (``report.shrink_rules``) and pools it with the published one:

- sign test: wins and losses add, so the pooled count and its p-value are exact;
- mean difference: each half's sum and sum of squares follow from its n, mean and the
  interval's half-width (``s = half * sqrt(n) / t(0.975, n - 1)``), so the pooled mean and
  t-interval are exact up to the published figures' rounding;
- the Wilcoxon test and the median ratio need every pair, so they are given per half only.

    python benchmarks/rules_pooled.py exp-fixed exp-sensitivity
"""

from __future__ import annotations

import argparse
import math

from scipy import stats

from common import table
from ringcert.report.records import read_analyses
from ringcert.report.shrink_rules import shrink_comparison
from ringcert.report.statistics import CONFIDENCE, sign_test
from ringcert.vocabulary import Alternative, Shrink

PUBLISHED = {  # README, "Cutting-weight rules over the same images", images 0-47 (stop 23)
    "certified": {"pairs": 85, "wins": 58, "losses": 27, "mean": 0.1719, "low": 0.11, "high": 0.2338},
    "l0": {"pairs": 86, "wins": 52, "losses": 34, "mean": 0.1753, "low": 0.08265, "high": 0.268},
    "none": {"pairs": 92, "wins": 64, "losses": 28, "mean": 0.2238, "low": 0.1056, "high": 0.342},
    "pgd": {"pairs": 82, "wins": 49, "losses": 33, "mean": 0.03243, "low": -0.008141, "high": 0.073},
}


def _moments(n: int, mean: float, half: float) -> tuple[float, float]:
    """Sum and sum of squares of ``n`` values with this mean and t-interval half-width."""
    sd = half * math.sqrt(n) / stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)
    return n * mean, (n - 1) * sd * sd + n * mean * mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="results folders of both rules on the new images")
    args = parser.parse_args()
    records = [record for _, record in read_analyses(args.results).require_analyses()]
    rows = [row for row in shrink_comparison(records)
            if (row.first, row.second) == (Shrink.FIXED, Shrink.SENSITIVITY)]
    print("new images only")
    print(table(["model", "pairs", "sensitivity larger / tied / fixed larger", "mean difference [95% CI]",
                 "median ratio", "sign p", "Wilcoxon p"],
                [[row.model, row.pairs, f"{row.second_wins} / {row.ties} / {row.second_losses}",
                  row.difference.text, row.median_ratio, row.sign_p, row.wilcoxon_p] for row in rows]))
    pooled = []
    for row in rows:
        old = PUBLISHED[row.model]
        n = old["pairs"] + row.pairs
        total_a, squares_a = _moments(old["pairs"], old["mean"], (old["high"] - old["low"]) / 2)
        total_b, squares_b = _moments(row.pairs, row.difference.mean,
                                      (row.difference.high - row.difference.low) / 2)
        mean = (total_a + total_b) / n
        sd = math.sqrt(((squares_a + squares_b) - n * mean * mean) / (n - 1))
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
        wins, losses = old["wins"] + row.second_wins, old["losses"] + row.second_losses
        pooled.append([row.model, n, f"{wins} / {n - wins - losses} / {losses}",
                       f"{mean:.4g} [{mean - half:.4g}, {mean + half:.4g}]",
                       sign_test(wins, losses, alternative=Alternative.TWO_SIDED)])
    print("\nimages 0-59 (published 0-47 pooled with the new images)")
    print(table(["model", "pairs", "sensitivity larger / tied / fixed larger", "mean difference [95% CI]",
                 "sign p"], pooled))


if __name__ == "__main__":
    main()
