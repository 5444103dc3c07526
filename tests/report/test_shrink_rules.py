"""shrink_rules: the cutting-weight rules against each other over the same images, checked
by hand-counted wins, differences and scipy's tests on the same numbers."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, wilcoxon

from ringcert.report.shrink_rules import shrink_comparison, shrink_csv, shrink_pairs, shrink_shown
from ringcert.vocabulary import Shrink
from tests.report.test_compare import analysis


def guided(model: str, shrink: str, sizes: list[float], *, images=None, **fields):
    return [analysis(model=model, image_index=index, size=size, epsilon=[size], weights=[1.0],
                     algorithm={"name": "guided", "shrink": shrink}, **fields)
            for index, size in zip(images or range(len(sizes)), sizes, strict=True)]


def test_pairs_match_image_target_and_settings_only():
    fixed = guided("a", "fixed", [1.0, 2.0, 3.0])
    sensitivity = guided("a", "sensitivity", [1.5, 2.0], images=[2, 0])
    other_k = guided("a", "sensitivity", [9.0], images=[1], k=3)  # another question: unpaired
    other_model = guided("b", "sensitivity", [9.0], images=[1])
    pairs = shrink_pairs(fixed + sensitivity + other_k + other_model)
    assert list(pairs) == ["a"]
    assert [(a.image_index, a.size, b.size) for a, b in pairs["a"]] == [(0, 1.0, 2.0), (2, 3.0, 1.5)]
    assert shrink_pairs(fixed, first=Shrink.FIXED, second=Shrink.ADAPTIVE) == {}


def test_counts_differences_and_two_sided_tests_by_hand():
    first = [1.0, 1.0, 2.0, 2.0, 4.0, 0.0, 3.0]
    second = [1.5, 1.2, 2.0, 3.0, 5.0, 0.5, 2.5]
    [row] = shrink_comparison(guided("a", "fixed", first) + guided("a", "sensitivity", second))
    assert (row.model, row.first, row.second, row.pairs) == ("a", Shrink.FIXED, Shrink.SENSITIVITY, 7)
    assert (row.second_wins, row.ties, row.second_losses) == (5, 1, 1)
    differences = np.subtract(second, first)
    assert row.difference.mean == pytest.approx(differences.mean())
    assert row.difference.low < row.difference.mean < row.difference.high
    assert row.median_ratio == pytest.approx(np.median([1.5, 1.2, 1.0, 1.5, 1.25, 2.5 / 3]))
    assert row.sign_p == pytest.approx(binomtest(5, 6, 0.5).pvalue)  # two-sided
    assert row.sign_p > binomtest(5, 6, 0.5, alternative="greater").pvalue
    assert row.wilcoxon_p == pytest.approx(wilcoxon(differences[differences != 0]).pvalue)


def test_every_pair_of_rules_present_gets_a_row_in_rule_order():
    records = (guided("a", "adaptive", [3.0] * 4) + guided("a", "sensitivity", [2.0] * 4)
               + guided("a", "fixed", [1.0] * 4) + guided("b", "fixed", [1.0] * 4))
    rows = shrink_comparison(records)
    assert [(row.model, row.first.value, row.second.value) for row in rows] == [
        ("a", "fixed", "sensitivity"), ("a", "fixed", "adaptive"), ("a", "sensitivity", "adaptive")]
    assert all(row.second_wins == 4 and row.second_losses == 0 for row in rows)
    assert rows[0].sign_p == pytest.approx(2 * 0.5 ** 4)


def test_identical_rules_have_no_test_and_show_as_na():
    same = guided("a", "fixed", [1.0, 2.0]) + guided("a", "sensitivity", [1.0, 2.0])
    [row] = shrink_comparison(same)
    assert row.ties == 2 and math.isnan(row.sign_p) and math.isnan(row.wilcoxon_p)
    [shown] = shrink_shown([row]).rows
    assert shown[:7] == ("a", "fixed", "sensitivity", "2", "0", "2", "0")
    assert shown[-2:] == ("n/a", "n/a")
    header, line = shrink_csv([row]).splitlines()
    assert header.startswith("model,first,second,pairs,second_wins,ties,second_losses,median_ratio")
    assert line.startswith("a,fixed,sensitivity,2,0,2,0,1.0,nan,nan,2,0.0,")
