"""Which bound rules apply to which layer type (the supported vocabulary of DESIGN.md 2)."""

from __future__ import annotations

from types import MappingProxyType

from torch import nn

from ringcert.errors import RingcertError
from ringcert.verify.bounds.avgpool import AvgPoolBounds
from ringcert.verify.bounds.batchnorm import BatchNormBounds
from ringcert.verify.bounds.conv import ConvBounds
from ringcert.verify.bounds.flatten import FlattenBounds
from ringcert.verify.bounds.linear import LinearBounds
from ringcert.verify.bounds.maxpool import MaxPoolBounds
from ringcert.verify.bounds.operator import OperatorBounds
from ringcert.verify.bounds.relu import ReluBounds

OPERATORS: MappingProxyType[type[nn.Module], OperatorBounds] = MappingProxyType({
    nn.Linear: LinearBounds(),
    nn.Conv2d: ConvBounds(),
    nn.ReLU: ReluBounds(),
    nn.MaxPool2d: MaxPoolBounds(),
    nn.AvgPool2d: AvgPoolBounds(),
    nn.Flatten: FlattenBounds(),
    nn.BatchNorm2d: BatchNormBounds(),
})


def operator_for(layer: nn.Module) -> OperatorBounds:
    """The bound rules of ``layer``; a ``RingcertError`` for an unsupported layer."""
    rules = OPERATORS.get(type(layer))
    if rules is None:
        raise RingcertError(f"unsupported layer for bound propagation: {type(layer).__name__}")
    return rules
