"""Which digit of a DOUBLE-MNIST image is the target (the other one is perturbed).

``RIGHT`` (the default everywhere) means the target is the right digit and the rings
grow from the left digit. Kept in its own torch-free module so batch workers and task
descriptions can use it cheaply.
"""

from __future__ import annotations

from enum import Enum


class Side(Enum):
    LEFT = "left"
    RIGHT = "right"

    @property
    def column(self) -> int:
        """Column of this digit in the (left, right) label and mask arrays."""
        return 0 if self is Side.LEFT else 1

    @property
    def other(self) -> Side:
        return Side.RIGHT if self is Side.LEFT else Side.LEFT
