"""The summary table ``ringcert analyze`` prints at the end of a batch: one line per record."""

from __future__ import annotations

from collections.abc import Sequence

from ringcert.report.records import AnalysisRecord, show
from ringcert.vocabulary import MaximalityStatus

HEADER = (f"{'model':8} {'image':>5} {'target':6} {'t':>2} {'p':>2} {'rings':>5} "
          f"{'size':>8} {'refuted':>7} {'queries':>7} {'time s':>7}  note")


def summary_table(records: Sequence[AnalysisRecord]) -> str:
    """The header, a rule, then one line per record in the given order: target and
    perturbed class, ring count, size, how many rings are maximal for certain (refuted by
    a checked counterexample), verifier queries and seconds; ``skipped: why`` for a skip
    record."""
    return "\n".join([HEADER, "-" * len(HEADER), *(_line(record) for record in records)])


def refuted_rings(record: AnalysisRecord) -> int:
    """Rings whose growth by delta a checked counterexample refuted."""
    return sum(1 for status in record.maximality if status is MaximalityStatus.REFUTED)


def _line(record: AnalysisRecord) -> str:
    start = f"{record.model:8} {show(record.image_index):>5} {show(record.target):6}"
    if record.skipped is not None:
        return f"{start}  skipped: {record.skipped}"
    return (f"{start} {record.target_class:2d} {record.perturbed_class!s:>2} "
            f"{len(record.ring_sizes):5d} {record.size:8.3f} {refuted_rings(record):7d} "
            f"{record.queries:7d} {record.time_s:7.1f}")
