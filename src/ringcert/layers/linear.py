"""Bounds through ``nn.Linear`` (exact: an affine map)."""

from __future__ import annotations

import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.verify.bounds.operator import OperatorBounds, interval_affine


def _params(layer: nn.Linear, lower: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if lower.ndim != 1:
        raise RingcertError("bound propagation needs a flat input to Linear layers (add a Flatten)")
    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else weight.new_zeros(weight.shape[0])
    return weight, bias


class LinearBounds(OperatorBounds):
    def ibp(self, layer, lower, upper):
        weight, bias = _params(layer, lower)
        center, radius = (upper + lower) / 2, (upper - lower) / 2
        return interval_affine(center @ weight.T + bias, radius @ weight.abs().T)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        weight, bias = _params(layer, lower)
        return coef @ weight, coef @ bias
