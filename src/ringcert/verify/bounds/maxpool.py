"""Bounds through ``nn.MaxPool2d`` with the DeepPoly relaxation (Singh et al. 2019).

For each window: ``max >= x_j`` for ``j`` the input with the largest lower bound (any
single input is a valid lower bound); ``max <= max_i u_i`` (a constant), except when
``x_j`` dominates (``l_j >= u_i`` for every other ``i``), where ``max = x_j`` exactly.
Windows are cut out with ``unfold`` so overlapping windows and padding are handled; the
coefficients go back to the chosen inputs with a scatter-add.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from ringcert.errors import RingcertError
from ringcert.models.architecture import pair
from ringcert.verify.bounds.operator import OperatorBounds


def _check(layer: nn.MaxPool2d) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    if layer.ceil_mode or pair(layer.dilation) != (1, 1) or layer.return_indices:
        raise RingcertError("unsupported MaxPool2d: ceil_mode, dilation or return_indices")
    return pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)


def _windows(layer: nn.MaxPool2d, x: torch.Tensor, fill: float) -> torch.Tensor:
    """(C, H, W) -> (C, kernel area, windows), padding filled with ``fill``."""
    kernel, stride, (ph, pw) = _check(layer)
    padded = functional.pad(x, (pw, pw, ph, ph), value=fill)
    return functional.unfold(padded[:, None], kernel, stride=stride)


@dataclass(frozen=True, eq=False)
class PoolRelaxation:
    index: torch.Tensor  # (C, L) flat input index (within the channel) of the lower-bound input
    dominant: torch.Tensor  # (C, L) bool: the chosen input is the max for every point
    upper: torch.Tensor  # (C, L) constant upper bound of the window's max


def relax(layer: nn.MaxPool2d, lower: torch.Tensor, upper: torch.Tensor) -> PoolRelaxation:
    channels, height, width = lower.shape
    low_w = _windows(layer, lower, -torch.inf)
    up_w = _windows(layer, upper, -torch.inf)
    positions = torch.arange(height * width, dtype=lower.dtype).reshape(1, height, width)
    index_w = _windows(layer, positions.expand(channels, -1, -1), -1.0).long()
    best = low_w.argmax(dim=1, keepdim=True)
    best_low = low_w.gather(1, best)[:, 0]
    others = up_w.scatter(1, best, -torch.inf).amax(dim=1)
    return PoolRelaxation(index=index_w.gather(1, best)[:, 0], dominant=best_low >= others,
                          upper=up_w.amax(dim=1))


class MaxPoolBounds(OperatorBounds):
    affine = False

    def ibp(self, layer, lower, upper):
        kernel, stride, padding = _check(layer)
        return (functional.max_pool2d(lower[None], kernel, stride, padding)[0],
                functional.max_pool2d(upper[None], kernel, stride, padding)[0])

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        relaxed = relax(layer, lower, upper)
        rows, channels = coef.shape[0], lower.shape[0]
        flat = coef.reshape(rows, channels, -1)
        pos, neg = flat.clamp(min=0), flat.clamp(max=0)
        into_input = pos + torch.where(relaxed.dominant, neg, torch.zeros_like(neg))
        constant = torch.where(relaxed.dominant, torch.zeros_like(neg), neg)
        coef_in = flat.new_zeros(rows, channels, lower[0].numel())
        coef_in = coef_in.scatter_add(2, relaxed.index.expand(rows, -1, -1), into_input)
        return coef_in.reshape(rows, *lower.shape), (constant * relaxed.upper).sum(dim=(1, 2))
