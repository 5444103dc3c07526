"""The summary table ``ringcert analyze`` prints at the end of a batch: one line per record."""

from __future__ import annotations

from collections.abc import Sequence

from ringcert.report.records import AnalysisRecord, show
from ringcert.vocabulary import MaximalityStatus

HEADER = (f"{'model':9} {'image':>5} {'target':6} {'t':>2} {'p':>2} {'rings':>5} "
          f"{'size':>8} {'frontier':>8} {'gap':>7} {'ray':>6} {'refuted':>7} {'queries':>7} "
          f"{'time s':>7}  note")


def summary_table(records: Sequence[AnalysisRecord]) -> str:
    """The header, a rule, then one line per record in the given order: target and
    perturbed class, ring count, certified size, frontier size (``w . u``), their gap, the
    ray scale at which the attack first breaks ``s eps*``, how many rings are maximal for
    certain (refuted by a checked counterexample), verifier queries and seconds; the note
    ``extended xS`` where the ray extension proved ``S eps``, ``skipped: why`` for a skip
    record."""
    return "\n".join([HEADER, "-" * len(HEADER), *(_line(record) for record in records)])


def refuted_rings(record: AnalysisRecord) -> int:
    """Rings whose growth by delta a checked counterexample refuted."""
    return sum(1 for status in record.maximality if status is MaximalityStatus.REFUTED)


def _line(record: AnalysisRecord) -> str:
    start = f"{record.model:9} {show(record.image_index):>5} {show(record.target):6}"
    if record.skipped is not None:
        return f"{start}  skipped: {record.skipped}"
    return (f"{start} {show(record.target_class):>2} {record.perturbed_class!s:>2} "
            f"{len(record.ring_sizes):5d} {record.size:8.3f} {_number(record.frontier_size, 8, 3)} "
            f"{_number(record.gap, 7, 3)} {_number(record.ray_scale, 6, 2)} {refuted_rings(record):7d} "
            f"{record.queries:7d} {record.time_s:7.1f}{_extension(record)}")


def _extension(record: AnalysisRecord) -> str:
    """The note of a ray-extended analysis: the scale the envelope proved."""
    return "" if record.extension_scale is None else f"  extended x{record.extension_scale:.2f}"


def _number(value: float | None, width: int, digits: int) -> str:
    """A right-aligned number, or ``-`` where there is none (no frontier, unbroken ray)."""
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"
