"""Every supported layer type through the registry: its spec rebuilds the same layer, its
ONNX node imports back to the same function, its MILP matrix is its forward pass, and
unsupported layers or parameters are one-line errors."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.registry import LAYER_TYPES, by_onnx_op, by_op, layer_type
from ringcert.models.onnx_io import import_onnx
from tests.fixtures import random_bn


def _samples() -> list[tuple[nn.Module, tuple[int, ...]]]:
    """One layer of every supported type, with non-default parameters, and an input shape."""
    torch.manual_seed(0)
    return [
        (nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), (2, 7, 6)),
        (nn.Linear(5, 4), (5,)),
        (nn.ReLU(), (2, 3, 3)),
        (nn.MaxPool2d(3, stride=2, padding=1), (2, 7, 7)),
        (nn.AvgPool2d(3, stride=2, padding=1), (2, 7, 7)),
        (nn.Flatten(), (2, 3, 3)),
        (random_bn(2, torch.Generator().manual_seed(0)), (2, 4, 4)),
    ]


def _affine_samples() -> list[tuple[nn.Module, tuple[int, ...]]]:
    """The affine layers in the forms the MILP encodes (no padding for average pooling)."""
    torch.manual_seed(1)
    return [
        (nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0)), (2, 7, 6)),
        (nn.Conv2d(1, 2, 4, stride=3, padding=2, bias=False), (1, 8, 8)),
        (nn.Linear(5, 4), (5,)),
        (nn.AvgPool2d(2, stride=1), (2, 5, 4)),
        (nn.Flatten(), (2, 3, 3)),
        (random_bn(2, torch.Generator().manual_seed(1)), (2, 4, 4)),
    ]


def _ids(samples: list[tuple[nn.Module, tuple[int, ...]]]) -> list[str]:
    return [type(layer).__name__ for layer, _ in samples]


def _input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn((4, *shape), generator=torch.Generator().manual_seed(seed))


def test_samples_cover_every_layer_type() -> None:
    assert {type(layer) for layer, _ in _samples()} == {kind.torch_type for kind in LAYER_TYPES}


def test_lookups_agree() -> None:
    for kind in LAYER_TYPES:
        assert by_op(kind.op) is kind
        assert all(by_onnx_op(name) is kind for name in kind.onnx_ops)
    assert len({kind.op for kind in LAYER_TYPES}) == len(LAYER_TYPES)


@pytest.mark.parametrize(("layer", "shape"), _samples(), ids=_ids(_samples()))
def test_spec_round_trip(layer: nn.Module, shape: tuple[int, ...]) -> None:
    """spec -> build -> spec is the identity, the spec is JSON, and the rebuilt layer with
    the original's weights computes the same outputs."""
    kind = layer_type(layer)
    spec = kind.spec(layer)
    assert json.loads(json.dumps(spec)) == spec
    rebuilt = by_op(spec["op"]).build(spec)
    assert type(rebuilt) is type(layer)
    assert layer_type(rebuilt).spec(rebuilt) == spec
    rebuilt.load_state_dict(layer.state_dict())
    x = _input(shape)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), layer.eval()(x))


def _single_layer_model(layer: nn.Module, shape: tuple[int, ...]) -> onnx.ModelProto:
    nodes, inits = layer_type(layer).onnx_export(layer, "l0", "input", "output")
    with torch.no_grad():
        out_shape = layer.eval()(torch.zeros(1, *shape)).shape[1:]
    graph = helper.make_graph(
        nodes, "layer",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *shape])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["N", *out_shape])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)  # includes shape inference
    return model


