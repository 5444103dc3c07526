"""records: the typed reader of stored analyses, and the folder walk that says what it skipped."""

import json
import re
from pathlib import Path

import pytest

from ringcert.batch import AnalysisTask, ResultStore
from ringcert.errors import RingcertError
from ringcert.report.records import AnalysisRecord, Loaded, Variant, read_analyses
from ringcert.vocabulary import Algorithm, GradientSource, MaximalityStatus, Shrink, Side
from tests.batch.fake_task import fake_record

SKIP = {"model": "none", "image_index": 4, "target": "left",
        "skipped": "target 7 is not in the model's top-2"}


def task(index: int, **settings) -> AnalysisTask:
    return AnalysisTask(model="none", image_index=index, target="right", settings=settings)


def analysis_json(frontier=None) -> dict:
    """What ``AnalysisResult.to_json`` writes for a guided search, through real JSON (with
    ``frontier``, a ``Frontier``, as the attack frontier)."""
    from ringcert.analysis import AnalysisResult
    from ringcert.search.guided import GuidedSettings
    from ringcert.search.result import SearchResult
    from ringcert.search.runner import settings_json

    statuses = (MaximalityStatus.REFUTED, MaximalityStatus.UNPROVEN, MaximalityStatus.SATURATED)
    search = SearchResult(
        algorithm=Algorithm.GUIDED,
        settings=settings_json(GuidedSettings(shrink=Shrink.SENSITIVITY, gradient=GradientSource.BOUND)),
        epsilon=(0.25, 0.125, 1.0), size=1.375, maximality=statuses,
        queries={"attack": 9, "crown": 31, "total": 40, "cached": 2}, search_queries=30,
        maximality_queries=10, time_s=3.5, maximality_time_s=1.0, budget_exhausted=False,
        history=((4, 0.5), (40, 1.375)))
    result = AnalysisResult(model="pgd", image_index=12, target=Side.LEFT, target_class=3,
                            perturbed_class=8, k=2, ring_sizes=(40, 60, 80),
                            weights=(1.0, 0.5, 0.25), verifier="cascade", search=search,
                            version="test", frontier=frontier)
    return json.loads(json.dumps(result.to_json()))


def frontier(*uppers, ray_scale=1.5):
    from ringcert.search.frontier import Frontier, RingFrontier

    return Frontier(ray_scale=ray_scale, ray_margin=-0.5, ray_witness=None, time_s=1.0, rings=tuple(
        RingFrontier(upper=upper, margin=None if upper is None else -0.1, witness=None) for upper in uppers))


def test_an_analysis_result_round_trips():
    raw = analysis_json()
    record = AnalysisRecord.from_json(raw)
    assert record == AnalysisRecord(
        model="pgd", image_index=12, target=Side.LEFT, target_class=3, perturbed_class=8, k=2,
        epsilon=(0.25, 0.125, 1.0), weights=(1.0, 0.5, 0.25), ring_sizes=(40, 60, 80),
        size=1.375, maximality=(MaximalityStatus.REFUTED, MaximalityStatus.UNPROVEN,
                                MaximalityStatus.SATURATED),
        queries=40, time_s=3.5, algorithm=Algorithm.GUIDED, shrink=Shrink.SENSITIVITY,
        gradient=GradientSource.BOUND, verifier="cascade", skipped=None)
    assert record.raw == raw and record.raw["history"] == [[4, 0.5], [40, 1.375]]
    assert record.label == "pgd #12 left"
    assert Variant.of(record).label == "guided/sensitivity/bound"


