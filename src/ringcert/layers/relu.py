"""``nn.ReLU``: spec, ONNX node and bounds with the CROWN / DeepPoly triangle relaxation
(the MILP's big-M encoding of it is in ``verify/milp/encoding.py``).

For an unstable neuron (``l < 0 < u``) the upper bound is the chord
``relu(x) <= u (x - l) / (u - l)`` and the lower bound is ``relu(x) >= a x`` for any slope
``a`` in [0, 1]. CROWN's adaptive choice (Zhang et al. 2018) takes ``a = 1`` if ``u > -l``
else ``0``; alpha-CROWN (Xu et al. 2021, "Fast and complete") optimizes ``a``. Stable
neurons are exact (identity or zero).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ringcert.layers.base import LayerSpec, LayerType, OnnxGraphPart

if TYPE_CHECKING:
    import onnx


def unstable(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Neurons whose sign the bounds leave open."""
    return (lower < 0) & (upper > 0)


def default_slope(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """CROWN's adaptive lower slope (1 on active neurons, 0 on inactive ones)."""
    return ((upper > -lower) & (upper > 0)).to(lower.dtype)


def relaxation(lower: torch.Tensor, upper: torch.Tensor, alpha: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lower slope, upper slope, upper intercept)``; the lower intercept is 0."""
    open_ = unstable(lower, upper)
    active = lower >= 0
    safe_u = torch.where(open_, upper, torch.ones_like(upper))
    safe_l = torch.where(open_, lower, torch.zeros_like(lower))
    chord = safe_u / (safe_u - safe_l)
    up_slope = torch.where(open_, chord, active.to(lower.dtype))
    up_icpt = torch.where(open_, -chord * safe_l, torch.zeros_like(lower))
    low_slope = default_slope(lower, upper)
    if alpha is not None:
        low_slope = torch.where(open_, alpha, low_slope)
    return low_slope, up_slope, up_icpt


class ReluType(LayerType):
    torch_type = nn.ReLU
    op = "relu"
    onnx_ops = ("Relu",)
    affine = False

    def check(self, layer: nn.Module) -> None:
        """Every ``nn.ReLU`` is supported (``inplace`` does not change its function)."""

    def spec(self, layer: nn.Module) -> LayerSpec:
        return {"op": self.op}

    def build(self, spec: LayerSpec) -> nn.Module:
        return nn.ReLU()

    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        from onnx import helper

        return [helper.make_node("Relu", [input_name], [output_name])], []

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        return nn.ReLU()

    def interval(self, layer, lower, upper, *, live):
        return lower.clamp(min=0), upper.clamp(min=0)

    def initial_alpha(self, layer, lower, upper):
        return default_slope(lower, upper)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        """``alpha``: lower slopes of the unstable neurons, broadcastable to ``coef``."""
        low_slope, up_slope, up_icpt = relaxation(lower, upper, alpha)
        pos, neg = coef.clamp(min=0), coef.clamp(max=0)
        coef_in = pos * low_slope + neg * up_slope
        return coef_in, (neg * up_icpt).flatten(1).sum(1)
