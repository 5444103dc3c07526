"""Bounds through ``nn.MaxPool2d``: the DeepPoly relaxation (Singh et al. 2019) with a
linear upper bound where it pays.

For each window, lower: ``max >= x_j`` for ``j`` the input with the largest lower bound
(any single input is a valid lower bound). Upper, two valid choices: the constant
``max_i u_i`` (DeepPoly), or ``max <= x_t + max(0, U - l_t)`` for ``t`` the input with the
largest upper bound and ``U`` the largest upper bound of the others (if another input is
the max it is at most ``U <= l_t + (U - l_t) <= x_t + (U - l_t)``). The linear one is
exact when ``x_t`` dominates the window (``l_t >= U``: then ``max = x_t``) and, by
following ``x_t``, keeps the correlation with the rest of the network; it is the looser of
the two at the box's worst case by the offset ``max(0, U - l_t)``. CROWN takes it where
the offset is at most ``LINEAR_UPPER_SHARE`` of ``x_t``'s width; alpha-CROWN optimizes a
convex combination of the two per window (``initial_alpha``: the weight of the linear
bound; any weight in [0, 1] gives a valid bound). On the shipped classifiers' ladder
queries (``benchmarks/verifiers.py``, 5 test images) whose CROWN bound lies in (-10, 10),
share 0.5 raised the bound by 0.51 (none) and 0.28 (pgd) logits on average against
DeepPoly's constant (0.25: 0.40 / 0.21; 1: -0.89 / -0.29, looser), alpha-CROWN's by
0.49 / 0.17.

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


LINEAR_UPPER_SHARE = 0.5
"""CROWN bounds a window's max from above by ``x_t + offset`` when the offset is at most
this share of ``u_t - l_t``, else by the constant ``max_i u_i``."""


@dataclass(frozen=True, eq=False)
class PoolRelaxation:
    """Per window (C, L): flat input indices (within the channel) of the lower-bound input
    and of the input ``t`` with the largest upper bound, the linear upper bound's offset,
    the constant upper bound, and CROWN's choice between the two upper bounds."""

    index: torch.Tensor
    top: torch.Tensor
    offset: torch.Tensor
    upper: torch.Tensor
    linear: torch.Tensor  # bool: CROWN uses max <= x_top + offset


def relax(layer: nn.MaxPool2d, lower: torch.Tensor, upper: torch.Tensor) -> PoolRelaxation:
    channels, height, width = lower.shape
    low_w = _windows(layer, lower, -torch.inf)
    up_w = _windows(layer, upper, -torch.inf)
    positions = torch.arange(height * width, dtype=lower.dtype).reshape(1, height, width)
    index_w = _windows(layer, positions.expand(channels, -1, -1), -1.0).long()
    best = low_w.argmax(dim=1, keepdim=True)
    top = up_w.argmax(dim=1, keepdim=True)
    top_low, top_up = low_w.gather(1, top)[:, 0], up_w.gather(1, top)[:, 0]
    others = up_w.scatter(1, top, -torch.inf).amax(dim=1)
    offset = (others - top_low).clamp(min=0)
    return PoolRelaxation(index=index_w.gather(1, best)[:, 0], top=index_w.gather(1, top)[:, 0],
                          offset=offset, upper=top_up,
                          linear=offset <= LINEAR_UPPER_SHARE * (top_up - top_low))


class MaxPoolBounds(OperatorBounds):
    affine = False

    def ibp(self, layer, lower, upper):
        kernel, stride, padding = _check(layer)
        return (functional.max_pool2d(lower[None], kernel, stride, padding)[0],
                functional.max_pool2d(upper[None], kernel, stride, padding)[0])

    def initial_alpha(self, layer, lower, upper):
        return relax(layer, lower, upper).linear.to(lower.dtype)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        """``alpha`` (C, L) or (S, C, L) in [0, 1]: the weight of the linear upper bound."""
        relaxed = relax(layer, lower, upper)
        weight = relaxed.linear.to(lower.dtype) if alpha is None else alpha
        rows, channels = coef.shape[0], lower.shape[0]
        flat = coef.reshape(rows, channels, -1)
        pos, neg = flat.clamp(min=0), flat.clamp(max=0)
        coef_in = flat.new_zeros(rows, channels, lower[0].numel())
        coef_in = coef_in.scatter_add(2, relaxed.index.expand(rows, -1, -1), pos)
        coef_in = coef_in.scatter_add(2, relaxed.top.expand(rows, -1, -1), neg * weight)
        constant = neg * (weight * relaxed.offset + (1 - weight) * relaxed.upper)
        return coef_in.reshape(rows, *lower.shape), constant.sum(dim=(1, 2))
