"""The guided search's cutting-weight rules against each other, over the same images.

The seed (section 3) compares its CEGIS shrink with fixed and with sensitivity cutting
weights on one image per model (its figures 3 and 4). Here the comparison runs over every
image both rules analysed: per model and pair of rules (``Shrink`` order: fixed against
sensitivity, fixed against adaptive, sensitivity against adaptive), how often the second
rule's certified size is larger, the mean paired difference with its t-interval, the median
size ratio, and two-sided sign and Wilcoxon signed-rank tests (neither rule is favoured in
advance). ``ringcert compare`` writes it as ``shrink.md`` / ``shrink.csv``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import combinations

import numpy as np

from ringcert.report.records import AnalysisRecord, Variant, image_key
from ringcert.report.shown import Shown, csv_text, number, p_text
from ringcert.report.statistics import CONFIDENCE, Estimate, sign_test, wilcoxon_test
from ringcert.vocabulary import Algorithm, Alternative, Shrink

Pair = tuple[AnalysisRecord, AnalysisRecord]
"""The same guided analysis with two cutting-weight rules (first, second)."""


def shrink_pairs(records: Sequence[AnalysisRecord], *, first: Shrink = Shrink.FIXED,
                 second: Shrink = Shrink.SENSITIVITY) -> dict[str, list[Pair]]:
    """Per model, (first, second) guided analyses of the same image question
    (``image_key``) with the same gradient and verifier, sorted by image index then target;
    of several analyses of one question with one rule the last counts."""
    found: dict[tuple, dict[Shrink, AnalysisRecord]] = defaultdict(dict)
    for record in records:
        variant = Variant.of(record)
        if record.image_index is None or variant.algorithm is not Algorithm.GUIDED \
                or variant.shrink is None:
            continue
        _, _, gradient, verifier = variant.columns
        found[(record.model, gradient, verifier, image_key(record))][variant.shrink] = record
    pairs: dict[str, list[Pair]] = defaultdict(list)
    for key in sorted(found, key=lambda key: (key[0], key[3][:2], key[1], key[2])):
        if first in found[key] and second in found[key]:
            pairs[key[0]].append((found[key][first], found[key][second]))
    return dict(pairs)


@dataclass(frozen=True, kw_only=True)
class ShrinkRow:
    """One model, two rules, over the ``pairs`` of analyses of the same image and target:
    ``second_wins`` / ``ties`` / ``second_losses`` count where the second rule's size is
    above / equal to / below the first's; ``difference`` is second minus first;
    ``median_ratio`` the median of second / first (over pairs with a nonzero first size);
    ``sign_p`` and ``wilcoxon_p`` two-sided (nan without a nonzero difference)."""

    model: str
    first: Shrink
    second: Shrink
    pairs: int
    second_wins: int
    ties: int
    second_losses: int
    difference: Estimate
    median_ratio: float
    sign_p: float
    wilcoxon_p: float


def shrink_comparison(records: Sequence[AnalysisRecord]) -> list[ShrinkRow]:
    """A row per model and pair of rules that analysed at least one common image, sorted by
    model then rule pair."""
    rows = []
    for first, second in combinations(Shrink, 2):
        for model, pairs in shrink_pairs(records, first=first, second=second).items():
            differences = np.array([b.size - a.size for a, b in pairs], dtype=np.float64)
            ratios = [b.size / a.size for a, b in pairs if a.size > 0]
            wins, losses = int((differences > 0).sum()), int((differences < 0).sum())
            rows.append(ShrinkRow(
                model=model, first=first, second=second, pairs=len(pairs), second_wins=wins,
                ties=len(pairs) - wins - losses, second_losses=losses,
                difference=Estimate.of(differences.tolist()),
                median_ratio=float(np.median(ratios)) if ratios else math.nan,
                sign_p=sign_test(wins, losses, alternative=Alternative.TWO_SIDED),
                wilcoxon_p=wilcoxon_test(differences, alternative=Alternative.TWO_SIDED)))
    return sorted(rows, key=lambda row: (row.model, list(Shrink).index(row.first),
                                         list(Shrink).index(row.second)))


SHRINK_HEADERS = ("model", "first rule", "second rule", "pairs", "second larger", "tied",
                  "first larger", f"second − first size: mean [{CONFIDENCE:.0%} CI]",
                  "median size ratio", "sign test p (two-sided)", "Wilcoxon p (two-sided)")


def shrink_shown(rows: Sequence[ShrinkRow]) -> Shown:
    return Shown(headers=SHRINK_HEADERS, numeric=(False,) * 3 + (True,) * 8, rows=tuple(
        (row.model, row.first.value, row.second.value, str(row.pairs), str(row.second_wins),
         str(row.ties), str(row.second_losses), row.difference.text, number(row.median_ratio),
         p_text(row.sign_p), p_text(row.wilcoxon_p)) for row in rows))


def shrink_csv(rows: Sequence[ShrinkRow]) -> str:
    names = [field.name for field in fields(ShrinkRow) if field.name != "difference"]
    flat = [{**{name: value for name, value in asdict(row).items() if name in names},
             "first": row.first.value, "second": row.second.value, **row.difference.flat("difference")}
            for row in rows]
    return csv_text(flat, [*names, *Estimate.of([]).flat("difference")])
