"""Which ``LayerType`` handles a layer: by torch type, by model-spec op name, by ONNX op type
(the supported vocabulary of docs/design.md section 2.6). Adding a layer type is one module and one entry
in ``LAYER_TYPES``; every lookup below follows from it.

Lookups by torch type match the exact class (a subclass may change ``forward``)."""

from __future__ import annotations

from types import MappingProxyType

from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.avgpool import AvgPoolType
from ringcert.layers.base import LayerType
from ringcert.layers.batchnorm import BatchNormType
from ringcert.layers.conv import Conv2dType
from ringcert.layers.flatten import FlattenType
from ringcert.layers.linear import LinearType
from ringcert.layers.maxpool import MaxPoolType
from ringcert.layers.relu import ReluType

LAYER_TYPES: tuple[LayerType, ...] = (Conv2dType(), LinearType(), ReluType(), MaxPoolType(),
                                      AvgPoolType(), FlattenType(), BatchNormType())
"""Every supported layer type, one (stateless) instance each."""

_BY_TORCH_TYPE: MappingProxyType[type[nn.Module], LayerType] = MappingProxyType(
    {kind.torch_type: kind for kind in LAYER_TYPES})
_BY_OP: MappingProxyType[str, LayerType] = MappingProxyType({kind.op: kind for kind in LAYER_TYPES})
_BY_ONNX_OP: MappingProxyType[str, LayerType] = MappingProxyType(
    {name: kind for kind in LAYER_TYPES for name in kind.onnx_ops})


def layer_type(layer: nn.Module, purpose: str | None = None) -> LayerType:
    """The type of ``layer``; a one-line ``RingcertError`` for an unsupported layer, saying
    what it was needed ``for`` when ``purpose`` is given (e.g. "bound propagation")."""
    kind = _BY_TORCH_TYPE.get(type(layer))
    if kind is None:
        needed = "" if purpose is None else f" for {purpose}"
        raise RingcertError(f"unsupported layer{needed}: {type(layer).__name__}")
    return kind


def by_op(op: object) -> LayerType:
    """The type named ``op`` in a model spec; a one-line ``RingcertError`` for an unknown one."""
    kind = _BY_OP.get(op) if isinstance(op, str) else None
    if kind is None:
        raise RingcertError(f"unsupported layer in model spec: {op!r}")
    return kind


def by_onnx_op(op_type: str) -> LayerType | None:
    """The type that one ONNX node of ``op_type`` imports as; None when no single node maps
    to a layer (the importer handles multi-node patterns and reports the rest)."""
    return _BY_ONNX_OP.get(op_type)
