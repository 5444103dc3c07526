"""Tables as the reports show them: cells as text, then Markdown or CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def number(value: Any) -> str:
    """A table cell: floats to four significant digits (``n/a`` for nan), the rest as text."""
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def p_text(value: float) -> str:
    """A p-value cell: three significant digits, ``n/a`` for nan."""
    return "n/a" if math.isnan(value) else f"{value:.3g}"


@dataclass(frozen=True)
class Shown:
    """A table as shown (Markdown, HTML): headers, which columns are numbers (right-aligned),
    and every cell as text."""

    headers: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: tuple[tuple[str, ...], ...]


def markdown(shown: Shown) -> str:
    lines = ["| " + " | ".join(shown.headers) + " |",
             "|" + "|".join("---:" if numeric else "---" for numeric in shown.numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in shown.rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """``rows`` as CSV with the columns ``names``, in that order."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(names), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
