"""Bound propagation through the supported layers (IBP now; CROWN and alpha-CROWN next).

Public API (stable; other modules depend on it):

- ``BoundMethod``: IBP, CROWN, ALPHA_CROWN.
- ``network_bounds(network, lo, hi, *, method) -> NetworkBounds``: sound elementwise
  bounds on the output of every layer of a ``nn.Sequential`` for inputs in ``[lo, hi]``
  (unbatched shapes, e.g. (C, H, W)).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from ringcert.errors import RingcertError


class BoundMethod(Enum):
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"


@dataclass(frozen=True, eq=False)
class NetworkBounds:
    """``layers[i]`` = (lower, upper) on the output of layer ``i``; ``input`` = (lo, hi)."""

    input: tuple[torch.Tensor, torch.Tensor]
    layers: list[tuple[torch.Tensor, torch.Tensor]]


def _ibp_layer(layer: nn.Module, lower: torch.Tensor, upper: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(layer, nn.Linear | nn.Conv2d | nn.BatchNorm2d | nn.AvgPool2d):
        center, radius = (upper + lower) / 2, (upper - lower) / 2
        mid = layer(center[None])[0]
        if isinstance(layer, nn.Linear):
            rad = radius @ layer.weight.abs().T
        elif isinstance(layer, nn.Conv2d):
            rad = nn.functional.conv2d(radius[None], layer.weight.abs(), None, layer.stride,
                                       layer.padding)[0]
        elif isinstance(layer, nn.BatchNorm2d):
            scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
            rad = radius * scale.abs()[:, None, None]
        else:
            rad = layer(radius[None])[0]
        return mid - rad, mid + rad
    if isinstance(layer, nn.ReLU | nn.MaxPool2d | nn.Flatten):
        return layer(lower[None])[0], layer(upper[None])[0]
    raise RingcertError(f"unsupported layer for bound propagation: {type(layer).__name__}")


def network_bounds(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor, *,
                   method: BoundMethod = BoundMethod.IBP) -> NetworkBounds:
    if method is not BoundMethod.IBP:
        raise NotImplementedError(method)
    layers = []
    lower, upper = lo, hi
    for layer in network:
        lower, upper = _ibp_layer(layer, lower, upper)
        layers.append((lower, upper))
    return NetworkBounds(input=(lo, hi), layers=layers)
