"""``nn.BatchNorm2d`` in evaluation mode: spec, ONNX node, MILP matrix and bounds. It is a
per-channel affine map folded from the running statistics (``folded``, the one fold that
bound propagation, the receptive-field patches and the MILP all use), so IBP is exact on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.base import AffineMap, LayerSpec, LayerType, OnnxGraphPart, initializer

if TYPE_CHECKING:
    import onnx


def _check(layer: nn.BatchNorm2d) -> None:
    if layer.running_mean is None or layer.running_var is None:
        raise RingcertError("BatchNorm2d without running statistics cannot be verified")


def folded(layer: nn.BatchNorm2d, *, live: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(x) = scale * x + shift`` (eval mode); the
    affine parameters detached unless ``live``."""
    _check(layer)
    scale = 1.0 / torch.sqrt(layer.running_var.detach() + layer.eps)
    shift = -layer.running_mean.detach() * scale
    if layer.weight is not None:
        weight, bias = (layer.weight, layer.bias) if live else (layer.weight.detach(), layer.bias.detach())
        scale = scale * weight
        shift = shift * weight + bias
    return scale, shift


class BatchNormType(LayerType):
    torch_type = nn.BatchNorm2d
    op = "batchnorm2d"
    onnx_ops = ("BatchNormalization",)
    elementwise = True

    def check(self, layer: nn.Module) -> None:
        _check(layer)

    def spec(self, layer: nn.Module) -> LayerSpec:
        _check(layer)
        return {"op": self.op, "channels": layer.num_features, "eps": layer.eps}

    def build(self, spec: LayerSpec) -> nn.Module:
        return nn.BatchNorm2d(spec["channels"], eps=spec.get("eps", 1e-5))

    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        from onnx import helper

        _check(layer)
        inits = [initializer(f"{prefix}.scale", layer.weight), initializer(f"{prefix}.bias", layer.bias),
                 initializer(f"{prefix}.mean", layer.running_mean),
                 initializer(f"{prefix}.var", layer.running_var)]
        node = helper.make_node(
            "BatchNormalization",
            [input_name, f"{prefix}.scale", f"{prefix}.bias", f"{prefix}.mean", f"{prefix}.var"],
            [output_name], epsilon=float(layer.eps))
        return [node], inits

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        scale, bias, mean, var = (weights[n].float() for n in node.input[1:5])
        norm = nn.BatchNorm2d(scale.shape[0], eps=float(attrs.get("epsilon", 1e-5)))
        norm.weight.data, norm.bias.data = scale, bias
        norm.running_mean.data, norm.running_var.data = mean, var
        return norm

    def affine_map(self, layer: nn.Module, shape: tuple[int, ...]) -> AffineMap:
        import scipy.sparse as sp

        scale, shift = (t.double().numpy() for t in folded(layer))
        per = int(np.prod(shape)) // scale.shape[0]
        return sp.diags(np.repeat(scale, per)).tocsr(), np.repeat(shift, per), shape

    def interval(self, layer, lower, upper, *, live):
        scale, shift = (t[:, None, None] for t in folded(layer, live=live))
        low, high = scale * lower + shift, scale * upper + shift
        return torch.minimum(low, high), torch.maximum(low, high)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        scale, shift = folded(layer)
        return coef * scale[:, None, None], coef.sum(dim=(2, 3)) @ shift
