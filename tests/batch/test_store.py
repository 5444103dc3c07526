import json

import pytest

from ringcert.batch import AnalysisTask, ResultStore, TaskOutput, write_atomic
from ringcert.errors import RingcertError
from ringcert.report.records import read_analyses
from tests.batch.fake_task import fake_record


def task(index=0, **settings):
    return AnalysisTask(model="none", image_index=index, target="left", settings=settings)


def test_layout_and_task_key(tmp_path):
    store = ResultStore(tmp_path)
    t = task(2)
    path = store.write(t, TaskOutput(record=fake_record(t), attachments={".png": b"\x89PNG"}))
    assert path == tmp_path / "none" / "2-left.json"
    assert (tmp_path / "none" / "2-left.png").read_bytes() == b"\x89PNG"
    record = json.loads(path.read_text())
    assert record["task_key"] == t.key and record["task"]["image_index"] == 2
    assert store.is_done(t)
    assert not store.is_done(task(2, delta=0.5))  # same file, other settings: not done
    assert not store.is_done(task(3))


def test_truncated_or_foreign_json_is_not_done(tmp_path):
    store = ResultStore(tmp_path)
    t = task(1)
    store.write(t, fake_record(t))
    text = store.json_path(t).read_text()
    store.json_path(t).write_text(text[: len(text) // 2])
    assert not store.is_done(t)
    store.json_path(t).write_text("[1, 2]")
    assert not store.is_done(t)


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    store = ResultStore(tmp_path)
    t = task(0)
    store.write(t, fake_record(t))
    before = store.json_path(t).read_text()
    with pytest.raises(ValueError):
        store.write(t, {**fake_record(t), "size": float("nan")})  # not valid JSON
    with pytest.raises(TypeError):
        write_atomic(store.json_path(t), "not bytes")  # type: ignore[arg-type]
    assert store.json_path(t).read_text() == before
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["0-left.json"]


def test_temp_files_are_removed_and_never_loaded(tmp_path):
    store = ResultStore(tmp_path)
    t = task(0)
    store.write(t, fake_record(t))
    stray = tmp_path / "none" / ".1-left.json.abc.tmp"
    stray.write_text(json.dumps(fake_record(task(1))))
    assert [path.name for path, _ in read_analyses(tmp_path).records] == ["0-left.json"]
    assert store.remove_temp_files() == 1 and not stray.exists()


def test_reading_stored_results_errors_and_duplicates(tmp_path):
    with pytest.raises(RingcertError, match="does not exist"):
        read_analyses(tmp_path / "missing")
    with pytest.raises(RingcertError, match="no analysis results"):
        read_analyses(tmp_path).require_analyses()
    t = task(0)
    ResultStore(tmp_path / "a").write(t, fake_record(t))
    ResultStore(tmp_path / "b").write(t, fake_record(t))  # a copy of the same analysis
    assert len(read_analyses([tmp_path / "a", tmp_path / "b"]).records) == 1
    assert len(read_analyses(tmp_path).records) == 1
