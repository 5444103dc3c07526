"""Resumable batches: kill and rerun, changed settings, local processes and Dask agree."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ringcert.batch import ResultStore, run_batch, worker_threads
from ringcert.errors import RingcertError
from tests.batch.fake_task import TIMING_FIELDS, fake_analysis, fake_analysis_with_png, tasks

ROOT = Path(__file__).resolve().parents[2]


def all_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def records_by_label(folder: Path) -> dict[str, dict]:
    """Every file under ``folder`` must be a complete JSON record: no temp, no truncation."""
    found = {}
    for path in all_files(folder):
        assert path.suffix == ".json" and not path.name.startswith("."), path
        record = json.loads(path.read_text())
        found[f"{path.parent.name}/{path.stem}"] = record
    return found


def start_batch(out: Path, count: int, workers: int, settings: dict) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.batch.fake_task", str(out), str(count), str(workers),
         json.dumps(settings)], cwd=ROOT, env=env, start_new_session=True, stderr=subprocess.PIPE)


def wait_for_results(out: Path, process: subprocess.Popen, at_least: int) -> None:
    deadline = time.monotonic() + 40
    while len(list(out.glob("*/*.json"))) < at_least:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the batch produced no results"
        time.sleep(0.02)


@pytest.mark.parametrize(("workers", "how"), [(1, "kill"), (2, "kill"), (2, "ctrl-c")])
def test_killed_batch_resumes_without_duplicates_or_truncation(tmp_path, workers, how):
    count, out, release = 10, tmp_path / "results", tmp_path / "release"
    # images 5-9 wait for the release file: the batch cannot finish before the interrupt,
    # so an interrupt that is lost shows as a hang here, not as a clean exit 0
    settings = {"sleep": 0.1, "hold": str(release), "hold_from": 5}
    batch = tasks(count, **settings)
    process = start_batch(out, count, workers, settings)
    wait_for_results(out, process, at_least=5)
    assert process.poll() is None
    children = psutil.Process(process.pid).children(recursive=True)
    if how == "kill":  # only the parent: its workers must notice and exit
        os.kill(process.pid, signal.SIGKILL)
    else:  # a terminal's Ctrl-C reaches the whole process group
        os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=10) != 0
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"orphaned workers {alive}"
    assert (len(children) == 0) if workers == 1 else (len(children) >= workers)

    partial = [p for p in out.glob("*/*.json") if not p.name.startswith(".")]
    assert 5 <= len(partial) < 2 * count, "kill the batch mid-run"
    for path in partial:  # every file present after the kill is complete and valid
        assert json.loads(path.read_text())["task_key"]
    # and a stray temp file from an interrupted write is cleaned up, never counted
    (out / "none" / ".0-left.json.zz.tmp").write_text('{"epsilon": [0.1], "mod')
    release.touch()

    summary = run_batch(batch, fake_analysis, out, progress=False)
    assert summary.ok and summary.skipped == len(partial)
    assert summary.completed == 2 * count - len(partial)
    records = records_by_label(out)
    assert sorted(records) == sorted(task.label for task in batch)
    for task in batch:
        assert records[task.label]["task_key"] == task.key
        assert records[task.label]["image_index"] == task.image_index

    again = run_batch(batch, fake_analysis, out, progress=False)
    assert (again.skipped, again.completed) == (2 * count, 0)


def test_changed_setting_and_corrupt_file_rerun(tmp_path):
    first = tasks(3, sleep=0.0, delta=0.01)
    assert run_batch(first, fake_analysis, tmp_path, progress=False).completed == 6
    victim = ResultStore(tmp_path).json_path(first[2])
    victim.write_text(victim.read_text()[:40])  # a truncated file is not done work
    summary = run_batch(first, fake_analysis, tmp_path, progress=False)
    assert (summary.skipped, summary.completed) == (5, 1)
    assert summary.written == (victim,)

    changed = tasks(3, sleep=0.0, delta=0.02)  # other settings: refused before any work
    with pytest.raises(RingcertError, match=r"holds 6 results of other settings \(delta 0.01 -> 0.02\)"):
        run_batch(changed, fake_analysis, tmp_path, progress=False)
    assert {r["task_key"] for r in records_by_label(tmp_path).values()} == {t.key for t in first}
    summary = run_batch(changed, fake_analysis, tmp_path, progress=False, resume=False)
    assert (summary.completed, summary.redone) == (6, 6)
    assert {r["task_key"] for r in records_by_label(tmp_path).values()} == {t.key for t in changed}


def test_results_from_an_edited_input_file_are_redone_not_refused(tmp_path):
    first = tasks(2, sleep=0.0, delta=0.01, weights_sha256="aa")
    assert run_batch(first, fake_analysis, tmp_path, progress=False).completed == 4
    edited = tasks(2, sleep=0.0, delta=0.01, weights_sha256="bb")
    summary = run_batch(edited, fake_analysis, tmp_path, progress=False)
    assert (summary.skipped, summary.completed, summary.redone) == (0, 4, 4)
    assert {r["task_key"] for r in records_by_label(tmp_path).values()} == {t.key for t in edited}


def test_a_live_lock_stops_a_second_run_and_a_stale_one_is_taken_over(tmp_path):
    lock = tmp_path / ".ringcert.lock"
    lock.write_text(f"{socket.gethostname()} {os.getppid()}\n")  # a live process
    with pytest.raises(RingcertError, match="in use by another ringcert run"):
        run_batch(tasks(1, sleep=0.0), fake_analysis, tmp_path, progress=False)
    assert not list(tmp_path.glob("*/*.json"))  # stopped before any work
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{socket.gethostname()} {dead.pid}\n")
    assert run_batch(tasks(1, sleep=0.0), fake_analysis, tmp_path, progress=False).completed == 2
    assert not lock.exists()  # released


def test_two_batches_on_one_folder_write_every_result_once(tmp_path):
    """Two runs started together: one owns the folder, the other stops with a one-line
    error; a rerun then finds every result done, each written once."""
    out = tmp_path / "out"
    runs = [subprocess.Popen([sys.executable, "-m", "tests.batch.fake_task", str(out), "4", "1",
                              json.dumps({"sleep": 0.2})], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    written = 0
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        if run.returncode == 0:
            written += int(stdout.split()[-1])
        else:  # it saw the other's lock
            assert "in use by another ringcert run" in stderr
    assert written == 8  # every result written exactly once
    batch = tasks(4, sleep=0.2)
    again = run_batch(batch, fake_analysis, out, progress=False)
    assert (again.skipped, again.completed) == (8, 0)
    assert len(list(out.glob("*/*.json"))) == 8


def test_a_failing_task_is_reported_and_retried(tmp_path, capsys):
    batch = tasks(3, sleep=0.0, fail_index=1)
    summary = run_batch(batch, fake_analysis, tmp_path, progress=True)
    assert "6/6" in capsys.readouterr().err  # the progress bar counts every task
    assert summary.completed == 4 and len(summary.failures) == 2
    assert {f.task.image_index for f in summary.failures} == {1}
    assert summary.failures[0].message == "ValueError: fake failure on image 1"
    assert "Traceback" in summary.failures[0].detail
    assert run_batch(batch, fake_analysis, tmp_path, progress=False).skipped == 4


def comparable(folder: Path) -> dict[str, dict]:
    return {label: {k: v for k, v in record.items() if k not in TIMING_FIELDS}
            for label, record in records_by_label(folder).items() if label}


def test_serial_local_processes_and_dask_give_identical_records(tmp_path):
    from dask.distributed import LocalCluster

    batch = tasks(4, models=("none", "l0"), sleep=0.05, shrink="sensitivity")
    run_batch(batch, fake_analysis, tmp_path / "serial", progress=False)
    local = run_batch(batch, fake_analysis, tmp_path / "local", workers=2, progress=False)
    assert local.ok and local.completed == len(batch)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        remote = run_batch(batch, fake_analysis, tmp_path / "dask", dask=cluster.scheduler_address,
                           progress=False)
    assert remote.ok and remote.completed == len(batch)
    reference = comparable(tmp_path / "serial")
    assert len(reference) == len(batch)
    assert comparable(tmp_path / "local") == reference
    assert comparable(tmp_path / "dask") == reference
    times = [r["time_s"] for r in records_by_label(tmp_path / "local").values()]
    assert len(set(times)) > 1  # the timing field really differs run to run: excluded on purpose


def test_attachments_are_written_next_to_the_json(tmp_path):
    batch = tasks(2, sleep=0.0)
    summary = run_batch(batch, fake_analysis_with_png, tmp_path, workers=2, progress=False)
    assert summary.completed == 4
    for task in batch:
        png = ResultStore(tmp_path).attachment_path(task, ".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_executor_settings(tmp_path):
    with pytest.raises(RingcertError, match="at least 1"):
        run_batch(tasks(1), fake_analysis, tmp_path, workers=0)
    with pytest.raises(RingcertError, match="either"):
        run_batch(tasks(1), fake_analysis, tmp_path, workers=2, dask="tcp://127.0.0.1:1")
    with pytest.raises(RingcertError, match="Dask scheduler"):
        run_batch(tasks(1), fake_analysis, tmp_path, dask="tcp://127.0.0.1:9", dask_timeout=1,
                  progress=False)
    assert worker_threads(2, cores=2) == 1 and worker_threads(3, cores=2) == 1
    assert worker_threads(2, cores=16) == 8
