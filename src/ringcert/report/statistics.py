"""The statistics of the reports: t-intervals of means and one-sided sign tests (scipy)."""

from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95
"""The confidence level of every interval in the tables and plots (two-sided t-intervals)."""


def t_half_width(values: np.ndarray) -> float:
    """Half the width of the ``CONFIDENCE`` t-interval of the mean of ``values`` (nan for
    fewer than two values)."""
    from scipy import stats

    if len(values) < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * values.std(ddof=1)
                 / math.sqrt(len(values)))


def sign_test(wins: int, losses: int) -> float:
    """One-sided sign-test p-value of ``wins`` against ``losses`` (ties already dropped): the
    chance of at least ``wins`` successes in ``wins + losses`` fair coin flips; nan for 0."""
    from scipy.stats import binomtest

    if wins + losses == 0:
        return math.nan
    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
