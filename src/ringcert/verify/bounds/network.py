"""Sound elementwise bounds on every layer output of a ``nn.Sequential`` (the bounds the
MILP encodes its big-M constants with, and the first step of every margin bound)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from ringcert.verify.bounds.crown import crown_layer_bounds, ibp_layer_bounds


class BoundMethod(Enum):
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"


@dataclass(frozen=True, eq=False)
class NetworkBounds:
    """``layers[i]`` = (lower, upper) on the output of layer ``i``; ``input`` = (lo, hi)."""

    input: tuple[torch.Tensor, torch.Tensor]
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def inputs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Bounds on the *input* of each layer (``inputs[0]`` is the box)."""
        return [self.input, *self.layers[:-1]]

    def unstable(self, network: nn.Sequential) -> int:
        """Number of ReLU neurons whose sign the bounds leave open."""
        count = 0
        for layer, (lower, upper) in zip(network, self.inputs, strict=True):
            if isinstance(layer, nn.ReLU):
                count += int(((lower < 0) & (upper > 0)).sum())
        return count


def network_bounds(network: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor, *,
                   method: BoundMethod = BoundMethod.IBP) -> NetworkBounds:
    """Bounds on every layer output for inputs in ``[lo, hi]`` (unbatched shapes).

    ``IBP``: interval propagation. ``CROWN``: CROWN on the inputs of ReLU / MaxPool layers
    and the output (each inside the IBP bound). ``ALPHA_CROWN`` returns the CROWN bounds:
    alpha-CROWN optimizes the final margin bound only (see ``margin_bound``), which keeps
    a query fast; the layer bounds are sound either way.
    """
    if method is BoundMethod.IBP:
        layers = ibp_layer_bounds(network, lo, hi)
    else:
        layers = crown_layer_bounds(network, lo, hi)
    return NetworkBounds(input=(lo, hi), layers=layers)
