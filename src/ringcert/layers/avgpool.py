"""``nn.AvgPool2d``: spec, ONNX node, MILP matrix and bounds (exact: a depthwise convolution
with weights 1/k^2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ringcert.errors import RingcertError
from ringcert.layers.base import AffineMap, LayerSpec, LayerType, OnnxGraphPart, pair, symmetric_pads

if TYPE_CHECKING:
    import onnx


def _check(layer: nn.AvgPool2d) -> None:
    padded = pair(layer.padding) != (0, 0)
    if layer.ceil_mode or layer.divisor_override is not None or (padded and not layer.count_include_pad):
        raise RingcertError("unsupported AvgPool2d: ceil_mode, divisor_override or "
                            "count_include_pad=False with padding")


class AvgPoolType(LayerType):
    torch_type = nn.AvgPool2d
    op = "avgpool2d"
    onnx_ops = ("AveragePool",)

    def check(self, layer: nn.Module) -> None:
        _check(layer)

    def spec(self, layer: nn.Module) -> LayerSpec:
        _check(layer)
        return {"op": self.op, "kernel": list(pair(layer.kernel_size)),
                "stride": list(pair(layer.stride)), "padding": list(pair(layer.padding))}

    def build(self, spec: LayerSpec) -> nn.Module:
        return nn.AvgPool2d(pair(spec["kernel"]), stride=pair(spec.get("stride", spec["kernel"])),
                            padding=pair(spec.get("padding", 0)))

    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        from onnx import helper

        _check(layer)
        pad = list(pair(layer.padding))
        return [helper.make_node("AveragePool", [input_name], [output_name],
                                 kernel_shape=list(pair(layer.kernel_size)),
                                 strides=list(pair(layer.stride)), pads=pad + pad,
                                 count_include_pad=int(layer.count_include_pad))], []

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        kernel = tuple(attrs["kernel_shape"])
        stride = tuple(attrs.get("strides", kernel))
        return nn.AvgPool2d(kernel, stride=stride, padding=symmetric_pads(node, attrs),
                            count_include_pad=bool(attrs.get("count_include_pad", 0)))

    def affine_map(self, layer: nn.Module, shape: tuple[int, ...]) -> AffineMap:
        import scipy.sparse as sp

        _check(layer)
        size = int(np.prod(shape))
        c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = pair(layer.kernel_size), pair(layer.stride), pair(layer.padding)
        if ph or pw:
            raise RingcertError("AvgPool2d with padding is not supported by the MILP encoding")
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
        o_c, o_y, o_x, k_y, k_x = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo),
                                              np.arange(kh), np.arange(kw), indexing="ij")
        rows = ((o_c * ho + o_y) * wo + o_x).ravel()
        cols = ((o_c * h + o_y * sh + k_y) * w + o_x * sw + k_x).ravel()
        matrix = sp.csr_matrix((np.full(rows.shape, 1.0 / (kh * kw)), (rows, cols)),
                               shape=(c * ho * wo, size))
        return matrix, np.zeros(c * ho * wo), (c, ho, wo)

    def interval(self, layer, lower, upper, *, live):
        _check(layer)
        return layer(lower), layer(upper)

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