@pytest.mark.parametrize(("layer", "shape"), _samples(), ids=_ids(_samples()))
def test_onnx_round_trip(tmp_path, layer: nn.Module, shape: tuple[int, ...]) -> None:
    """Export -> import gives one layer of the same type with the same outputs."""
    path = tmp_path / "layer.onnx"
    onnx.save(_single_layer_model(layer, shape), str(path))
    back = import_onnx(path)
    assert [type(module) for module in back] == [type(layer)]
    x = _input(shape, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(back(x), layer.eval()(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("layer", "shape"), _samples(), ids=_ids(_samples()))
def test_onnx_export_matches_onnxruntime(layer: nn.Module, shape: tuple[int, ...]) -> None:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(_single_layer_model(layer, shape).SerializeToString())
    x = _input(shape, seed=2)
    with torch.no_grad():
        expected = layer.eval()(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("layer", "shape"), _affine_samples(), ids=_ids(_affine_samples()))
def test_affine_map_is_the_forward_pass(layer: nn.Module, shape: tuple[int, ...]) -> None:
    kind = layer_type(layer)
    assert kind.affine
    matrix, bias, out_shape = kind.affine_map(layer, shape)
    exact = copy.deepcopy(layer).double().eval()
    x = _input(shape, seed=3).double()
    with torch.no_grad():
        expected = exact(x)
    assert tuple(expected.shape[1:]) == out_shape
    found = x.flatten(1).numpy() @ matrix.T.toarray() + bias
    np.testing.assert_allclose(found, expected.flatten(1).numpy(), rtol=1e-6, atol=1e-6)


def test_nonaffine_layers_have_no_affine_map() -> None:
    for layer, shape in _samples():
        kind = layer_type(layer)
        if not kind.affine:
            with pytest.raises(RingcertError, match=type(layer).__name__):
                kind.affine_map(layer, shape)


def _one_line(error: pytest.ExceptionInfo[RingcertError]) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def test_unsupported_layer_is_one_line() -> None:
    with pytest.raises(RingcertError) as error:
        layer_type(nn.Sigmoid())
    assert _one_line(error) == "unsupported layer: Sigmoid"
    with pytest.raises(RingcertError) as error:
        layer_type(nn.Sigmoid(), "bound propagation")
    assert _one_line(error) == "unsupported layer for bound propagation: Sigmoid"
    with pytest.raises(RingcertError) as error:
        by_op("sigmoid")
    assert _one_line(error) == "unsupported layer in model spec: 'sigmoid'"
    with pytest.raises(RingcertError, match="None"):
        by_op(None)
    assert by_onnx_op("Sigmoid") is None


class _MyReLU(nn.ReLU):
    pass


def test_subclasses_are_not_their_base_type() -> None:
    """A subclass may compute something else: it is unsupported, not taken for its base."""
    with pytest.raises(RingcertError, match="_MyReLU"):
        layer_type(_MyReLU())


UNSUPPORTED = [
    (nn.Conv2d(2, 2, 3, groups=2), "Conv2d"),
    (nn.Conv2d(1, 2, 3, dilation=2), "Conv2d"),
    (nn.Conv2d(1, 2, 3, padding="same"), "Conv2d"),
    (nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), "Conv2d"),
    (nn.MaxPool2d(2, ceil_mode=True), "MaxPool2d"),
    (nn.MaxPool2d(2, dilation=2), "MaxPool2d"),
    (nn.AvgPool2d(2, divisor_override=3), "AvgPool2d"),
    (nn.AvgPool2d(3, padding=1, count_include_pad=False), "AvgPool2d"),
    (nn.Flatten(start_dim=0), "Flatten"),
    (nn.BatchNorm2d(2, track_running_stats=False), "BatchNorm2d"),
]


@pytest.mark.parametrize(("layer", "name"), UNSUPPORTED,
                         ids=[f"{name}-{i}" for i, (_, name) in enumerate(UNSUPPORTED)])
def test_unsupported_parameters_are_one_line(layer: nn.Module, name: str) -> None:
    """``check`` rejects them, and so does every use that would otherwise silently change
    the layer (its spec, its ONNX node)."""
    kind = layer_type(layer)
    for use in (kind.check, kind.spec, lambda module: kind.onnx_export(module, "l0", "in", "out")):
        with pytest.raises(RingcertError) as error:
            use(layer)
        assert name in _one_line(error)


def test_conv_spec_needs_a_bias() -> None:
    with pytest.raises(RingcertError, match="bias"):
        layer_type(nn.Conv2d(1, 2, 3, bias=False)).spec(nn.Conv2d(1, 2, 3, bias=False))


def test_layers_import_neither_models_nor_verify() -> None:
    """The layering rule, and the heavy optional imports (onnx, scipy.sparse) stay lazy."""
    code = ("import sys, ringcert.layers.registry; "
            "bad = [m for m in sys.modules if m.startswith(('ringcert.models', 'ringcert.verify'))"
            " or m in ('onnx', 'scipy.sparse')]; print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
