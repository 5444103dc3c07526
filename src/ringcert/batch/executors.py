"""Run a batch of analyses serially, on local processes or on a Dask cluster; resumable.

Whatever runs the work, the *calling* process writes every result (atomically, one
analysis at a time, as it arrives), so a Ctrl-C or kill loses at most the analyses in
flight and never leaves a half-written file; rerunning the same batch skips finished
work (see ``ringcert.batch.store``).

Local processes use ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start
method (fork is unsafe with torch's thread pools); each worker limits torch to
``max(1, cores // workers)`` threads so workers do not oversubscribe the CPU. Dask uses a
``dask.distributed.Client`` on the given scheduler address; results stream back with
``as_completed``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from uuid import uuid4

from ringcert.batch.store import ResultStore
from ringcert.batch.tasks import AnalysisTask, TaskFunction
from ringcert.errors import RingcertError


@dataclass(frozen=True)
class TaskFailure:
    """A task whose function raised: ``message`` is one line, ``detail`` the traceback."""

    task: AnalysisTask
    message: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class BatchSummary:
    """What one ``run_batch`` call did."""

    total: int  # tasks asked for
    skipped: int  # already done on disk (same task key)
    redone: int  # found on disk but run again: unreadable, stale (edited input files) or forced
    completed: int  # run and written now
    failures: tuple[TaskFailure, ...]
    written: tuple[Path, ...]  # JSON paths written now, in completion order
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return not self.failures


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker process: the cores shared out, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def _describe(error: BaseException) -> tuple[str, str]:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    message = first if isinstance(error, RingcertError) else f"{type(error).__name__}: {first}"
    return message, "".join(traceback.format_exception(error))


# --- local worker processes ------------------------------------------------------------------

_BROKEN = "a worker process died (out of memory?); finished analyses are saved, rerun to resume"
_THREADS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _watch_parent(parent: int) -> None:
    """Exit this worker once its parent is gone (a killed batch must not leave orphans)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(threads: int, parent: int) -> None:
    import signal

    # Ctrl-C reaches the whole process group; only the parent handles it (and ends us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in _THREADS_ENV:
        os.environ[name] = str(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _call_limited(fn: TaskFunction, task: AnalysisTask, threads: int) -> Any:
    """Run ``fn(task)`` with torch limited to ``threads`` (torch is imported by ``fn``'s
    module, if at all, when ``fn`` is unpickled, so this costs nothing for other work)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return fn(task)


def _terminate(executor: ProcessPoolExecutor) -> None:
    processes = list(getattr(executor, "_processes", {}).values())  # no public API in 3.11
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def _run_local(fn: TaskFunction, tasks: Sequence[AnalysisTask], workers: int
               ) -> Iterator[tuple[AnalysisTask, Any, BaseException | None]]:
    threads = worker_threads(workers)
    executor = ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                                   mp_context=get_context("spawn"), initializer=_init_worker,
                                   initargs=(threads, os.getpid()))
    finished = False
    try:
        # Keep at most 2 tasks per worker queued, so an interrupt cancels cheaply.
        queue = iter(tasks)
        running: dict[Future[Any], AnalysisTask] = {}

        def submit_more() -> None:
            while len(running) < 2 * workers:
                task = next(queue, None)
                if task is None:
                    return
                try:
                    running[executor.submit(_call_limited, fn, task, threads)] = task
                except BrokenProcessPool:
                    raise RingcertError(_BROKEN) from None

        submit_more()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task = running.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):
                    raise RingcertError(_BROKEN) from None
                yield task, None if error else future.result(), error
            submit_more()
        finished = True
    finally:
        if finished:
            executor.shutdown(wait=True)
        else:
            _terminate(executor)


# --- Dask ------------------------------------------------------------------------------------

def _limit_dask_worker(parent: int, dask_worker: Any = None) -> int:
    """On each Dask worker process (not an in-process one), share the cores among its
    threads the way local workers do."""
    if os.getpid() != parent and dask_worker is not None:
        import torch

        torch.set_num_threads(worker_threads(int(dask_worker.state.nthreads)))
    return os.getpid()


def _run_dask(fn: TaskFunction, tasks: Sequence[AnalysisTask], address: str, timeout: float
              ) -> Iterator[tuple[AnalysisTask, Any, BaseException | None]]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise RingcertError("--dask needs dask.distributed: pip install 'dask[distributed]'"
                            ) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise RingcertError(f"cannot connect to the Dask scheduler at {address}: {error}"
                            ) from None
    futures: dict[Any, AnalysisTask] = {}
    try:
        client.run(_limit_dask_worker, os.getpid())
        for task in tasks:
            key = f"ringcert-{task.label.replace('/', '-')}-{uuid4().hex}"
            futures[client.submit(fn, task, key=key, pure=False)] = task
        for future in as_completed(list(futures), loop=client.loop):
            task = futures.pop(future)
            try:
                yield task, future.result(), None
            except Exception as error:
                yield task, None, error
            future.release()
    finally:
        if futures:
            client.cancel(list(futures))
        client.close()


# --- the runner ------------------------------------------------------------------------------

def _progress_bar(total: int, skipped: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="analysis", dynamic_ncols=True,
                desc=f"analyses ({skipped} already done)" if skipped else "analyses",
                file=sys.stderr)


def run_batch(tasks: Iterable[AnalysisTask], fn: TaskFunction, out: str | os.PathLike[str], *,
              workers: int = 1, dask: str | None = None, dask_timeout: float = 20.0,
              progress: bool = True, resume: bool = True) -> BatchSummary:
    """Run ``fn`` on every task not already done under ``out`` and store each result.

    ``fn`` is the per-image work, a picklable module-level callable ``task -> record``
    (a JSON-able dict, or a ``TaskOutput`` with attachments such as the heatmap PNG).
    ``workers > 1`` runs it in that many local processes; ``dask`` (a scheduler address
    such as ``tcp://host:8786``) runs it on a Dask cluster instead (``dask_timeout``: seconds
    to wait for the connection). A task that raises is
    reported in the summary's ``failures`` and retried on the next run; the others go on.
    ``resume=False`` reruns finished work too and replaces results of other settings,
    which otherwise stop the batch before any work with a one-line ``RingcertError``
    naming the differing settings (results from edited input files are redone). One run
    at a time: a second ``run_batch`` on a folder a live run holds stops at once with a
    one-line error. Ctrl-C stops at once (results already written stay; the analyses in
    flight are lost) and re-raises ``KeyboardInterrupt``.
    """
    if workers < 1:
        raise RingcertError(f"--workers must be at least 1, got {workers}")
    if dask is not None and workers != 1:
        raise RingcertError("use either --workers or --dask, not both")
    start = time.perf_counter()
    unique = list(dict.fromkeys(tasks))
    labels = [task.label for task in unique]
    if len(set(labels)) != len(labels):
        clash = next(label for label in labels if labels.count(label) > 1)
        raise RingcertError(f"two different tasks would write the same result file {clash}.json; "
                            "write runs with different settings to different folders")
    store = ResultStore(out)
    if store.root.exists() and not store.root.is_dir():
        raise RingcertError(f"results folder {store.root} is a file")
    with store.lock():
        if resume:
            _refuse_conflicts(store, unique)
        return _run_pending(fn, unique, store, start, workers=workers, dask=dask,
                            dask_timeout=dask_timeout, progress=progress, resume=resume)


def _refuse_conflicts(store: ResultStore, tasks: Sequence[AnalysisTask]) -> None:
    conflicts = store.conflicts(tasks)
    if not conflicts:
        return
    changed: dict[str, tuple[Any, Any]] = {}
    for _, changes in conflicts:
        for name, values in changes.items():
            changed.setdefault(name, values)
    described = ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items())
    raise RingcertError(f"{store.root} holds {len(conflicts)} results of other settings "
                        f"({described}); use another --out, or --force to replace them")


def _run_pending(fn: TaskFunction, unique: list[AnalysisTask], store: ResultStore, start: float, *,
                 workers: int, dask: str | None, dask_timeout: float, progress: bool,
                 resume: bool) -> BatchSummary:
    store.remove_temp_files()
    pending = [task for task in unique if not (resume and store.is_done(task))]
    skipped = len(unique) - len(pending)
    redone = sum(1 for task in pending if store.json_path(task).is_file())
    failures: list[TaskFailure] = []
    written: list[Path] = []
    bar = _progress_bar(len(pending), skipped, progress)
    try:
        if not pending:
            stream: Iterator[tuple[AnalysisTask, Any, BaseException | None]] = iter(())
        elif dask is not None:
            stream = _run_dask(fn, pending, dask, dask_timeout)
        elif workers > 1 and len(pending) > 1:
            stream = _run_local(fn, pending, workers)
        else:
            stream = _run_serial(fn, pending)
        try:
            for task, output, error in stream:
                if error is None:
                    try:
                        written.append(store.write(task, output))
                    except (TypeError, ValueError) as bad:
                        error = bad
                if error is not None:
                    message, detail = _describe(error)
                    failures.append(TaskFailure(task, message, detail))
                bar.update(1)
                bar.set_postfix(failed=len(failures), refresh=False)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    finally:
        bar.close()
    return BatchSummary(total=len(unique), skipped=skipped, redone=redone, completed=len(written),
                        failures=tuple(failures), written=tuple(written),
                        elapsed_s=time.perf_counter() - start)


def _run_serial(fn: TaskFunction, tasks: Sequence[AnalysisTask]
                ) -> Iterator[tuple[AnalysisTask, Any, BaseException | None]]:
    for task in tasks:
        try:
            output = fn(task)
        except Exception as error:
            yield task, None, error
        else:
            yield task, output, None
