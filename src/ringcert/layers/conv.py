"""``nn.Conv2d``: spec, ONNX node, MILP matrix and bounds (exact). The backward step is a
transposed convolution, so no dense matrix of the layer is ever built for bound propagation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ringcert.errors import RingcertError
from ringcert.layers.base import (
    AffineMap,
    LayerSpec,
    LayerType,
    OnnxGraphPart,
    initializer,
    interval_affine,
    pair,
    symmetric_pads,
    weight_and_bias,
)

if TYPE_CHECKING:
    import onnx


def check(layer: nn.Conv2d) -> None:
    """A ``RingcertError`` for a convolution ringcert cannot verify."""
    if (layer.groups != 1 or tuple(layer.dilation) != (1, 1) or isinstance(layer.padding, str)
            or layer.padding_mode != "zeros"):
        raise RingcertError("unsupported Conv2d: groups, dilation, string padding or non-zero "
                            "padding mode")


def checked_params(layer: nn.Conv2d, *, live: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a supported convolution (a ``RingcertError`` otherwise); detached
    unless ``live``."""
    check(layer)
    return weight_and_bias(layer, live=live)


class Conv2dType(LayerType):
    torch_type = nn.Conv2d
    op = "conv2d"
    onnx_ops = ("Conv",)

    def check(self, layer: nn.Module) -> None:
        check(layer)

    def spec(self, layer: nn.Module) -> LayerSpec:
        check(layer)
        if layer.bias is None:
            raise RingcertError("unsupported Conv2d in a model spec: missing bias")
        return {"op": self.op, "in": layer.in_channels, "out": layer.out_channels,
                "kernel": list(layer.kernel_size), "stride": list(layer.stride),
                "padding": list(layer.padding)}

    def build(self, spec: LayerSpec) -> nn.Module:
        return nn.Conv2d(spec["in"], spec["out"], pair(spec["kernel"]),
                         stride=pair(spec.get("stride", 1)), padding=pair(spec.get("padding", 0)))

    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        from onnx import helper

        check(layer)
        pad = list(layer.padding)
        node = helper.make_node("Conv", [input_name, f"{prefix}.w", f"{prefix}.b"], [output_name],
                                kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                                pads=pad + pad)
        return [node], [initializer(f"{prefix}.w", layer.weight), initializer(f"{prefix}.b", layer.bias)]

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        w = weights[node.input[1]]
        b = weights[node.input[2]] if len(node.input) > 2 else torch.zeros(w.shape[0])
        if attrs.get("group", 1) != 1 or list(attrs.get("dilations", [1, 1])) != [1, 1]:
            raise RingcertError("unsupported ONNX Conv: group or dilation other than 1")
        conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]),
                         stride=tuple(attrs.get("strides", [1, 1])), padding=symmetric_pads(node, attrs))
        conv.weight.data, conv.bias.data = w.float(), b.float()
        return conv

    def affine_map(self, layer: nn.Module, shape: tuple[int, ...]) -> AffineMap:
        """The convolution as a sparse (out, in) matrix, built by index arithmetic."""
        import scipy.sparse as sp

        check(layer)
        ci, h, w = shape
        weight = layer.weight.detach().double().numpy()
        co, _, kh, kw = weight.shape
        (sh, sw), (ph, pw) = layer.stride, layer.padding
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        o_c, o_y, o_x, i_c, k_y, k_x = np.meshgrid(np.arange(co), np.arange(ho), np.arange(wo),
                                                   np.arange(ci), np.arange(kh), np.arange(kw),
                                                   indexing="ij", sparse=False)
        iy, ix = o_y * sh - ph + k_y, o_x * sw - pw + k_x
        valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        rows = ((o_c * ho + o_y) * wo + o_x)[valid]
        cols = ((i_c * h + iy) * w + ix)[valid]
        vals = weight[o_c[valid], i_c[valid], k_y[valid], k_x[valid]]
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(co * ho * wo, ci * h * w))
        bias = weight_and_bias(layer)[1].double().numpy()
        return matrix, np.repeat(bias, ho * wo), (co, ho, wo)

    def interval(self, layer, lower, upper, *, live):
        weight, bias = checked_params(layer, live=live)
        center, radius = (upper + lower) / 2, (upper - lower) / 2
        mid = functional.conv2d(center, weight, bias, layer.stride, layer.padding)
        rad = functional.conv2d(radius, weight.abs(), None, layer.stride, layer.padding)
        return interval_affine(mid, rad)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        weight, bias = checked_params(layer)
        height, width = lower.shape[-2:]
        out_h, out_w = coef.shape[-2:]
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        extra = (height - ((out_h - 1) * sh - 2 * ph + kh), width - ((out_w - 1) * sw - 2 * pw + kw))
        coef_in = transpose(coef, weight, (sh, sw), (ph, pw), (height, width), extra)
        return coef_in, coef.sum(dim=(2, 3)) @ bias


