"""One unit of batch work: which model, image and target side (or object selection), with
which algorithm settings.

A task's identity key is a hash of *everything* that determines its result (model
reference, image index, target side and the algorithm/verifier settings), so a rerun
after changing any setting, or editing an input file, is never mistaken for finished work
(docs/design.md section 5).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, TypeAlias

from ringcert.errors import RingcertError
from ringcert.selection import Selection, parse_target
from ringcert.vocabulary import Side

KEY_SCHEMA = 2  # bump when the meaning of a task's fields changes
CONTENT_SUFFIX = "_sha256"
"""Settings keys ending in this are content hashes of input files (a model file, a weights
file): a stored result that differs from a task only in them is stale, not other work."""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, kw_only=True)
class AnalysisTask:
    """A (model, image, target side, settings) analysis; picklable and JSON-able.

    ``target`` is a ``Side`` on two-object images, or any ``Selection`` of perturbed and
    target objects (its written form names the results file: ``3-p0-t1+2.json``).

    ``model`` is what the task function loads: a shipped model name (``none``, ``l0``,
    ``pgd``) or a model file path. ``settings`` is a JSON-able dict of everything else
    that shapes the result (algorithm, shrink, delta, verifier, budgets, weights, k...);
    it is copied on construction, so later changes to the caller's dict do not leak in.
    """

    model: str
    image_index: int
    target: Side | Selection
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise RingcertError(f"task model must be a non-empty name or path, got {self.model!r}")
        if isinstance(self.image_index, bool) or not isinstance(self.image_index, int) \
                or self.image_index < 0:
            raise RingcertError(f"image index must be a non-negative integer, "
                                f"got {self.image_index!r}")
        target = parse_target(self.target)
        try:
            settings = json.loads(_canonical(dict(self.settings)))
        except (TypeError, ValueError) as error:
            raise RingcertError(f"task settings must be JSON-serializable: {error}") from None
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "settings", settings)

    def __hash__(self) -> int:
        return hash(self.key)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "image_index": self.image_index,
                "target": self.target.value, "settings": dict(self.settings)}

    @property
    def key(self) -> str:
        """SHA-256 of the canonical JSON of all fields: equal iff the work is the same."""
        payload = _canonical({"schema": KEY_SCHEMA, **self.to_json()})
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def model_label(self) -> str:
        """The model's folder name in a results tree: the name, or a file path's stem."""
        name = PurePath(self.model).stem if ("/" in self.model or "\\" in self.model
                                             or "." in self.model) else self.model
        return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"

    @property
    def label(self) -> str:
        return f"{self.model_label}/{self.image_index}-{self.target.value}"


@dataclass(frozen=True, kw_only=True)
class TaskOutput:
    """What a task function may return instead of a bare record dict.

    ``attachments`` maps a file suffix (``".png"``) to bytes written next to the JSON
    (``DIR/<model>/<index>-<target>.png``) by the process that owns the results folder,
    so workers on other machines never need the folder.
    """

    record: Mapping[str, Any]
    attachments: Mapping[str, bytes] = field(default_factory=dict)


TaskFunction: TypeAlias = Callable[[AnalysisTask], "Mapping[str, Any] | TaskOutput"]
"""The per-image work: a picklable (module-level) callable from a task to its record."""


def setting_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The settings that differ between two tasks' ``settings``: name -> (old, new)."""
    return {key: (old.get(key), new.get(key)) for key in sorted({*old, *new})
            if old.get(key) != new.get(key)}
