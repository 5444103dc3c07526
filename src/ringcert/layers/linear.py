"""``nn.Linear``: spec, ONNX Gemm node, MILP matrix and bounds (exact: an affine map).

A MatMul followed by an Add imports as one Linear too; that two-node pattern lives in
``models/onnx_io.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.base import (
    AffineMap,
    LayerSpec,
    LayerType,
    OnnxGraphPart,
    initializer,
    interval_affine,
    weight_and_bias,
)

if TYPE_CHECKING:
    import onnx


def _params(layer: nn.Linear, lower: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if lower.ndim != 1:
        raise RingcertError("bound propagation needs a flat input to Linear layers (add a Flatten)")
    return weight_and_bias(layer)


class LinearType(LayerType):
    torch_type = nn.Linear
    op = "linear"
    onnx_ops = ("Gemm",)

    def check(self, layer: nn.Module) -> None:
        """Every ``nn.Linear`` is supported (a missing bias counts as zero)."""

    def spec(self, layer: nn.Module) -> LayerSpec:
        return {"op": self.op, "in": layer.in_features, "out": layer.out_features}

    def build(self, spec: LayerSpec) -> nn.Module:
        return nn.Linear(spec["in"], spec["out"])

    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        from onnx import helper

        node = helper.make_node("Gemm", [input_name, f"{prefix}.w", f"{prefix}.b"], [output_name],
                                transB=1)
        return [node], [initializer(f"{prefix}.w", layer.weight), initializer(f"{prefix}.b", layer.bias)]

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        w = weights[node.input[1]].float()
        if attrs.get("transA", 0):
            raise RingcertError("unsupported ONNX Gemm with transA")
        w = w if attrs.get("transB", 0) else w.T
        w = w * float(attrs.get("alpha", 1.0))
        b = (weights[node.input[2]].float() * float(attrs.get("beta", 1.0))
             if len(node.input) > 2 else torch.zeros(w.shape[0]))
        linear = nn.Linear(w.shape[1], w.shape[0])
        linear.weight.data, linear.bias.data = w.contiguous(), b.reshape(-1)
        return linear

    def affine_map(self, layer: nn.Module, shape: tuple[int, ...]) -> AffineMap:
        import scipy.sparse as sp

        weight, bias = (t.double().numpy() for t in weight_and_bias(layer))
        return sp.csr_matrix(weight), bias, (weight.shape[0],)

    def interval(self, layer, lower, upper, *, live):
        if lower.ndim != 2:
            raise RingcertError("bound propagation needs a flat input to Linear layers (add a Flatten)")
        weight, bias = weight_and_bias(layer, live=live)
        center, radius = (upper + lower) / 2, (upper - lower) / 2
        return interval_affine(center @ weight.T + bias, radius @ weight.abs().T)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        weight, bias = _params(layer, lower)
        return coef @ weight, coef @ bias
