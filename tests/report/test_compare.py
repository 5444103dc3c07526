"""compare: tables per model x algorithm x shrink and the plots, from stored records."""

import csv
import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from ringcert.batch import ResultStore, run_batch
from ringcert.data.double_mnist import DoubleMnist
from ringcert.errors import RingcertError
from ringcert.report.compare import (
    compare,
    compare_loaded,
    paired_comparison,
    summarize,
    two_sided,
)
from ringcert.report.figures import (
    mean_with_band,
    plot_heatmap_pair,
    size_distribution_figure,
    variant_labels,
)
from ringcert.report.records import AnalysisRecord, Loaded, Variant, read_analyses
from ringcert.report.statistics import Estimate
from ringcert.vocabulary import Algorithm, GradientSource, Shrink
from tests.batch.fake_task import fake_analysis, fake_analysis_with_png, fake_record, tasks

RUNS = {"guided-fixed": {"algorithm": "guided", "shrink": "fixed"},
        "guided-sensitivity": {"algorithm": "guided", "shrink": "sensitivity"},
        "naive": {"algorithm": "naive"}}


def analysis(**fields) -> AnalysisRecord:
    """An analysis record with every key, ``fields`` changed; the per-ring lists follow
    ``epsilon`` (or ``maximality``) in length."""
    rings = len(fields.get("epsilon", fields.get("maximality", [0.1])))
    raw = {"model": "m", "image_index": 0, "target": "right", "target_class": 2,
           "perturbed_class": 5, "k": 2, "ring_sizes": [10] * rings, "weights": [1.0] * rings,
           "epsilon": [0.1] * rings, "size": 1.0, "maximality": ["unproven"] * rings,
           "queries": {"total": 3}, "time_s": 1.0, "algorithm": {"name": "uniform"},
           "verifier": "v", **fields}
    return AnalysisRecord.from_json(raw)


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
    assert comparison.skipped == ()  # every file is an analysis, each read once


def test_tight_fraction_ignores_saturated_rings():
    rows = summarize([analysis(maximality=["refuted", "unproven", "saturated"]),
                      analysis(maximality=["refuted", "refuted"]),
                      analysis(maximality=["saturated"], verifier="w")])
    assert [row.verifier for row in rows] == ["v", "w"]
    assert rows[0].tight_fraction == pytest.approx(3 / 4)
    assert math.isnan(rows[1].tight_fraction)


def test_summary_has_the_t_interval_of_the_mean_size(tmp_path):
    rows = summarize([analysis(size=1.0), analysis(size=2.0), analysis(size=3.0),
                      analysis(size=5.0, verifier="w")])
    half = 4.302653 / math.sqrt(3)  # t(0.975, 2) * sd 1 / sqrt(3)
    assert (rows[0].size_ci_low, rows[0].size_ci_high) == pytest.approx((2 - half, 2 + half), rel=1e-6)
    assert math.isnan(rows[1].size_ci_low) and math.isnan(rows[1].size_ci_high)  # one analysis
    comparison = compare_loaded(Loaded.of([analysis(size=1.0), analysis(size=3.0)]), tmp_path)
    line = comparison.markdown.read_text().splitlines()[2]
    assert "| 2 | [-10.71, 14.71] | 2 |" in line  # t(0.975, 1) = 12.706, sd sqrt(2) / sqrt(2)


def test_mean_with_band():
    mean, low, high = mean_with_band([[1.0, 0.5], [2.0], [3.0]])
    assert mean.tolist() == [2.0, 0.5]
    assert high[0] - mean[0] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2)
    assert low[1] == high[1] == 0.5  # one value: no band


def test_plots_are_real_pngs(results, tmp_path):
    comparison = compare([results / "guided-fixed", results / "guided-sensitivity"], tmp_path)
    names = sorted(path.name for path in comparison.figures)
    assert names == ["epsilon_by_ring.png", "fixed_vs_sensitivity.png",
                     "fixed_vs_sensitivity_by_ring.png", "heatmaps-none.png", "heatmaps-pgd.png",
                     "size_distribution.png"]
    for path in comparison.figures:
        picture = imread(path)
        assert picture.shape[0] > 100 and picture.shape[1] > 100
        assert picture[..., :3].std() > 0.01  # something is drawn
    only_naive = compare(results / "naive", tmp_path / "naive")
    assert sorted(p.name for p in only_naive.figures) == ["epsilon_by_ring.png",
                                                          "size_distribution.png"]


