"""Bounds through ``nn.Flatten`` (a reshape)."""

from __future__ import annotations

from torch import nn

from ringcert.errors import RingcertError
from ringcert.verify.bounds.operator import OperatorBounds


def _check(layer: nn.Flatten) -> None:
    if layer.start_dim != 1 or layer.end_dim != -1:
        raise RingcertError("only Flatten(start_dim=1, end_dim=-1) is supported")


class FlattenBounds(OperatorBounds):
    elementwise = True

    def ibp(self, layer, lower, upper):
        _check(layer)
        return lower.reshape(-1), upper.reshape(-1)

    def backward(self, layer, coef, lower, upper, *, alpha=None):
        _check(layer)
        return coef.reshape(coef.shape[0], *lower.shape), coef.new_zeros(coef.shape[0])
