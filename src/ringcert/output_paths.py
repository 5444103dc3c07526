"""Checks of every path a command will write, made before any work starts.

A command that would fail to write its result after minutes of work (a folder that is a
file, a file that is a folder, an unwritable parent) fails at once instead, with one line
naming the option. File paths must carry their format's suffix, so that numpy's habit of
appending one (``np.save("x")`` writes ``x.npy``) never makes the message name a file
that was not written.
"""

from __future__ import annotations

import os
from pathlib import Path

from ringcert.errors import RingcertError


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path(".")


def _check_creatable(path: Path, option: str) -> None:
    base = _nearest_existing(path.parent if not path.exists() else path)
    if not base.is_dir():
        raise RingcertError(f"{option} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise RingcertError(f"{option} {path}: {base} is not writable")


def output_folder(text: str, option: str) -> Path:
    """A folder the command will create or write into."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise RingcertError(f"{option} {path} is a file, not a folder")
    _check_creatable(path, option)
    return path


def output_file(text: str, option: str, *, suffix: str) -> Path:
    """A file the command will (over)write; it must end in ``suffix``."""
    path = Path(text)
    if path.suffix.lower() != suffix:
        raise RingcertError(f"{option} {path} must end in {suffix}")
    if path.is_dir():
        raise RingcertError(f"{option} {path} is a folder, not a file")
    _check_creatable(path, option)
    return path