def test_a_stored_record_is_read_back_with_its_path(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write(task(0), fake_record(task(0, algorithm="naive")))
    loaded = read_analyses(tmp_path)
    assert loaded.problems == () and loaded.roots == (tmp_path,)
    [(found, record)] = loaded.records
    assert found == path and record == AnalysisRecord.from_json(json.loads(path.read_text()))
    assert record.algorithm is Algorithm.NAIVE and record.shrink is None and record.gradient is None
    assert record.raw["task_key"] == task(0).key


def test_a_skip_record_parses_with_skipped_set():
    record = AnalysisRecord.from_json(SKIP)
    assert record.skipped == SKIP["skipped"] and record.target is Side.LEFT
    assert record.image_index == 4 and record.epsilon == () and record.maximality == ()
    assert record.size is None and record.algorithm is None and record.verifier is None
    loaded = Loaded.of([record])
    assert loaded.analyses == ()
    assert loaded.skipped == ((None, "analysis none #4 left skipped: target 7 is not in the "
                                     "model's top-2"),)
    with pytest.raises(ValueError, match="skipped"):
        Variant.of(record)


@pytest.mark.parametrize("key", ["model", "image_index", "target", "target_class",
                                 "perturbed_class", "k", "epsilon", "weights", "ring_sizes",
                                 "size", "maximality", "queries", "time_s", "algorithm",
                                 "verifier"])
def test_a_missing_key_is_named(key):
    raw = analysis_json()
    del raw[key]
    with pytest.raises(ValueError, match=f"^missing key '{key}'$"):
        AnalysisRecord.from_json(raw)


@pytest.mark.parametrize(("change", "named"), [
    ({"maximality": ["refuted", "maybe", "saturated"]}, "'maximality[1]'"),
    ({"target": "up"}, "'target'"),
    ({"k": True}, "'k'"),
    ({"size": "big"}, "'size'"),
    ({"epsilon": [0.1, None, 0.2]}, "'epsilon[1]'"),
    ({"queries": {"crown": 3}}, "'queries.total'"),
    ({"queries": 7}, "'queries'"),
    ({"algorithm": {"name": "guided", "shrink": "random"}}, "'algorithm.shrink'"),
    ({"algorithm": {"name": "guided", "gradient": "sideways"}}, "'algorithm.gradient'"),
    ({"algorithm": {"shrink": "fixed"}}, "'algorithm.name'"),
    ({"weights": [1.0, 1.0]}, "'weights'"),  # one weight short of the three rings
    ({"ring_sizes": [40, 60, 80, 90]}, "'ring_sizes'"),
    ({"frontier": [0.5, 0.2, None]}, "'frontier'"),
    ({"frontier": {"ray_scale": 2.0}}, "'frontier.rings'"),
    ({"frontier": {"ray_scale": 2.0, "rings": [0.5, None]}}, "'frontier.rings'"),  # two of three
    ({"frontier": {"ray_scale": 2.0, "rings": [0.5, 1.5, None]}}, "'frontier.rings[1]'"),
    ({"frontier": {"ray_scale": 2.0, "rings": [0.5, "x", None]}}, "'frontier.rings[1]'"),
    ({"frontier": {"ray_scale": "far", "rings": [0.5, 0.2, None]}}, "'frontier.ray_scale'"),
    ({"target_rings": [3, 1]}, "'target_rings'"),  # only rings 0-2 exist
    ({"target_rings": [-1]}, "'target_rings'"),
    ({"target_rings": [1, "2"]}, "'target_rings[1]'"),
    ({"target_rings": 2}, "'target_rings'"),
    ({"extension": 1.25}, "'extension'"),
    ({"extension": {"rungs": []}}, "'extension.scale'"),
    ({"extension": {"scale": "big"}}, "'extension.scale'"),
])
def test_an_invalid_value_is_named(change, named):
    with pytest.raises(ValueError, match=f"^(invalid|missing key) {re.escape(named)}"):
        AnalysisRecord.from_json({**analysis_json(), **change})


def test_a_non_object_is_not_a_record():
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        AnalysisRecord.from_json([1, 2])


def test_every_file_left_out_is_a_problem_with_its_reason(tmp_path):
    store = ResultStore(tmp_path / "run")
    good = store.write(task(0), fake_record(task(0)))
    skip = store.write(task(1), SKIP)
    (tmp_path / "copy").mkdir()
    duplicate = tmp_path / "copy" / "0-right.json"
    duplicate.write_text(good.read_text())
    other = tmp_path / "run" / "settings.json"
    other.write_text(json.dumps({"delta": 0.01}))
    truncated = tmp_path / "run" / "none" / "2-right.json"
    truncated.write_text('{"model": "none", ')  # cut short, as by a partial copy
    binary = tmp_path / "run" / "none" / "3-right.json"
    binary.write_bytes(b"\xff\xfe\x00")
    (tmp_path / "run" / "none" / ".4-right.json.x.tmp").write_text("{")  # a temp file: ignored
    loaded = read_analyses([tmp_path / "run", tmp_path / "copy"])
    assert [path for path, _ in loaded.records] == [good, skip]
    assert [path for path, _ in loaded.analyses] == [good]
    reasons = dict(loaded.problems)
    assert list(reasons) == [truncated, binary, other, duplicate]
    assert reasons[truncated] == ("unreadable JSON: Expecting property name enclosed in double "
                                  "quotes at line 1 column 19")
    assert reasons[binary] == "unreadable JSON: not UTF-8 text"
    assert reasons[other] == "not an analysis record: missing key 'model'"
    assert reasons[duplicate] == f"duplicate of {good} (same task_key)"
    assert [path for path, _ in loaded.skipped] == [truncated, binary, other, duplicate, skip]


def test_an_unreadable_file_is_a_problem(tmp_path, monkeypatch):
    """A file the OS refuses to read (faked: permissions do not stop root)."""
    (tmp_path / "none" / "0-right.json").mkdir(parents=True)  # named like a record, not a file
    unreadable = tmp_path / "none" / "1-right.json"
    unreadable.write_text(json.dumps(fake_record(task(1))))
    read_text = Path.read_text

    def refuse(path, *args, **kwargs):
        if path == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    loaded = read_analyses(tmp_path)
    assert loaded.records == ()
    assert loaded.problems == ((unreadable, "unreadable: Permission denied"),)


def test_files_under_exclude_are_not_looked_at(tmp_path):
    path = ResultStore(tmp_path).write(task(0), fake_record(task(0)))
    report = tmp_path / "a-report" / "analyses"
    report.mkdir(parents=True)
    (report / "0-right.json").write_text(path.read_text())  # sorts before the original
    loaded = read_analyses(tmp_path, exclude=tmp_path / "a-report")
    assert [found for found, _ in loaded.records] == [path] and loaded.problems == ()


def test_no_analysis_is_an_error_naming_what_was_rejected(tmp_path):
    with pytest.raises(RingcertError, match="does not exist"):
        read_analyses(tmp_path / "missing")
    with pytest.raises(RingcertError, match=r"^no analysis results in .*: it holds no \*\.json files$"):
        read_analyses(tmp_path).require_analyses()
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"name": name}))
    ResultStore(tmp_path).write(task(0), SKIP)
    with pytest.raises(RingcertError) as caught:
        read_analyses(tmp_path).require_analyses()
    message = str(caught.value)
    assert message.startswith(f"no analysis results in {tmp_path}: looked at 5 *.json files, "
                              "none is an analysis: ")
    assert f"{tmp_path / 'a.json'}: not an analysis record: missing key 'model'" in message
    assert str(tmp_path / "c.json") in message and str(tmp_path / "d.json") not in message
    assert message.endswith("; and 2 more")