def variant(algorithm, shrink=None, gradient=None, verifier="cascade") -> Variant:
    return Variant(algorithm=algorithm, shrink=shrink, gradient=gradient, verifier=verifier)


def test_variant_labels_are_short_and_drop_what_every_variant_shares():
    fixed = variant(Algorithm.GUIDED, Shrink.FIXED, GradientSource.BOTH)
    sensitivity = variant(Algorithm.GUIDED, Shrink.SENSITIVITY, GradientSource.BOTH)
    naive, uniform = variant(Algorithm.NAIVE), variant(Algorithm.UNIFORM)
    labels = variant_labels([fixed, sensitivity, naive, uniform])
    assert labels == {fixed: ("guided-fixed", "guided/fixed/weakest-points+bound"),
                      sensitivity: ("guided-sens", "guided/sensitivity/weakest-points+bound"),
                      naive: ("naive", "naive"), uniform: ("uniform", "uniform")}
    bound = variant(Algorithm.GUIDED, Shrink.FIXED, GradientSource.BOUND)
    assert [short for short, _ in variant_labels([fixed, bound]).values()] == [
        "guided-wp+bound", "guided-bound"]  # only the gradient differs
    milp = variant(Algorithm.NAIVE, verifier="milp")
    assert variant_labels([naive, milp]) == {naive: ("naive-cascade", "naive/cascade"),
                                             milp: ("naive-milp", "naive/milp")}
    guided_milp = variant(Algorithm.GUIDED, Shrink.FIXED, verifier="milp")
    assert variant_labels([naive, guided_milp]) == {  # one per algorithm: the names suffice
        naive: ("naive", "naive/cascade"), guided_milp: ("guided", "guided/fixed/milp")}
    three = variant_labels([fixed, bound, sensitivity, naive])  # with the algorithm: too long
    assert [short for short, _ in three.values()] == ["fixed-wp+bound", "fixed-bound", "sens-wp+bound",
                                                      "naive"]
    long = variant(Algorithm.NAIVE, verifier="a-verifier-with-a-long-name")
    assert [short for short, _ in variant_labels([naive, long, uniform]).values()] == [
        "naive-1", "naive-2", "uniform-1"]  # too long: numbered, the legend says which is which


def test_size_distribution_ticks_are_short_and_horizontal_with_a_legend(results):
    records = [record for _, record in read_analyses(results).analyses]
    figure = size_distribution_figure(records)
    panels = [axes for axes in figure.axes if axes.get_title().startswith("model")]
    assert [axes.get_title() for axes in panels] == ["model none", "model pgd"]
    for axes in panels:
        ticks = axes.get_xticklabels()
        assert [tick.get_text() for tick in ticks] == ["guided-fixed", "guided-sens", "naive"]
        assert all(len(tick.get_text()) <= 16 and tick.get_rotation() == 0 for tick in ticks)
    legend = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert legend == ["guided-fixed = guided/fixed", "guided-sens = guided/sensitivity"]


