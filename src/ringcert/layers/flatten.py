"""``nn.Flatten``: spec, ONNX node, MILP matrix (the identity on flat inputs) and bounds (a
reshape). An ONNX Reshape node imports as a Flatten too (exporters write one before the
fully connected layers); its target shape is not read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.base import AffineMap, LayerSpec, LayerType, OnnxGraphPart

if TYPE_CHECKING:
    import onnx


def _check(layer: nn.Flatten) -> None:
    if layer.start_dim != 1 or layer.end_dim != -1:
        raise RingcertError("only Flatten(start_dim=1, end_dim=-1) is supported")


class FlattenType(LayerType):
    torch_type = nn.Flatten
    op = "flatten"
    onnx_ops = ("Flatten", "Reshape")
    elementwise = True

    def check(self, layer: nn.Module) -> None:
        _check(layer)

    def spec(self, layer: nn.Module) -> LayerSpec:
        _check(layer)
        return {"op": self.op}

    def build(self, spec: LayerSpec) -> nn.Module:
        return nn.Flatten()

    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        from onnx import helper

        _check(layer)
        return [helper.make_node("Flatten", [input_name], [output_name], axis=1)], []

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        return nn.Flatten()

    def affine_map(self, layer: nn.Module, shape: tuple[int, ...]) -> AffineMap:
        import scipy.sparse as sp

        _check(layer)
        size = int(np.prod(shape))
        return sp.identity(size, format="csr"), np.zeros(size), (size,)

    def interval(self, layer, lower, upper, *, live):
        _check(layer)
        return lower.flatten(1), upper.flatten(1)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        _check(layer)
        return coef.reshape(coef.shape[0], *lower.shape), coef.new_zeros(coef.shape[0])