def test_variant_columns_show_missing_settings_as_a_dash():
    naive = AnalysisRecord.from_json({**analysis_json(), "algorithm": {"name": "naive"}})
    assert Variant.of(naive).columns == ("naive", "-", "-", "cascade")
    assert Variant.of(naive).label == "naive"
    guided = AnalysisRecord.from_json({**analysis_json(), "algorithm": "guided", "verifier": "ibp"})
    assert Variant.of(guided) == Variant(algorithm=Algorithm.GUIDED, shrink=None, gradient=None,
                                         verifier="ibp")


# --- summaries beyond w . eps ----------------------------------------------------------------
# analysis_json: eps* (0.25, 0.125, 1.0), ring sizes (40, 60, 80) = 180 pixels, weights
# (1, 0.5, 0.25); the frontier below breaks ring 0 at 0.5 and neither ring 1 nor ring 2.

def test_the_frontier_is_read_from_what_analyze_writes():
    record = AnalysisRecord.from_json(analysis_json(frontier(0.5, None, None, ray_scale=2.5)))
    assert record.frontier_upper == (0.5, None, None)
    assert record.frontier_vector == (0.5, 1.0, 1.0)
    assert record.ray_scale == 2.5
    assert record.frontier_size == pytest.approx(1.0 * 0.5 + 0.5 * 1.0 + 0.25 * 1.0)
    assert record.gap == pytest.approx(1.25 - 1.375)


def test_summaries_certified_and_frontier_by_hand():
    raw = {**analysis_json(frontier(0.5, None, None)), "target_rings": [2, 1, 2]}
    record = AnalysisRecord.from_json(raw)
    assert record.target_rings == (1, 2)  # sorted, each once
    # per pixel, area-weighted: (40 * 0.25 + 60 * 0.125 + 80 * 1) / 180
    assert record.mean_pixel_eps == pytest.approx(97.5 / 180)
    # unbreakable rings count as 1: (40 * 0.5 + 60 * 1 + 80 * 1) / 180
    assert record.frontier_mean_pixel_eps == pytest.approx(160 / 180)
    assert record.ring0_eps == 0.25 and record.frontier_ring0_eps == 0.5
    # the target's rings 1 and 2, each once, unweighted
    assert record.target_ring_eps == pytest.approx((0.125 + 1.0) / 2)
    assert record.frontier_target_ring_eps == pytest.approx(1.0)
    broken = AnalysisRecord.from_json({**raw, "frontier": {"ray_scale": None, "rings": [0.3, 0.2, None]}})
    assert broken.frontier_ring0_eps == 0.3 and broken.ray_scale is None
    assert broken.frontier_target_ring_eps == pytest.approx((0.2 + 1.0) / 2)
    assert broken.frontier_mean_pixel_eps == pytest.approx((40 * 0.3 + 60 * 0.2 + 80) / 180)


@pytest.mark.parametrize("change", [{"frontier": None, "frontier_size": None}, "old"])
def test_records_without_frontier_or_target_rings_summarize_the_certified_side(change):
    """``--no-frontier`` writes null; a record from before the frontier has neither key."""
    raw = analysis_json()
    if change == "old":
        del raw["frontier"], raw["frontier_size"]
    else:
        raw.update(change)
    record = AnalysisRecord.from_json(raw)
    assert record.mean_pixel_eps == pytest.approx(97.5 / 180) and record.ring0_eps == 0.25
    assert record.target_rings is None and record.target_ring_eps is None
    assert (record.frontier_upper, record.frontier_vector, record.frontier_size, record.ray_scale,
            record.gap) == (None,) * 5
    assert (record.frontier_mean_pixel_eps, record.frontier_ring0_eps,
            record.frontier_target_ring_eps) == (None,) * 3


def test_a_skip_record_has_no_summaries():
    record = AnalysisRecord.from_json(SKIP)
    assert (record.mean_pixel_eps, record.ring0_eps, record.target_ring_eps,
            record.frontier_mean_pixel_eps) == (None,) * 4
