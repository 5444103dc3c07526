"""Specification rows for the top-k margin, bounded jointly over candidate k-sets.

``m(z) = F_t(z) - kth max_{c != t} F_c(z) = min over k-sets S of max_{c in S} d_c(z)`` with
``d_c = F_t - F_c``: the property fails only if every class of some set ``S`` reaches
``F_t`` together. For a convex combination ``lambda`` supported inside ``S``,
``sum_c lambda_c d_c <= max_{c in S} d_c``, so the best lower bound of any such
combination bounds the set; the margin is bounded by the minimum over the sets. Rows are
the points of a simplex grid over every subset of at most ``k`` other classes (single
classes are the grid's corners and serve every set that contains them); all of them go
backward as one batch. ``joint=False`` keeps only the single classes, which yields the
k-th smallest of the per-class bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch


def candidate_sets(num_classes: int, target: int, k: int) -> list[tuple[int, ...]]:
    """The k-sets of classes other than ``target``, in lexicographic order (the order of
    ``MarginBound.per_set``)."""
    others = [c for c in range(num_classes) if c != target]
    return list(combinations(others, k))


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """Ordered ways to write ``total`` as ``parts`` positive integers."""
    if parts == 1:
        return [(total,)]
    return [(first, *rest) for first in range(1, total - parts + 2)
            for rest in _compositions(total - first, parts - 1)]


@dataclass(frozen=True, eq=False)
class TopkSpec:
    """``rows`` (R, n): coefficients on the logits; ``member`` (R, sets) bool: row ``r``
    lower-bounds the max of set ``s``; ``sets``: the candidate k-sets."""

    rows: torch.Tensor
    member: torch.Tensor
    sets: list[tuple[int, ...]]

    def per_set(self, row_lower: torch.Tensor) -> torch.Tensor:
        """Best row bound for each set (rows (R,) -> sets (sets,))."""
        masked = torch.where(self.member, row_lower[:, None], torch.full_like(row_lower[:, None],
                                                                               -torch.inf))
        return masked.amax(dim=0)

    def restricted(self, wanted: torch.Tensor) -> TopkSpec:
        """Only the rows serving a set where ``wanted`` (bool, per set) is set; the other
        sets keep no row (their ``per_set`` is -inf)."""
        member = self.member & wanted[None, :]
        keep = member.any(dim=1)
        return TopkSpec(rows=self.rows[keep], member=member[keep], sets=self.sets)


def topk_spec(num_classes: int, target: int, k: int, *, joint: bool = True, grid: int = 4,
              dtype: torch.dtype = torch.float32) -> TopkSpec:
    """Rows for the candidate sets; ``grid`` = resolution of the lambda grid (4 gives
    lambda in {0, 1/4, 1/2, 3/4, 1} for pairs)."""
    sets = candidate_sets(num_classes, target, k)
    others = [c for c in range(num_classes) if c != target]
    supports: list[tuple[tuple[int, ...], tuple[int, ...]]] = [((c,), (grid,)) for c in others]
    if joint:
        for size in range(2, min(k, grid) + 1):
            for subset in combinations(others, size):
                supports.extend((subset, weights) for weights in _compositions(grid, size))
    rows = [[0.0] * num_classes for _ in supports]
    for row, (subset, weights) in zip(rows, supports, strict=True):
        for cls, weight in zip(subset, weights, strict=True):
            row[target] += weight / grid
            row[cls] -= weight / grid
    rows_t = torch.tensor(rows, dtype=dtype)
    in_set = torch.zeros(len(sets), num_classes, dtype=torch.bool)
    in_set[torch.arange(len(sets))[:, None], torch.tensor(sets, dtype=torch.long)] = True
    # a row serves a set when its support (the classes it subtracts) lies inside the set
    member = ~((rows_t < 0)[:, None, :] & ~in_set[None]).any(dim=2)
    return TopkSpec(rows=rows_t, member=member, sets=sets)


def set_rows(sets: list[tuple[int, ...]], weights: torch.Tensor, num_classes: int,
             target: int) -> torch.Tensor:
    """One row per set from per-set convex weights (sets, k): ``sum_c w_c (e_t - e_c)``."""
    index = torch.tensor(sets, dtype=torch.long)
    rows = weights.new_zeros(len(sets), num_classes)
    rows = rows.scatter_add(1, index, -weights)
    rows[:, target] = rows[:, target] + weights.sum(dim=1)
    return rows
