"""The interface every supported layer type implements, in one place per type.

A ``LayerType`` owns everything ringcert knows about one ``torch.nn`` layer class: which
parameters it supports (``check``), its JSON-able model-file spec (``spec`` / ``build``),
its ONNX form (``onnx_export`` / ``onnx_import``), its sparse matrix for the MILP
(``affine_map``) and its bound propagation rules. Adding a layer type is one module with
one subclass, listed in ``registry``.

Bound propagation has two passes, after auto_LiRPA's one-module-per-operator split:

- ``interval``: interval bound propagation (Gowal et al. 2018, "On the effectiveness of
  interval bound propagation"): elementwise bounds on the output from bounds on the input,
  on a batch. It is the layer's one IBP rule: ``ibp`` (one input, parameters detached) serves
  the verifiers, ``interval(..., live=True)`` certified training, whose loss needs the
  parameters' gradients (``ringcert.training.certified``).
- ``backward``: one step of the backward linear relaxation of CROWN (Zhang et al. 2018,
  "Efficient neural network robustness certification with general activation functions")
  and DeepPoly (Singh et al. 2019): given coefficients ``A`` (S, *out_shape) of a linear
  function of the layer's output that is to be bounded from *below*, return ``A'``
  (S, *in_shape) and a bias (S,) with ``A . out >= A' . in + bias`` for every input in the
  given input bounds. Affine layers are exact; nonlinear ones use a linear relaxation.

All shapes are unbatched (one input of shape (C, H, W) or (N,)); the spec dimension S
takes the batch position, so the backward steps are plain batched tensor operations.
Outside certified training, parameters are detached: gradients flow to the input box
(epsilon) only.

``onnx`` and ``scipy.sparse`` are imported inside the methods that need them: loading them
is slow, and bound propagation and the model-file loader never need them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from ringcert.errors import RingcertError

if TYPE_CHECKING:
    import onnx
    import scipy.sparse as sp

LayerSpec = dict[str, Any]
"""One layer of a model file's architecture: ``{"op": name, ...parameters}``."""

OnnxGraphPart = tuple[list["onnx.NodeProto"], list["onnx.TensorProto"]]
"""Nodes and initializers one layer contributes to an ONNX graph."""

AffineMap = tuple["sp.csr_matrix", np.ndarray, tuple[int, ...]]
"""``(matrix, bias, output shape)`` of an affine layer on flattened inputs (float64)."""


class LayerType(ABC):
    """Everything about one supported layer type.

    ``torch_type``: the ``nn.Module`` class; ``op``: its name in a model spec;
    ``onnx_ops``: the ONNX op types whose single node imports as this layer.
    ``affine``: the output is an affine function of the input (no relaxation needed).
    ``elementwise``: affine and each output depends on one input, so IBP is exact on it.
    """

    torch_type: ClassVar[type[nn.Module]]
    op: ClassVar[str]
    onnx_ops: ClassVar[tuple[str, ...]] = ()
    affine: ClassVar[bool] = True
    elementwise: ClassVar[bool] = False

    @abstractmethod
    def check(self, layer: nn.Module) -> None:
        """A one-line ``RingcertError`` when ``layer`` has parameters ringcert cannot verify
        (the other methods apply it themselves wherever such a layer would go wrong)."""

    @abstractmethod
    def spec(self, layer: nn.Module) -> LayerSpec:
        """The JSON-able spec of ``layer`` (inverse of ``build``, weights aside)."""

    @abstractmethod
    def build(self, spec: LayerSpec) -> nn.Module:
        """A fresh layer from its spec (weights initialized by torch)."""

    @abstractmethod
    def onnx_export(self, layer: nn.Module, prefix: str, input_name: str, output_name: str
                    ) -> OnnxGraphPart:
        """The ONNX node(s) computing ``layer`` from ``input_name`` into ``output_name``, and
        the initializers they read (named ``prefix.*``)."""

    def onnx_import(self, node: onnx.NodeProto, attrs: dict[str, object],
                    weights: dict[str, torch.Tensor]) -> nn.Module:
        """The layer of one ONNX node of a type in ``onnx_ops``; ``attrs``: its attributes,
        ``weights``: the graph's initializers and constants by name."""
        raise RingcertError(f"unsupported ONNX op {node.op_type!r}")

    def affine_map(self, layer: nn.Module, shape: tuple[int, ...]) -> AffineMap:
        """The layer as a sparse matrix and bias on flat inputs of ``shape`` (affine layers;
        the MILP encodes the others itself)."""
        raise RingcertError(f"{type(layer).__name__} is not affine: it has no matrix for the MILP")

    def ibp(self, layer: nn.Module, lower: torch.Tensor, upper: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sound elementwise bounds on the layer output for one input in ``[lower, upper]``
        (unbatched, parameters detached: the verifiers' IBP)."""
        low, up = self.interval(layer, lower[None], upper[None], live=False)
        return low[0], up[0]

    @abstractmethod
    def interval(self, layer: nn.Module, lower: torch.Tensor, upper: torch.Tensor, *,
                 live: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Sound elementwise bounds on the layer output for a batch of boxes ``[lower,
        upper]`` (B, *in_shape). ``live``: the parameters keep their gradients (certified
        training); otherwise they are detached."""

    @abstractmethod
    def backward(self, layer: nn.Module, coef: torch.Tensor, lower: torch.Tensor,
                 upper: torch.Tensor, *, alpha: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A', bias)`` with ``A . layer(x) >= A' . x + bias`` for x in ``[lower, upper]``.

        ``alpha``: the free parameters of the layer's relaxation as optimized by
        alpha-CROWN (see ``initial_alpha``); None: CROWN's choice.
        """

    def initial_alpha(self, layer: nn.Module, lower: torch.Tensor, upper: torch.Tensor
                      ) -> torch.Tensor | None:
        """The relaxation's free parameters at CROWN's choice, every value in [0, 1] giving
        a valid relaxation (alpha-CROWN optimizes them); None: the layer has none."""
        return None


def weight_and_bias(layer: nn.Module, *, live: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A convolution's or linear layer's weight and bias (zeros when it has none), detached
    unless ``live`` (certified training differentiates through them)."""
    weight = layer.weight if live else layer.weight.detach()
    if layer.bias is None:
        return weight, weight.new_zeros(weight.shape[0])
    return weight, layer.bias if live else layer.bias.detach()


def interval_affine(center_out: torch.Tensor, radius_out: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds from the image of the centre and the radius pushed through ``|W|``."""
    return center_out - radius_out, center_out + radius_out


def pair(value: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    """A 2-d size (kernel, stride, padding) from torch's or a spec's int-or-pair form."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def initializer(name: str, value: torch.Tensor | np.ndarray) -> onnx.TensorProto:
    """An ONNX initializer holding ``value``."""
    from onnx import numpy_helper

    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def symmetric_pads(node: onnx.NodeProto, attrs: dict[str, object]) -> tuple[int, int]:
    """``(pad_h, pad_w)`` of an ONNX Conv / pool node; a ``RingcertError`` for auto_pad or
    different padding at the two ends (torch has no such layer)."""
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise RingcertError(f"unsupported auto_pad in ONNX node {node.name or node.op_type}")
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise RingcertError(f"asymmetric padding in ONNX node {node.name or node.op_type}")
    return int(pads[0]), int(pads[1])
