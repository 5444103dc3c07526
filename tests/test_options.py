"""``AnalysisOptions``: one place for the defaults, validated, round-tripping through a task."""

from __future__ import annotations

import pytest

from ringcert.errors import RingcertError
from ringcert.options import DEFAULTS, AnalysisOptions
from ringcert.vocabulary import Algorithm, GradientSource, Shrink, VerifierKind


def test_strings_become_members_and_settings_round_trip() -> None:
    options = AnalysisOptions(algorithm="naive", shrink="sensitivity", gradient="bound",
                              verifier="alpha-crown", delta=0.05, k=3, max_queries=7, time_limit=None)
    assert options.algorithm is Algorithm.NAIVE and options.shrink is Shrink.SENSITIVITY
    assert options.gradient is GradientSource.BOUND and options.verifier is VerifierKind.ALPHA_CROWN
    settings = options.to_settings()
    assert settings["algorithm"] == "naive" and settings["verifier"] == "alpha-crown"
    assert AnalysisOptions.from_settings({**settings, "model_sha256": "ab"}) == options


def test_defaults_are_the_documented_ones() -> None:
    assert AnalysisOptions() == DEFAULTS
    assert (DEFAULTS.algorithm, DEFAULTS.shrink, DEFAULTS.verifier) == (
        Algorithm.GUIDED, Shrink.FIXED, VerifierKind.CASCADE)
    # k None: the number of objects (issue 15), resolved per image set
    assert (DEFAULTS.delta, DEFAULTS.k, DEFAULTS.max_queries, DEFAULTS.time_limit) == (0.01, None, None, 20.0)


@pytest.mark.parametrize(("change", "message"), [
    ({"algorithm": "best"}, "algorithm must be one of uniform, naive, guided"),
    ({"verifier": "z3"}, "verifier must be one of"),
    ({"delta": 0.0}, "delta must be in"),
    ({"delta": 1.5}, "delta must be in"),
    ({"k": 0}, "k must be in 1..9"),
    ({"k": 10}, "k must be in 1..9"),
    ({"max_queries": 0}, "max_queries must be a positive integer"),
    ({"time_limit": float("nan")}, "time_limit must be a positive number"),
    ({"time_limit": -1.0}, "time_limit must be a positive number"),
])
def test_bad_options_are_one_line_errors(change: dict[str, object], message: str) -> None:
    with pytest.raises(RingcertError, match=message):
        AnalysisOptions(**change)
