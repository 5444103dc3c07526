"""Resumable batches of analyses: tasks, the results folder, serial/local/Dask execution."""

from ringcert.batch.executors import BatchSummary, TaskFailure, run_batch, worker_threads
from ringcert.batch.store import ResultStore, load_records, read_record, write_atomic
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
    "load_records",
    "read_record",
    "run_batch",
    "worker_threads",
    "write_atomic",
]
