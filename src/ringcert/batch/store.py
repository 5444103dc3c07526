"""The results folder: one JSON (plus attachments) per analysis, written atomically.

Layout: ``DIR/<model>/<index>-<target>.json`` and, next to it, attachments such as the
heatmap ``DIR/<model>/<index>-<target>.png``. Every file is first written to a temp
file in the same folder and then moved into place with ``os.replace`` (atomic on POSIX
and Windows), so a crash or kill leaves either the old file, the new file or a stray
temp file, never a truncated result. The JSON is written last: it is the commit marker.

Work is "done" when its JSON parses and carries the task's identity key
(``task_key``); one that fails to parse is not done. A JSON of the same model, image and
target from other *settings* is a conflict (``conflicts``: the batch refuses to overwrite
it unless forced); one that differs only in input-file content hashes is stale and redone.

One run at a time owns a folder: ``lock`` holds ``DIR/.ringcert.lock`` (the owner's host
and pid), created atomically; a lock whose process is gone is stale and taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ringcert.batch.tasks import CONTENT_SUFFIX, AnalysisTask, TaskOutput, setting_changes
from ringcert.errors import RingcertError

TEMP_SUFFIX = ".tmp"
LOCK_NAME = ".ringcert.lock"
LOCK_GRACE_S = 10.0  # an unreadable lock younger than this belongs to a run that is starting


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a same-folder temp file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def read_record(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing, truncated or not an object."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


class ResultStore:
    """A results folder for one run (one set of settings per model/image/target)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def json_path(self, task: AnalysisTask) -> Path:
        return self.root / task.model_label / f"{task.image_index}-{task.target.value}.json"

    def attachment_path(self, task: AnalysisTask, suffix: str) -> Path:
        if not suffix.startswith(".") or "/" in suffix or suffix == ".json":
            raise ValueError(f"attachment suffix must look like '.png', got {suffix!r}")
        return self.json_path(task).with_suffix(suffix)

    def is_done(self, task: AnalysisTask) -> bool:
        record = read_record(self.json_path(task))
        return record is not None and record.get("task_key") == task.key

    def conflicts(self, tasks: Sequence[AnalysisTask]
                  ) -> list[tuple[AnalysisTask, dict[str, tuple[Any, Any]]]]:
        """Tasks whose result file holds an analysis from other settings (not mere input-file
        edits), with the differing settings (name -> (stored, asked))."""
        found = []
        for task in tasks:
            record = read_record(self.json_path(task))
            stored = record.get("task") if record is not None else None
            if not isinstance(stored, Mapping) or record.get("task_key") == task.key:
                continue
            changes = setting_changes(stored.get("settings") or {}, task.settings)
            if any(not name.endswith(CONTENT_SUFFIX) for name in changes):
                found.append((task, changes))
        return found

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Own the folder for one run; a one-line ``RingcertError`` if a live run owns it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_NAME
        owner = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _lock_holder(path)
                if holder is not None:
                    raise RingcertError(f"{self.root} is in use by another ringcert run ({holder}); "
                                        "wait for it to finish or use another --out") from None
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(owner + "\n")
            break
        else:
            raise RingcertError(f"could not take the lock {path}")
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if path.read_text().strip() == owner:
                    path.unlink()

    def write(self, task: AnalysisTask, output: Mapping[str, Any] | TaskOutput) -> Path:
        """Store one result: attachments first, then the JSON with ``task_key`` added."""
        if isinstance(output, TaskOutput):
            record, attachments = output.record, output.attachments
        else:
            record, attachments = output, {}
        if not isinstance(record, Mapping):
            raise TypeError(f"a task function must return a dict or TaskOutput, "
                            f"got {type(record).__name__}")
        data = (json.dumps({**record, "task_key": task.key, "task": task.to_json()},
                           indent=2, allow_nan=False) + "\n").encode()
        for suffix, content in attachments.items():
            write_atomic(self.attachment_path(task, suffix), bytes(content))
        path = self.json_path(task)
        write_atomic(path, data)
        return path

    def remove_temp_files(self) -> int:
        """Delete temp files left by a killed run (never counted as results); their count."""
        removed = 0
        if self.root.is_dir():
            for temp in self.root.glob(f"*/.*{TEMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    temp.unlink()
                    removed += 1
        return removed


def _lock_holder(path: Path) -> str | None:
    """``host pid`` of a lock's live owner; None when the lock is stale (its process is gone,
    on this host). A lock from another host is taken as live; an unreadable one too while it
    is young (its owner may be between creating and writing it)."""
    try:
        host, pid = path.read_text().split()
        number = int(pid)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        try:
            young = time.time() - path.stat().st_mtime < LOCK_GRACE_S
        except OSError:
            return None
        return "starting" if young else None
    if host != socket.gethostname():
        return f"host {host}, pid {number}"
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"pid {number}"


def result_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every result JSON under ``root`` (any depth, so a folder of several runs works)."""
    base = Path(root)
    return sorted(path for path in base.rglob("*.json")
                  if not path.name.startswith(".") and path.is_file())