def test_heatmap_redrawn_from_json_when_png_is_missing(tmp_path, monkeypatch):
    """Without stored PNGs the pair is drawn over the regenerated test image's rings
    (``test_sample`` is replaced by a small stand-in: generating the real one takes ~5 s)."""

    import ringcert.samples
    from ringcert.problem import ring_map

    masks = np.zeros((1, 2, 64, 64), dtype=bool)
    masks[0, 0, 20:30, 5:12] = True  # left digit: the perturbed object when target = right
    masks[0, 1, 10:40, 40:50] = True
    asked = []
    monkeypatch.setattr(ringcert.samples, "test_sample",
                        lambda index, **_: asked.append(index) or DoubleMnist(
                            images=np.zeros(masks.shape[2:], np.uint8)[None], labels=np.array([[0, 1]]),
                            masks=masks))
    count = int(ring_map(masks[0, 0]).max()) + 1
    fields = {"model": "none", "image_index": 7, "target": "right", "size": 1.0}
    record = analysis(**fields, epsilon=np.linspace(0.3, 0.0, count).tolist())
    drawn = plot_heatmap_pair((None, record), (None, record), tmp_path / "pair.png")
    assert drawn is not None and imread(drawn).shape[1] > 400 and asked == [7, 7]
    wrong = analysis(**fields, epsilon=[0.1] * (count + 2))  # not this image's rings: not drawn
    assert plot_heatmap_pair((None, wrong), (None, wrong), tmp_path / "no.png") is None
    # target left: the rings grow from the other digit, so their count differs
    left = analysis(**{**fields, "target": "left"}, epsilon=list(record.epsilon))
    assert plot_heatmap_pair((None, left), (None, left), tmp_path / "left.png") is None


