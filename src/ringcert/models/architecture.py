"""The layer vocabulary ringcert verifies, and the seed's DOUBLE-MNIST classifier.

A network is a ``torch.nn.Sequential`` of the supported layers below. It is described
by a JSON-able *spec* (a list of layer dicts) so that a model file can rebuild it
without executing code. The default classifier follows the seed's figure 2: two
convolutions, one max-pool, one fully connected layer, ReLU. Its sizes come from the
measurements in ``shared/REFERENCES.md``: Conv(1,16,8,s4,p2) - Conv(16,32,5,s1,p2) -
MaxPool 4 - FC(512,10), 12,288 ReLUs, accurate and small enough to verify on a CPU.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ringcert.errors import RingcertError

LayerSpec = dict[str, Any]

SEED_CLASSIFIER: list[LayerSpec] = [
    {"op": "conv2d", "in": 1, "out": 16, "kernel": 8, "stride": 4, "padding": 2},
    {"op": "relu"},
    {"op": "conv2d", "in": 16, "out": 32, "kernel": 5, "stride": 1, "padding": 2},
    {"op": "relu"},
    {"op": "maxpool2d", "kernel": 4, "stride": 4},
    {"op": "flatten"},
    {"op": "linear", "in": 512, "out": 10},
]
INPUT_SHAPE = (1, 64, 64)
NUM_CLASSES = 10


def pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def build_layer(spec: LayerSpec) -> nn.Module:
    """One torch layer from its spec; a ``RingcertError`` for an unknown op."""
    op = spec.get("op")
    if op == "conv2d":
        return nn.Conv2d(spec["in"], spec["out"], pair(spec["kernel"]),
                         stride=pair(spec.get("stride", 1)), padding=pair(spec.get("padding", 0)))
    if op == "linear":
        return nn.Linear(spec["in"], spec["out"])
    if op == "relu":
        return nn.ReLU()
    if op == "maxpool2d":
        return nn.MaxPool2d(pair(spec["kernel"]), stride=pair(spec.get("stride", spec["kernel"])),
                            padding=pair(spec.get("padding", 0)))
    if op == "avgpool2d":
        return nn.AvgPool2d(pair(spec["kernel"]), stride=pair(spec.get("stride", spec["kernel"])),
                            padding=pair(spec.get("padding", 0)))
    if op == "flatten":
        return nn.Flatten()
    if op == "batchnorm2d":
        return nn.BatchNorm2d(spec["channels"], eps=spec.get("eps", 1e-5))
    raise RingcertError(f"unsupported layer in model spec: {op!r}")


def build(spec: list[LayerSpec]) -> nn.Sequential:
    return nn.Sequential(*(build_layer(layer) for layer in spec))


def spec_of(layer: nn.Module) -> LayerSpec:
    """The spec of a supported torch layer (inverse of ``build_layer``)."""
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or layer.dilation != (1, 1) or layer.bias is None:
            raise RingcertError("unsupported Conv2d: groups, dilation or missing bias")
        return {"op": "conv2d", "in": layer.in_channels, "out": layer.out_channels,
                "kernel": list(layer.kernel_size), "stride": list(layer.stride),
                "padding": list(layer.padding)}
    if isinstance(layer, nn.Linear):
        return {"op": "linear", "in": layer.in_features, "out": layer.out_features}
    if isinstance(layer, nn.ReLU):
        return {"op": "relu"}
    if isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
        name = "maxpool2d" if isinstance(layer, nn.MaxPool2d) else "avgpool2d"
        return {"op": name, "kernel": list(pair(layer.kernel_size)),
                "stride": list(pair(layer.stride)), "padding": list(pair(layer.padding))}
    if isinstance(layer, nn.Flatten):
        return {"op": "flatten"}
    if isinstance(layer, nn.BatchNorm2d):
        return {"op": "batchnorm2d", "channels": layer.num_features, "eps": layer.eps}
    raise RingcertError(f"unsupported layer: {type(layer).__name__}")


def spec_of_model(model: nn.Sequential) -> list[LayerSpec]:
    return [spec_of(layer) for layer in model]


def seed_classifier() -> nn.Sequential:
    return build(SEED_CLASSIFIER)


def relu_count(model: nn.Sequential, input_shape: tuple[int, ...] = INPUT_SHAPE) -> int:
    """Number of ReLU units for one input of ``input_shape``."""
    import torch

    count = 0
    z = torch.zeros(1, *input_shape)
    with torch.no_grad():
        for layer in model:
            z = layer(z)
            if isinstance(layer, nn.ReLU):
                count += z[0].numel()
    return count
