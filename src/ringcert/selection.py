"""Which objects of an image are perturbed and which must stay detected (issue 15).

A ``Selection`` names object indices (left to right, the columns of an image set's labels
and masks): the rings grow from the union of the perturbed objects' masks, and every target
object's class must stay in the top-k. For DOUBLE-MNIST images the two ``Side`` values are
the selections ``perturb 0, target 1`` (``right``) and ``perturb 1, target 0`` (``left``);
they keep their names, so two-object results and stores read as before. Any other selection
is written ``p<i>[+<i>...]-t<j>[+<j>...]`` (``p0-t1+2``: perturb object 0, targets 1 and 2),
the form that names its results files and JSON records. Torch-free (batch tasks and reports
read it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ringcert.errors import RingcertError
from ringcert.vocabulary import Side

_PATTERN = re.compile(r"p(\d+(?:\+\d+)*)-t(\d+(?:\+\d+)*)")


@dataclass(frozen=True)
class Selection:
    """Perturbed and target object indices, each sorted, disjoint and non-empty."""

    perturbed: tuple[int, ...]
    targets: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.perturbed:
            raise RingcertError("the perturbed set is empty")
        if not self.targets:
            raise RingcertError("the target set is empty")
        if min(self.perturbed + self.targets) < 0:
            raise RingcertError("object indices must be non-negative")
        inside = sorted(set(self.perturbed) & set(self.targets))
        if inside:
            raise RingcertError(f"target object {inside[0]} is inside the perturbed set")
        object.__setattr__(self, "perturbed", tuple(sorted(set(self.perturbed))))
        object.__setattr__(self, "targets", tuple(sorted(set(self.targets))))

    @classmethod
    def of(cls, value: Selection | Side | str) -> Selection:
        """A selection from itself, a ``Side``, or its written form (``right``, ``p0-t1+2``)."""
        if isinstance(value, Selection):
            return value
        if isinstance(value, Side) or value in {side.value for side in Side}:
            side = Side(value)
            return cls(perturbed=(side.other.column,), targets=(side.column,))
        found = _PATTERN.fullmatch(str(value))
        if found is None:
            raise RingcertError(f"target must be left, right or p<i>-t<j> (object indices), got {value!r}")
        return cls(perturbed=_indices(found.group(1)), targets=_indices(found.group(2)))

    @classmethod
    def choose(cls, *, perturb: Sequence[int] | None, target: Sequence[int] | None,
               objects: int) -> Selection:
        """The CLI's ``--perturb`` / ``--target`` index lists on images of ``objects``
        objects: a missing side is every object the other does not name (neither given:
        perturb object 0, target all others), each index checked against the count."""
        everything = range(objects)
        if perturb is None and target is None:
            perturb = (0,)
        for name, given in (("--perturb", perturb), ("--target", target)):
            for index in given or ():
                if not 0 <= index < objects:
                    raise RingcertError(f"{name} object {index} is out of range 0..{objects - 1}")
        if perturb is None:
            perturb = tuple(i for i in everything if i not in set(target or ()))
        if target is None:
            target = tuple(i for i in everything if i not in set(perturb))
        return cls(perturbed=tuple(perturb), targets=tuple(target))

    @property
    def side(self) -> Side | None:
        """The DOUBLE-MNIST side this selection is, if it is one."""
        for side in Side:
            if (self.perturbed, self.targets) == ((side.other.column,), (side.column,)):
                return side
        return None

    @property
    def value(self) -> str:
        """The written form (``p0-t1+2``): what results files and records are named by."""
        return f"p{'+'.join(map(str, self.perturbed))}-t{'+'.join(map(str, self.targets))}"

    def check(self, objects: int) -> None:
        """A one-line error if an index does not name an object of an image of ``objects``."""
        for index in self.perturbed + self.targets:
            if index >= objects:
                raise RingcertError(f"object {index} is out of range 0..{objects - 1} "
                                    f"(the images have {objects} objects)")


def parse_target(value: Side | Selection | str) -> Side | Selection:
    """A task's or record's target: a ``Side`` (``left``, ``right``), else a ``Selection``
    (``p0-t1+2``); a one-line error for anything else."""
    if isinstance(value, Side | Selection):
        return value
    try:
        return Side(value)
    except ValueError:
        return Selection.of(value)


def _indices(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("+"))


def parse_indices(text: str) -> tuple[int, ...]:
    """``I[,I...]`` object indices from the command line (a one-line error otherwise)."""
    if not text.strip():
        raise RingcertError("an empty object index list")
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise RingcertError(f"object indices must be comma-separated integers, got {text!r}") from None


def relation_selections(objects: int) -> list[Selection]:
    """What a relation matrix runs on one image: every ordered pair (perturb ``i``, target
    ``j``), then each object perturbed against all the others as targets."""
    pairs = [Selection(perturbed=(i,), targets=(j,)) for i in range(objects)
             for j in range(objects) if i != j]
    rest = [Selection(perturbed=(i,), targets=tuple(j for j in range(objects) if j != i))
            for i in range(objects)]
    return pairs + [one for one in rest if one not in pairs]
