"""A branch's split constraint and the rule that picks the next one (read by branching and
by beta-CROWN's split multipliers, so it sits below both)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SplitRule(Enum):
    BABSR = "babsr"
    WIDEST = "widest"


@dataclass(frozen=True)
class Split:
    """The input of network layer ``layer`` (a ReLU's pre-activation, or a max-pool's input
    when no ReLU feeds it) has element ``neuron`` (flat index) >= ``threshold`` when
    ``active``, else <= ``threshold``."""

    layer: int
    neuron: int
    active: bool
    threshold: float = 0.0
