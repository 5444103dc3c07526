"""compare: tables per model x algorithm x shrink and the plots, from stored records."""

import csv
import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from ringcert.batch import run_batch
from ringcert.errors import RingcertError
from ringcert.report.compare import (
    compare,
    mean_with_band,
    plot_heatmap_pair,
    summarize,
)
from tests.batch.fake_task import fake_analysis, fake_analysis_with_png, tasks

RUNS = {"guided-fixed": {"algorithm": "guided", "shrink": "fixed"},
        "guided-sensitivity": {"algorithm": "guided", "shrink": "sensitivity"},
        "naive": {"algorithm": "naive"}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for name, settings in RUNS.items():
        fn = fake_analysis_with_png if name.startswith("guided") else fake_analysis
        run_batch(tasks(4, models=("none", "pgd"), sleep=0.0, **settings), fn, root / name,
                  progress=False)
    return root


def test_tables_group_model_algorithm_shrink(results, tmp_path):
    comparison = compare(results, tmp_path / "out")
    with comparison.csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["model"], r["algorithm"], r["shrink"]) for r in rows} == {
        (m, a, s) for m in ("none", "pgd")
        for a, s in (("guided", "fixed"), ("guided", "sensitivity"), ("naive", "-"))}
    for row in rows:  # every number agrees with the JSON files of that run and model
        run = "naive" if row["algorithm"] == "naive" else f"guided-{row['shrink']}"
        records = [json.loads(p.read_text()) for p in (results / run / row["model"]).glob("*.json")]
        assert int(row["analyses"]) == len(records) == 8
        assert float(row["mean_size"]) == pytest.approx(np.mean([r["size"] for r in records]))
        assert float(row["median_size"]) == pytest.approx(np.median([r["size"] for r in records]))
        assert float(row["mean_queries"]) == pytest.approx(
            np.mean([r["queries"]["total"] for r in records]))
    markdown = comparison.markdown.read_text().splitlines()
    assert len(markdown) == 2 + len(rows) and "tight (refuted) rings" in markdown[0]


def test_tight_fraction_ignores_saturated_rings():
    base = {"model": "m", "verifier": "v", "time_s": 1.0, "queries": {"total": 3}, "size": 1.0,
            "epsilon": [0.1], "algorithm": {"name": "uniform"}}
    rows = summarize([{**base, "maximality": ["refuted", "unproven", "saturated"]},
                      {**base, "maximality": ["refuted", "refuted"]},
                      {**base, "maximality": ["saturated"], "verifier": "w"}])
    assert [row.verifier for row in rows] == ["v", "w"]
    assert rows[0].tight_fraction == pytest.approx(3 / 4)
    assert math.isnan(rows[1].tight_fraction)


def test_mean_with_band():
    mean, low, high = mean_with_band([[1.0, 0.5], [2.0], [3.0]])
    assert mean.tolist() == [2.0, 0.5]
    assert high[0] - mean[0] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2)
    assert low[1] == high[1] == 0.5  # one value: no band


def test_plots_are_real_pngs(results, tmp_path):
    comparison = compare([results / "guided-fixed", results / "guided-sensitivity"], tmp_path)
    names = sorted(path.name for path in comparison.figures)
    assert names == ["epsilon_by_ring.png", "fixed_vs_sensitivity.png", "heatmaps-none.png",
                     "heatmaps-pgd.png", "size_distribution.png"]
    for path in comparison.figures:
        picture = imread(path)
        assert picture.shape[0] > 100 and picture.shape[1] > 100
        assert picture[..., :3].std() > 0.01  # something is drawn
    only_naive = compare(results / "naive", tmp_path / "naive")
    assert sorted(p.name for p in only_naive.figures) == ["epsilon_by_ring.png",
                                                          "size_distribution.png"]


def test_heatmap_redrawn_from_json_when_png_is_missing(tmp_path, monkeypatch):
    """Without stored PNGs the pair is drawn over the regenerated test image's rings
    (``test_sample`` is replaced by a small stand-in: generating the real one takes ~5 s)."""
    from types import SimpleNamespace

    import ringcert.samples
    from ringcert.problem import ring_map

    masks = np.zeros((1, 2, 64, 64), dtype=bool)
    masks[0, 0, 20:30, 5:12] = True  # left digit: the perturbed object when target = right
    masks[0, 1, 10:40, 40:50] = True
    asked = []
    monkeypatch.setattr(ringcert.samples, "test_sample",
                        lambda index: asked.append(index) or SimpleNamespace(masks=masks))
    count = int(ring_map(masks[0, 0]).max()) + 1
    record = {"model": "none", "image_index": 7, "target": "right", "size": 1.0,
              "epsilon": np.linspace(0.3, 0.0, count).tolist()}
    drawn = plot_heatmap_pair((None, record), (None, record), tmp_path / "pair.png")
    assert drawn is not None and imread(drawn).shape[1] > 400 and asked == [7, 7]
    wrong = {**record, "epsilon": [0.1] * (count + 2)}  # not this image's rings: not drawn
    assert plot_heatmap_pair((None, wrong), (None, wrong), tmp_path / "no.png") is None
    left = {**record, "target": "left"}  # rings grow from the other digit: count differs
    assert plot_heatmap_pair((None, left), (None, left), tmp_path / "left.png") is None


def test_empty_or_missing_results_are_errors(tmp_path):
    with pytest.raises(RingcertError, match="no analysis results"):
        compare(tmp_path, tmp_path / "out")
    with pytest.raises(RingcertError, match="does not exist"):
        compare(tmp_path / "nope", tmp_path / "out")


def test_cli_compare_and_report(results, tmp_path, capsys):
    from ringcert.cli import main

    assert main(["compare", str(results / "naive"), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "| none | naive | - | - | fake | 8 |" in out and (tmp_path / "c" / "summary.csv").is_file()
    assert main(["report", str(results / "naive"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").is_file()
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_comparison_variants_cover_every_algorithm_and_guided_shrink():
    from ringcert.cli import comparison_variants

    assert comparison_variants(["uniform", "guided", "naive", "guided"], ["fixed", "sensitivity"]) == [
        ("uniform", {"algorithm": "uniform", "shrink": "fixed"}),
        ("guided-fixed", {"algorithm": "guided", "shrink": "fixed"}),
        ("guided-sensitivity", {"algorithm": "guided", "shrink": "sensitivity"}),
        ("naive", {"algorithm": "naive", "shrink": "fixed"})]


def test_cli_compare_runs_what_is_missing_then_resumes(tmp_path, capsys):
    from ringcert.cli import main

    argv = ["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "c"), "--run",
            "--model", "pgd", "--index", "0", "--algorithm", "uniform", "--algorithm", "guided",
            "--shrink", "fixed", "--budget", "4", "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "2 analyses run" not in first and first.count("1 analyses run, 0 reused") == 2
    for folder in ("uniform", "guided-fixed"):
        records = list((tmp_path / "runs" / folder / "pgd").glob("*.json"))
        assert len(records) == 1 and json.loads(records[0].read_text())["queries"]["total"] <= 4
    with (tmp_path / "c" / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["model"], r["algorithm"], r["shrink"], r["gradient"]) for r in rows} == {
        ("pgd", "uniform", "-", "-"), ("pgd", "guided", "fixed", "weakest-points+bound")}
    assert main(argv) == 0  # everything is on disk now: nothing runs again
    assert capsys.readouterr().out.count("0 analyses run, 1 reused") == 2
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--run"]) == 2
    assert "exactly one results folder" in capsys.readouterr().err
