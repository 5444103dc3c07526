"""The ``analyze`` API and the ``ringcert analyze`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ringcert.analysis import analyze
from ringcert.cli import _indices, main
from ringcert.models.modelfile import SHIPPED, shipped_path
from ringcert.verify.attack import pgd_attack
from ringcert.vocabulary import Algorithm, Status
from tests.search.affine import ExactAffineVerifier, affine_case

REQUIRED = {"model", "image_index", "target", "target_class", "perturbed_class", "k", "rings",
            "ring_sizes", "weights", "epsilon", "size", "maximality", "queries", "time_s",
            "algorithm", "verifier", "ringcert_version"}


def _shipped_or_skip(name: str = "none") -> None:
    if not shipped_path(name).is_file():
        pytest.skip(f"shipped model {name} not trained yet")


@pytest.mark.parametrize("algorithm", ["uniform", "naive", "guided"])
def test_analyze_returns_a_frozen_result_that_serializes(algorithm):
    case = affine_case(0)
    result = analyze(case.problem, algorithm=algorithm, verifier=ExactAffineVerifier(case),
                     model_name="affine", image_index=7, target="left")
    record = json.loads(json.dumps(result.to_json()))
    assert record.keys() >= REQUIRED
    assert record["algorithm"]["name"] == algorithm
    assert record["rings"] == case.problem.num_rings == len(record["epsilon"])
    assert record["size"] == pytest.approx(float(np.dot(record["weights"], record["epsilon"])))
    assert record["target"] == "left" and record["image_index"] == 7
    assert case.inside(result.epsilon)
    with pytest.raises(AttributeError):
        result.model = "other"


def test_analyze_respects_the_query_budget_and_delta():
    case = affine_case(2)
    verifier = ExactAffineVerifier(case)
    result = analyze(case.problem, algorithm=Algorithm.NAIVE, verifier=verifier,
                     max_queries=9, delta=0.05)
    assert verifier.calls <= 9 and result.to_json()["queries"]["total"] == verifier.calls
    assert result.to_json()["algorithm"]["delta"] == 0.05


def test_index_ranges_parse():
    assert _indices("0-2,7") == [range(0, 3), range(7, 8)]
    assert _indices("4") == [range(4, 5)]
    assert len(_indices("0-99999999999")[0]) == 10**11  # a range, no list built
    with pytest.raises(Exception, match="range"):
        _indices("5-3")


def test_cli_analyze_writes_json_and_heatmap(tmp_path, capsys):
    _shipped_or_skip()
    out = tmp_path / "out"
    argv = ["analyze", "--model", "none", "--index", "0", "--verifier", "attack",
            "--budget", "6", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    record = json.loads((out / "none" / "0-right.json").read_text())
    assert record.keys() >= REQUIRED
    assert record["queries"]["total"] <= 6
    assert (out / "none" / "0-right.png").read_bytes()[:4] == b"\x89PNG"
    frontier = record["frontier"]  # the default run attacks its certificate too
    assert len(frontier["rings"]) == record["rings"] and record["frontier_size"] >= record["size"]
    pairs = zip(frontier["rings"], record["epsilon"], strict=True)
    assert all(upper is None or upper >= eps for upper, eps in pairs)
    assert record["target_rings"] and max(record["target_rings"]) < record["rings"]
    table = capsys.readouterr().out
    assert "size" in table and "frontier" in table
    assert main(argv) == 0  # a rerun reuses the stored result
    assert "reused" in capsys.readouterr().out


def test_cli_analyze_bad_model_is_one_line_error(tmp_path, capsys):
    assert main(["analyze", "--model", str(tmp_path / "nope.safetensors"), "--quiet",
                 "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_reported_boxes_on_shipped_models_survive_a_strong_attack(name):
    """Independent check: many-restart, many-step PGD finds nothing inside the reported box."""
    _shipped_or_skip(name)
    from ringcert.models.modelfile import load_model
    from ringcert.samples import sample_problem, test_sample
    from ringcert.verify.registry import search_verifier
    from ringcert.vocabulary import Side

    problem = sample_problem(load_model(name).network, test_sample(0), target=Side.RIGHT)
    result = analyze(problem, algorithm="guided", verifier="cascade", time_limit=30.0, frontier=False)
    eps = torch.as_tensor(result.epsilon)
    engine = search_verifier("cascade")
    assert engine.verify(problem, eps).status is not Status.NOT_ROBUST
    attack = pgd_attack(problem, eps, restarts=64, steps=200, step_fraction=0.05, seed=123)
    assert float(attack.margins.min()) > 0


def _without_seconds(record):
    """A record with its wall-clock fields dropped (everything else must repeat exactly)."""
    record = {key: value for key, value in record.items() if key not in ("time_s", "maximality_time_s")}
    if record.get("frontier"):
        record["frontier"] = {k: v for k, v in record["frontier"].items() if k != "time_s"}
    return record


def test_a_query_budget_without_time_limit_repeats_exactly():
    """Deterministic mode (``--budget``, no time limit): the same analysis twice gives the same
    JSON but for the seconds, with the cascade's branch and bound bounded by work, not time."""
    from ringcert.options import AnalysisOptions
    from tests.fixtures import mlp, tiny_problem

    options = AnalysisOptions(max_queries=25, time_limit=None, delta=0.05)
    assert options.deterministic and not AnalysisOptions().deterministic
    runs = [json.loads(json.dumps(analyze(tiny_problem(mlp(11), (2, 2), 11, k=1), options).to_json()))
            for _ in range(2)]
    assert _without_seconds(runs[0]) == _without_seconds(runs[1])
    assert runs[0]["queries"]["total"] <= 25 and runs[0]["frontier"] is not None


def test_cli_budget_turns_the_default_time_limit_off(tmp_path):
    from ringcert.cli import _time_limit, build_parser

    parse = build_parser().parse_args
    assert _time_limit(parse(["analyze", "--budget", "5"])) is None
    assert _time_limit(parse(["analyze"])) == 20.0
    assert _time_limit(parse(["analyze", "--budget", "5", "--time-limit", "7"])) == 7.0
