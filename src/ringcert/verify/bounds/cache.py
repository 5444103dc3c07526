"""Layer bounds shared across the stages of one query.

In the cascade, CROWN, alpha-CROWN, branch and bound and the MILP all start from the same
CROWN layer bounds of the same box; a ``LayerBoundsCache`` shared by the stages computes
them once. ``layer_bounds`` is the one "get or compute" every verifier calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import torch
from torch import nn

from ringcert.verify.bounds.envelope import FirstBlock, tightened_bounds
from ringcert.verify.bounds.network import BoundMethod, NetworkBounds, network_bounds


def fingerprint(network: nn.Module) -> tuple[int, ...]:
    """Version counters of every parameter and buffer: they change on any in-place update."""
    return tuple(t._version for t in (*network.parameters(), *network.buffers()))


T = TypeVar("T")


class NetworkMemo(Generic[T]):
    """What a verifier derives from a network and an input shape alone (the envelope's first
    block, the max-pool-free form), kept for the last network asked: rebuilt when another
    network object, a changed one or another shape comes."""

    def __init__(self, build: Callable[[nn.Sequential, tuple[int, ...]], T]) -> None:
        self._build = build
        self._entry: tuple[nn.Module, tuple[int, ...], tuple[int, ...], T] | None = None

    def get(self, network: nn.Sequential, shape: tuple[int, ...]) -> T:
        entry = self._entry
        if entry is None or entry[0] is not network or entry[1] != fingerprint(network) or entry[2] != shape:
            entry = (network, fingerprint(network), shape, self._build(network, shape))
            self._entry = entry
        return entry[3]


class LayerBoundsCache:
    """The layer bounds of the last query (one entry): reused when the same network object,
    unchanged since, is asked for the same method on an identical box. Likewise the last
    hull-tightened bounds (``tightened``), which the cascade's envelope stage and branch and
    bound's root both ask for."""

    def __init__(self) -> None:
        self._entry: tuple[nn.Module, tuple[int, ...], BoundMethod, NetworkBounds] | None = None
        self._hull: tuple[nn.Module, tuple[int, ...], int, NetworkBounds] | None = None

    def tightened(self, network: nn.Sequential, block: FirstBlock, plain: NetworkBounds, *,
                  steps: int) -> NetworkBounds:
        """``envelope.tightened_bounds`` of ``plain``, from the last call when it was on the
        same network and box with at least ``steps`` steps (more steps: tighter, as sound)."""
        entry = self._hull
        if entry is not None and entry[2] >= steps and _holds(entry, network, *plain.input):
            return entry[3]
        found = tightened_bounds(network, block, plain, steps=steps)
        self._hull = (network, fingerprint(network), steps, found)
        return found

    def get(self, network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor, *,
            method: BoundMethod) -> NetworkBounds:
        entry = self._entry
        if entry is not None and entry[2] is method and _holds(entry, network, lo, hi):
            return entry[3]
        found = network_bounds(network, lo, hi, method=method)
        self._entry = (network, fingerprint(network), method, found)
        return found


def _holds(entry: tuple[nn.Module, tuple[int, ...], object, NetworkBounds], network: nn.Module,
           lo: torch.Tensor, hi: torch.Tensor) -> bool:
    """Whether a cache entry (network, its fingerprint then, key, bounds) was computed on this
    network object, unchanged since, and on exactly this box."""
    cached_net, version, _, found = entry
    return (cached_net is network and version == fingerprint(network)
            and torch.equal(found.input[0], lo) and torch.equal(found.input[1], hi))


def hull_bounds(network: nn.Sequential, block: FirstBlock, plain: NetworkBounds, *, steps: int,
                cache: LayerBoundsCache | None = None) -> NetworkBounds:
    """``envelope.tightened_bounds``, from ``cache`` when one is given (and holds this box)."""
    if cache is None:
        return tightened_bounds(network, block, plain, steps=steps)
    return cache.tightened(network, block, plain, steps=steps)


def layer_bounds(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor, *,
                 method: BoundMethod, cache: LayerBoundsCache | None = None) -> NetworkBounds:
    """``network_bounds``, from ``cache`` when one is given (and holds this query)."""
    if cache is None:
        return network_bounds(network, lo, hi, method=method)
    return cache.get(network, lo, hi, method=method)