def test_empty_or_missing_results_are_errors(tmp_path):
    with pytest.raises(RingcertError, match="no analysis results"):
        compare(tmp_path, tmp_path / "out")
    with pytest.raises(RingcertError, match="does not exist"):
        compare(tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_analysis_is_an_error_saying_what_was_looked_at(tmp_path):
    (tmp_path / "notes.json").write_text('{"model": "none"}')
    (tmp_path / "broken.json").write_text("{")
    ResultStore(tmp_path).write(tasks(1)[0], {"model": "none", "image_index": 0, "target": "left",
                                              "skipped": "target 4 is not in the top-2"})
    with pytest.raises(RingcertError, match="no analysis results") as caught:
        compare(tmp_path, tmp_path / "out")
    message = str(caught.value)
    assert "looked at 3 *.json files, none is an analysis" in message
    assert f"{tmp_path / 'broken.json'}: unreadable JSON: " in message
    assert f"{tmp_path / 'notes.json'}: not an analysis record: missing key 'image_index'" in message
    assert "analysis none #0 left skipped: target 4 is not in the top-2" in message
    assert not (tmp_path / "out").exists()  # nothing is written


def test_skipped_files_and_skip_records_are_reported(results, tmp_path):
    root = tmp_path / "results"
    store = ResultStore(root)
    records = [store.write(task, fake_record(task)) for task in tasks(2, models=("pgd",))]
    skip = store.write(tasks(3, models=("pgd",))[-1], {"model": "pgd", "image_index": 2,
                                                      "target": "right", "skipped": "not top-2"})
    junk = root / "pgd" / "notes.json"
    junk.write_text("[1, 2]")
    comparison = compare(root, tmp_path / "out")
    assert [row.analyses for row in comparison.rows] == [len(records)]
    assert comparison.skipped == (
        (junk, "not an analysis record: expected a JSON object, got list"),
        (skip, "analysis pgd #2 right skipped: not top-2"))


def test_compare_loaded_takes_records_in_memory(tmp_path):
    loaded = Loaded.of([analysis(model="a", size=2.0), analysis(model="a", size=4.0),
                        AnalysisRecord.from_json({"model": "a", "image_index": 1, "target": None,
                                                  "skipped": "no"})])
    comparison = compare_loaded(loaded, tmp_path)
    assert [(row.model, row.analyses, row.mean_size) for row in comparison.rows] == [("a", 2, 3.0)]
    assert comparison.skipped == ((None, "analysis a #1 - skipped: no"),)


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

    assert comparison_variants([Algorithm.UNIFORM, Algorithm.GUIDED, Algorithm.NAIVE, Algorithm.GUIDED],
                               [Shrink.FIXED, Shrink.SENSITIVITY]) == [
        ("uniform", Algorithm.UNIFORM, Shrink.FIXED),
        ("guided-fixed", Algorithm.GUIDED, Shrink.FIXED),
        ("guided-sensitivity", Algorithm.GUIDED, Shrink.SENSITIVITY),
        ("naive", Algorithm.NAIVE, Shrink.FIXED)]


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


# --- two-sided summaries and the paired comparison ---------------------------------------------

def two_sided_record(model="m", index=0, *, epsilon, frontier=None, target_rings=None, size=None,
                     ray_scale=1.5, **fields) -> AnalysisRecord:
    """Three rings of 10, 20 and 30 pixels, weights 1; ``frontier`` the per-ring u (None:
    no frontier in the record)."""
    extra = {} if target_rings is None else {"target_rings": target_rings}
    if frontier is not None:
        extra["frontier"] = {"ray_scale": ray_scale, "rings": frontier}
        extra["frontier_size"] = sum(1.0 if u is None else u for u in frontier)
    return analysis(model=model, image_index=index, epsilon=epsilon, ring_sizes=[10, 20, 30],
                    size=sum(epsilon) if size is None else size, **extra, **fields)


def test_two_sided_summaries_by_hand():
    records = [two_sided_record(epsilon=[0.3, 0.2, 0.0], frontier=[0.4, None, 0.1], target_rings=[1, 2],
                                ray_scale=2.0),
               two_sided_record(index=1, epsilon=[0.1, 0.1, 0.1], frontier=[0.2, 0.3, 0.6], target_rings=[2],
                                ray_scale=None)]
    rows = {row.measure: row for row in two_sided(records)}
    assert list(rows) == ["size", "mean_pixel_eps", "ring0_eps", "target_ring_eps", "ray_scale"]
    t1 = 12.706205  # t(0.975, 1); with two values the half width is t1 * |a - b| / 2
    size = rows["size"]  # certified 0.5 and 0.3; frontier 1.5 and 1.1; gaps 1.0 and 0.8
    assert (size.certified.n, size.certified.mean, size.certified.median) == (2, pytest.approx(0.4),
                                                                               pytest.approx(0.4))
    assert size.certified.high - size.certified.mean == pytest.approx(t1 * 0.1, rel=1e-6)
    assert (size.frontier.mean, size.difference.mean) == (pytest.approx(1.3), pytest.approx(0.9))
    assert size.difference.high - size.difference.mean == pytest.approx(t1 * 0.1, rel=1e-6)
    pixel = rows["mean_pixel_eps"]  # (3 + 4 + 0) / 60 and 6 / 60; (4 + 20 + 3) / 60 and (2 + 6 + 18) / 60
    assert pixel.certified.mean == pytest.approx((7 / 60 + 6 / 60) / 2)
    assert pixel.frontier.mean == pytest.approx((27 / 60 + 26 / 60) / 2)
    ring0 = rows["ring0_eps"]
    assert (ring0.certified.mean, ring0.frontier.mean, ring0.difference.mean) == pytest.approx(
        (0.2, 0.3, 0.1))
    target = rows["target_ring_eps"]  # (0.2 + 0) / 2 and 0.1; (1 + 0.1) / 2 and 0.6
    assert (target.certified.mean, target.frontier.mean) == pytest.approx((0.1, 0.575))
    ray = rows["ray_scale"]  # only the broken ray counts; no certified side
    assert (ray.certified.n, ray.frontier.n, ray.frontier.mean, ray.frontier.median) == (0, 1, 2.0, 2.0)
    assert math.isnan(ray.frontier.low) and ray.frontier.text == "2"


def test_records_without_frontier_summarize_with_frontier_columns_na(tmp_path):
    old = [two_sided_record(index=index, epsilon=[0.2, 0.1, 0.0]) for index in range(2)]
    rows = {row.measure: row for row in two_sided(old)}
    assert rows["size"].certified.n == 2 and rows["size"].certified.mean == pytest.approx(0.3)
    assert rows["ring0_eps"].certified.mean == pytest.approx(0.2)
    assert all(row.frontier.n == row.difference.n == 0 for row in rows.values())
    assert rows["target_ring_eps"].certified.n == 0  # the records do not list target rings
    comparison = compare_loaded(Loaded.of(old), tmp_path)
    lines = comparison.two_sided_markdown.read_text().splitlines()
    assert len(lines) == 2 + 5
    size_line = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert size_line[5:] == ["size w · eps", "2", "0.3 [0.3, 0.3]", "0.3", "0", "n/a", "n/a", "n/a"]
    with comparison.two_sided_csv.open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["measure"] for row in table] == list(rows)
    assert table[0]["frontier_n"] == "0" and table[0]["frontier_mean"] == "nan"
    assert comparison.paired == ()  # one model: nothing to pair, the table has its header only
    assert len(comparison.paired_markdown.read_text().splitlines()) == 2


