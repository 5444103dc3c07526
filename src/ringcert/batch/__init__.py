"""Resumable batches of analyses: tasks, the results folder, serial/local/Dask execution."""

from ringcert.batch.executors import BatchSummary, TaskFailure, run_batch, worker_threads
from ringcert.batch.store import ResultStore, read_record, result_files, write_atomic
from ringcert.batch.tasks import AnalysisTask, TaskFunction, TaskOutput
from ringcert.vocabulary import Side

__all__ = [
    "AnalysisTask",
    "BatchSummary",
    "ResultStore",
    "Side",
    "TaskFailure",
    "TaskFunction",
    "TaskOutput",
    "read_record",
    "result_files",
    "run_batch",
    "worker_threads",
    "write_atomic",
]
