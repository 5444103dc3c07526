"""Shared pieces of the benchmark scripts: which test images to use, and table printing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ringcert.errors import RingcertError
from ringcert.problem import Problem
from ringcert.samples import sample_problem, test_sample
from ringcert.vocabulary import Side


def problems(network, *, count: int, side: Side = Side.RIGHT, start: int = 0
             ) -> Iterator[tuple[int, Problem]]:
    """The first ``count`` test images (from ``start``) whose target is in the top-2."""
    index, found = start, 0
    while found < count:
        try:
            problem = sample_problem(network, test_sample(index), target=side)
        except RingcertError:  # target not in the top-k: the precondition fails, skip
            index += 1
            continue
        yield index, problem
        found += 1
        index += 1


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table with numbers formatted compactly."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
