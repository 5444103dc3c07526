"""statistics: intervals and tests against scipy on the same numbers."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, wilcoxon

from ringcert.report.statistics import Estimate, sign_test, t_half_width, wilcoxon_test
from ringcert.vocabulary import Alternative


def test_sign_test_one_and_two_sided():
    assert sign_test(9, 1) == pytest.approx(binomtest(9, 10, 0.5, alternative="greater").pvalue)
    assert sign_test(9, 1, alternative=Alternative.TWO_SIDED) == pytest.approx(2 * sign_test(9, 1))
    assert sign_test(1, 9) > 0.99 and math.isnan(sign_test(0, 0))


def test_wilcoxon_drops_zeros_and_needs_two_differences():
    data = np.array([0.0, 0.3, 0.5, -0.1, 0.7, 0.2])
    assert wilcoxon_test(data) == pytest.approx(wilcoxon(data[data != 0], alternative="greater").pvalue)
    assert wilcoxon_test(-data) > 0.9
    two_sided = wilcoxon_test(data, alternative=Alternative.TWO_SIDED)
    assert two_sided == pytest.approx(wilcoxon(data[data != 0]).pvalue)
    assert math.isnan(wilcoxon_test(np.array([0.0, 0.0, 1.0])))


def test_estimate_is_the_mean_with_its_t_interval():
    values = [1.0, 2.0, 4.0, None]
    estimate = Estimate.of(values)
    half = t_half_width(np.array([1.0, 2.0, 4.0]))
    assert (estimate.n, estimate.median) == (3, 2.0)
    assert estimate.low == pytest.approx(7 / 3 - half) and estimate.high == pytest.approx(7 / 3 + half)
    assert math.isnan(Estimate.of([]).mean) and math.isnan(Estimate.of([1.0]).low)