def paired_records(model, sizes, frontiers=None, *, images=None, **fields) -> list[AnalysisRecord]:
    """One record per image; the size is ``w . eps`` of an epsilon vector on one ring."""
    frontiers = frontiers or [None] * len(sizes)
    return [analysis(model=model, image_index=index, epsilon=[size / 2], weights=[2.0], size=size,
                     **({} if upper is None else {"frontier": {"ray_scale": None, "rings": [upper / 2]},
                                                  "frontier_size": upper}), **fields)
            for index, size, upper in zip(images or range(len(sizes)), sizes, frontiers, strict=True)]


def test_paired_comparison_counts_and_sign_tests():
    a = paired_records("a", [1.0] * 5, [1.4] * 5)
    b = paired_records("b", [0.5] * 5, [0.8] * 5)  # a's certified above b's frontier everywhere
    c = paired_records("c", [0.5, 0.5, 0.5, 0.5, 1.0, 0.1], [1.5, 1.5, 0.9, 1.0, 1.2, 0.2],
                       images=[0, 1, 2, 3, 4, 9])  # image 9: a has none; image 4: a tie
    rows = {(row.model_a, row.model_b): row for row in paired_comparison(a + b + c)}
    assert list(rows) == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    ab = rows["a", "b"]
    assert (ab.pairs, ab.certified_wins, ab.certified_ties, ab.certified_losses) == (5, 5, 0, 0)
    assert (ab.frontier_pairs, ab.frontier_wins, ab.frontier_losses) == (5, 5, 0)
    assert ab.certified_p == ab.frontier_p == pytest.approx(0.5 ** 5)
    assert ab.conclusion == "a > b on both sides"
    assert (ab.attacked_pairs, ab.attacked_wins, ab.attacked_losses) == (5, 5, 0)  # 1.4 > 0.8
    assert ab.attacked_p == pytest.approx(0.5 ** 5)
    ac = rows["a", "c"]  # image 9 is not common; image 4 ties on the certified side
    assert (ac.pairs, ac.certified_wins, ac.certified_ties, ac.certified_losses) == (5, 4, 1, 0)
    assert ac.certified_p == pytest.approx(0.5 ** 4)
    # a's 1.0 is above c's frontier only on images 2 (0.9); equal on 3; below on 0, 1, 4
    assert (ac.frontier_wins, ac.frontier_ties, ac.frontier_losses) == (1, 1, 3)
    assert ac.frontier_p == pytest.approx(1 - 0.5 ** 4)  # P(at least 1 of 4)
    assert ac.conclusion == "no conclusion"  # 4 of 4 decisive pairs: p 0.0625 is not below 5%
    # frontiers: a's 1.4 against c's 1.5, 1.5, 0.9, 1.0, 1.2 on the common images 0-4
    assert (ac.attacked_pairs, ac.attacked_wins, ac.attacked_ties, ac.attacked_losses) == (5, 3, 0, 2)
    ba = rows["b", "a"]
    assert (ba.certified_wins, ba.certified_losses, ba.frontier_wins) == (0, 5, 0)
    assert ba.certified_p == pytest.approx(1.0) and ba.conclusion == "no conclusion"
    more = paired_records("a", [1.0] * 6, [2.0] * 6) + paired_records("c", [0.5] * 6, [1.5] * 6)
    [row, _] = paired_comparison(more)
    assert (row.model_a, row.certified_wins, row.frontier_wins, row.frontier_losses) == ("a", 6, 0, 6)
    assert row.conclusion == "a > c as certified, not beyond c's frontier"