def transpose(coef: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int],
              padding: tuple[int, int], size: tuple[int, int], extra: tuple[int, int]
              ) -> torch.Tensor:
    """The adjoint of the convolution: ``coef`` (S, C_out, h, w) -> (S, C_in, *size), with
    ``extra`` the output padding; the sub-pixel convolution when the kernel spans few strides."""
    (kh, kw), (sh, sw) = weight.shape[-2:], stride
    if (sh, sw) == (1, 1) and extra == (0, 0) and kh > padding[0] and kw > padding[1]:
        # the adjoint of a stride-1 convolution is one with the flipped kernel, which runs
        # on torch's fast CPU path (conv_transpose2d does not)
        return functional.conv2d(coef, weight.transpose(0, 1).flip(2, 3),
                                 padding=(kh - 1 - padding[0], kw - 1 - padding[1]))
    if -(-kh // sh) * -(-kw // sw) <= 4:
        return _subpixel_transpose(coef, weight, stride, padding, size)
    return functional.conv_transpose2d(coef, weight, None, stride, padding, output_padding=extra)


def _subpixel_transpose(coef: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int],
                        padding: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``conv_transpose2d`` for strided kernels as a stride-1 convolution and a pixel shuffle
    (the kernel split into stride-sized blocks, the "sub-pixel" view of Shi et al. 2016,
    "Real-time single image and video super-resolution using an efficient sub-pixel
    convolutional neural network"): output pixel ``(I * s + a, J * s + b)`` gathers the
    coefficients at ``(I - p, J - q)`` through kernel tap ``(p * s + a, q * s + b)``. For the
    seed's 8x8 / 4 kernel on 1,820 patch rows (16x5x5 -> 1x24x24), one thread: 3.9 ms,
    against 6.9 ms for the block GEMM with shifted adds it replaced and 50 ms for torch's
    transposed convolution."""
    rows, out_c, out_h, out_w = coef.shape
    _, in_c, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ah, aw = -(-kh // sh), -(-kw // sw)
    kernel = functional.pad(weight, (0, aw * sw - kw, 0, ah * sh - kh)).reshape(
        out_c, in_c, ah, sh, aw, sw).permute(1, 3, 5, 0, 2, 4).reshape(
        in_c * sh * sw, out_c, ah, aw).flip(2, 3)
    blocks = functional.conv2d(coef, kernel, padding=(ah - 1, aw - 1))
    height, width = out_h + ah - 1, out_w + aw - 1
    full = blocks.reshape(rows, in_c, sh, sw, height, width).permute(0, 1, 4, 2, 5, 3).reshape(
        rows, in_c, height * sh, width * sw)
    need_h, need_w = ph + size[0] - full.shape[2], pw + size[1] - full.shape[3]
    if need_h > 0 or need_w > 0:
        full = functional.pad(full, (0, max(0, need_w), 0, max(0, need_h)))
    return full[:, :, ph:ph + size[0], pw:pw + size[1]]
