"""Networks as JSON-able specs, and the seed's DOUBLE-MNIST classifier.

A network is a ``torch.nn.Sequential`` of the supported layers (``ringcert.layers``,
whose types own each layer's spec). It is described by a JSON-able *spec* (a list of
layer dicts) so that a model file can rebuild it without executing code. The default
classifier follows the seed's figure 2: two convolutions, one max-pool, one fully
connected layer, ReLU, sized to be accurate and small enough to verify on a CPU
(docs/design.md section 4.3): Conv(1,16,8,s4,p2) - Conv(16,32,5,s1,p2) - MaxPool 4 -
FC(512,10), 12,288 ReLUs. For images of ``N`` objects (N 32-pixel cells, 64 x 32N) the same
layers see a wider canvas and only the fully connected layer grows (``seed_spec(N)``: FC(256N,
10); 18,432 ReLUs for N = 3).
"""

from __future__ import annotations

from torch import nn

from ringcert.layers.base import LayerSpec
from ringcert.layers.registry import by_op, layer_type

NUM_CLASSES = 10


def seed_spec(objects: int = 2) -> list[LayerSpec]:
    """The seed's figure-2 classifier for images of ``objects`` 32-pixel cells (64 x 32N)."""
    return [
        {"op": "conv2d", "in": 1, "out": 16, "kernel": 8, "stride": 4, "padding": 2},
        {"op": "relu"},
        {"op": "conv2d", "in": 16, "out": 32, "kernel": 5, "stride": 1, "padding": 2},
        {"op": "relu"},
        {"op": "maxpool2d", "kernel": 4, "stride": 4},
        {"op": "flatten"},
        {"op": "linear", "in": 256 * objects, "out": NUM_CLASSES},
    ]


def input_shape(objects: int = 2) -> tuple[int, int, int]:
    """The (C, H, W) of an image of ``objects`` 32-pixel cells."""
    return (1, 64, 32 * objects)


SEED_CLASSIFIER: list[LayerSpec] = seed_spec(2)
INPUT_SHAPE = input_shape(2)


def build_layer(spec: LayerSpec) -> nn.Module:
    """One torch layer from its spec; a ``RingcertError`` for an unknown op."""
    return by_op(spec.get("op")).build(spec)


def build(spec: list[LayerSpec]) -> nn.Sequential:
    return nn.Sequential(*(build_layer(layer) for layer in spec))


def spec_of(layer: nn.Module) -> LayerSpec:
    """The spec of a supported torch layer (inverse of ``build_layer``)."""
    return layer_type(layer).spec(layer)


def spec_of_model(model: nn.Sequential) -> list[LayerSpec]:
    return [spec_of(layer) for layer in model]


def seed_classifier(objects: int = 2) -> nn.Sequential:
    return build(seed_spec(objects))


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
