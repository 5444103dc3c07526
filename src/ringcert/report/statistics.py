"""The statistics of the reports: means with t-intervals, sign tests and the Wilcoxon
signed-rank test (scipy)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ringcert.report.shown import number
from ringcert.vocabulary import Alternative

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


def sign_test(wins: int, losses: int, *, alternative: Alternative = Alternative.GREATER) -> float:
    """Sign-test p-value of ``wins`` against ``losses`` (ties already dropped): one-sided
    (``GREATER``), the chance of at least ``wins`` successes in ``wins + losses`` fair coin
    flips, or ``TWO_SIDED``; nan for 0."""
    from scipy.stats import binomtest

    if wins + losses == 0:
        return math.nan
    return float(binomtest(wins, wins + losses, 0.5, alternative=alternative.value).pvalue)


def wilcoxon_test(differences: np.ndarray, *, alternative: Alternative = Alternative.GREATER) -> float:
    """Wilcoxon signed-rank p-value that the paired ``differences`` centre above 0
    (``GREATER``) or away from it (``TWO_SIDED``); zeros dropped, nan for fewer than two
    nonzero differences."""
    from scipy.stats import wilcoxon

    nonzero = differences[differences != 0]
    if len(nonzero) < 2:
        return math.nan
    return float(wilcoxon(nonzero, alternative=alternative.value).pvalue)


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """The mean of ``n`` values with its ``CONFIDENCE`` t-interval ``[low, high]`` (nan for
    fewer than two values) and their median; everything nan when ``n`` is 0."""

    n: int
    mean: float
    low: float
    high: float
    median: float

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Estimate:
        """The estimate over the values that are not None."""
        data = np.array([value for value in values if value is not None], dtype=np.float64)
        if not len(data):
            return cls(n=0, mean=math.nan, low=math.nan, high=math.nan, median=math.nan)
        mean, half = float(data.mean()), t_half_width(data)
        return cls(n=len(data), mean=mean, low=mean - half, high=mean + half,
                   median=float(np.median(data)))

    @property
    def text(self) -> str:
        """``mean [low, high]``; the mean alone for one value, ``n/a`` for none."""
        if math.isnan(self.low):
            return number(self.mean)
        return f"{number(self.mean)} [{number(self.low)}, {number(self.high)}]"

    def flat(self, prefix: str) -> dict[str, float]:
        """The CSV columns ``<prefix>_n``, ``_mean``, ``_ci_low``, ``_ci_high``, ``_median``."""
        return {f"{prefix}_n": self.n, f"{prefix}_mean": self.mean, f"{prefix}_ci_low": self.low,
                f"{prefix}_ci_high": self.high, f"{prefix}_median": self.median}
