"""Bounds through ``nn.AvgPool2d`` (exact: a depthwise convolution with weights 1/k^2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from ringcert.errors import RingcertError
from ringcert.models.architecture import pair
from ringcert.verify.bounds.operator import OperatorBounds


def _check(layer: nn.AvgPool2d) -> None:
    padded = pair(layer.padding) != (0, 0)
    if layer.ceil_mode or layer.divisor_override is not None or (padded and not layer.count_include_pad):
        raise RingcertError("unsupported AvgPool2d: ceil_mode, divisor_override or "
                            "count_include_pad=False with padding")


class AvgPoolBounds(OperatorBounds):
    def ibp(self, layer, lower, upper):
        _check(layer)
        return layer(lower[None])[0], layer(upper[None])[0]

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        _check(layer)
        channels, height, width = lower.shape
        (kh, kw), (sh, sw), (ph, pw) = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
        out_h, out_w = coef.shape[-2:]
        weight = torch.full((channels, 1, kh, kw), 1.0 / (kh * kw), dtype=coef.dtype)
        extra = (height - ((out_h - 1) * sh - 2 * ph + kh), width - ((out_w - 1) * sw - 2 * pw + kw))
        coef_in = functional.conv_transpose2d(coef, weight, None, (sh, sw), (ph, pw),
                                              output_padding=extra, groups=channels)
        return coef_in, coef.new_zeros(coef.shape[0])
