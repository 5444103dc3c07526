"""Bounds through ``nn.BatchNorm2d`` in evaluation mode: a per-channel affine map (folded
from the running statistics), so IBP is exact on it."""

from __future__ import annotations

import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.verify.bounds.operator import OperatorBounds


def folded(layer: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(x) = scale * x + shift`` (eval mode)."""
    if layer.running_mean is None or layer.running_var is None:
        raise RingcertError("BatchNorm2d without running statistics cannot be verified")
    scale = 1.0 / torch.sqrt(layer.running_var.detach() + layer.eps)
    shift = -layer.running_mean.detach() * scale
    if layer.weight is not None:
        scale = scale * layer.weight.detach()
        shift = shift * layer.weight.detach() + layer.bias.detach()
    return scale, shift


class BatchNormBounds(OperatorBounds):
    elementwise = True

    def ibp(self, layer, lower, upper):
        scale, shift = (t[:, None, None] for t in folded(layer))
        low, high = scale * lower + shift, scale * upper + shift
        return torch.minimum(low, high), torch.maximum(low, high)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        scale, shift = folded(layer)
        return coef * scale[:, None, None], coef.sum(dim=(2, 3)) @ shift