def test_paired_comparison_without_frontier_and_across_variants():
    a = paired_records("a", [1.0] * 5)
    b = paired_records("b", [0.5] * 5)
    other = paired_records("c", [0.1] * 5, verifier="w")  # another variant: never paired with a, b
    rows = paired_comparison(a + b + other)
    assert [(row.model_a, row.model_b, row.verifier) for row in rows] == [("a", "b", "v"), ("b", "a", "v")]
    assert (rows[0].frontier_pairs, rows[0].frontier_wins) == (0, 0) and math.isnan(rows[0].frontier_p)
    assert rows[0].attacked_pairs == 0 and math.isnan(rows[0].attacked_p)
    assert rows[0].conclusion == "a > b as certified (b has no frontier)"
    k3 = paired_records("b", [0.5] * 5, k=3)  # another k: not the same question, not paired
    assert paired_comparison(a + k3) == []


def test_compare_writes_and_exposes_the_new_tables(tmp_path):
    records = paired_records("a", [1.0] * 5, [1.4] * 5) + paired_records("b", [0.5] * 5, [0.8] * 5)
    comparison = compare_loaded(Loaded.of(records), tmp_path)
    assert [path.name for path in comparison.tables] == [
        "summary.md", "summary.csv", "two_sided.md", "two_sided.csv", "paired.md", "paired.csv",
        "shrink.md", "shrink.csv"]
    assert all(path.is_file() and path.parent == tmp_path for path in comparison.tables)
    assert len(comparison.two_sided) == 2 * 5 and len(comparison.paired) == 2
    lines = comparison.paired_markdown.read_text().splitlines()
    assert lines[0].startswith("| algorithm | shrink | gradient | verifier | A | B | pairs |")
    assert lines[2] == ("| uniform | - | - | v | a | b | 5 | 5 of 5 | 0.0312 | 5 | 5 of 5 | 0.0312 "
                        "| n/a | n/a | a > b on both sides | 5 of 5 | 0.0312 |")  # no ray scales here
    assert comparison.shrink == () and len(comparison.shrink_markdown.read_text().splitlines()) == 2
    with comparison.paired_csv.open() as handle:
        [first, second] = list(csv.DictReader(handle))
    assert (first["model_a"], first["certified_wins"], first["frontier_wins"]) == ("a", "5", "5")
    assert second["conclusion"] == "no conclusion"


def test_estimate_text():
    assert Estimate.of([]).text == "n/a" and Estimate.of([None, 0.5]).text == "0.5"
    assert Estimate.of([1.0, 3.0]).text == "2 [-10.71, 14.71]"


def test_the_ray_frontier_decides_where_the_per_ring_frontier_cannot():
    """B's per-ring frontier (a sum of single-ring limits) is far above its certificate, but
    along B's own ray the attack breaks it at 1.5 x: A's certified size beats that."""
    def records(model, size, upper, scale):
        return [analysis(model=model, image_index=index, epsilon=[size / 4] * 2, weights=[2.0, 2.0],
                         size=size, frontier={"ray_scale": scale, "rings": [upper / 4] * 2},
                         frontier_size=upper) for index in range(6)]
    a, b = records("a", 3.0, 3.9, 1.2), records("b", 1.0, 3.6, 1.5)
    assert b[0].ray_frontier_size == pytest.approx(1.5)  # w . clip(1.5 eps*) = 1.5 x 1.0
    row = next(r for r in paired_comparison(a + b) if (r.model_a, r.model_b) == ("a", "b"))
    assert (row.frontier_wins, row.frontier_losses) == (0, 6)  # 3.0 < 3.6: not beyond w . u
    assert (row.ray_pairs, row.ray_wins, row.ray_losses) == (6, 6, 0)
    assert row.ray_p == pytest.approx(0.5 ** 6)
    assert row.conclusion == "a > b beyond b's ray frontier, not its per-ring one"
    clipped = records("c", 1.0, 2.0, 10.0)[0]  # the ray saturates every ring at 1
    assert clipped.ray_frontier_size == pytest.approx(4.0)
