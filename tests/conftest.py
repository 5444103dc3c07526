"""Fixtures every test module may ask for by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread, restored afterwards. Tests that run many tiny tensor operations
    (branch and bound, alpha-CROWN on tiny networks) ask for it: with the machine's other core
    busy, torch's intra-op threads wait on each other (10x slower here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
