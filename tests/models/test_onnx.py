import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from torch import nn

from ringcert.errors import RingcertError
from ringcert.models.architecture import seed_classifier
from ringcert.models.modelfile import load_model
from ringcert.models.onnx_io import export_onnx, import_onnx

ort = pytest.importorskip("onnxruntime")


def _every_op_network() -> nn.Sequential:
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(4)
    norm.running_mean.uniform_(-0.5, 0.5)
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.uniform_(0.5, 1.5)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1), norm, nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(6 * 2 * 2, 10)).eval()


@pytest.mark.parametrize("build", [seed_classifier, _every_op_network])
def test_round_trip_matches_onnxruntime(tmp_path, build):
    network = build().eval()
    shape = (1, 64, 64) if build is seed_classifier else (1, 16, 16)
    path = tmp_path / "m.onnx"
    export_onnx(network, path, input_shape=shape)
    x = np.random.default_rng(0).random((5, *shape), dtype=np.float32)
    expected = network(torch.from_numpy(x)).detach().numpy()
    session = ort.InferenceSession(str(path))
    assert np.allclose(session.run(None, {"input": x})[0], expected, atol=1e-5)
    back = import_onnx(path)
    assert np.allclose(back(torch.from_numpy(x)).detach().numpy(), expected, atol=1e-5)


def test_matmul_add_import(tmp_path):
    w = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    b = np.arange(3, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        initializer=[onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    x = np.ones((1, 6), dtype=np.float32)
    assert np.allclose(import_onnx(path)(torch.from_numpy(x)).detach().numpy(), x @ w + b, atol=1e-5)


def test_unsupported_op_is_named(tmp_path):
    """A Sigmoid inside the network (not the final activation) is an unsupported op."""
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "s.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(RingcertError, match="Sigmoid"):
        import_onnx(path)


def test_load_model_by_onnx_path(tmp_path):
    path = tmp_path / "seed.onnx"
    export_onnx(seed_classifier().eval(), path)
    assert isinstance(load_model(path).network, nn.Sequential)
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(RingcertError, match="cannot read ONNX"):
        load_model(tmp_path / "bad.onnx")


def _with_final(path, op: str, **attrs) -> None:
    """Append ``op`` after the exported graph's output (as multi-label exports often do)."""
    model = onnx.load(str(path))
    graph = model.graph
    graph.node[-1].output[0] = "logits"
    graph.node.append(helper.make_node(op, ["logits"], ["output"], **attrs))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.mark.parametrize(("op", "attrs"), [("Sigmoid", {}), ("Softmax", {"axis": 1}), ("Softmax", {})])
def test_a_final_sigmoid_or_softmax_is_dropped_and_said(tmp_path, op, attrs) -> None:
    network = seed_classifier().eval()
    path = tmp_path / "multilabel.onnx"
    export_onnx(network, path)
    _with_final(path, op, **attrs)
    x = np.random.default_rng(1).random((4, 1, 64, 64), dtype=np.float32)
    probabilities = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    loaded = load_model(path)
    logits = loaded.network(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(logits, network(torch.from_numpy(x)).detach().numpy(), atol=1e-5)
    # the same top-2 set as the exported probabilities: verifying the logits is the same question
    top = np.sort(np.argsort(-logits, 1)[:, :2], 1)
    assert (top == np.sort(np.argsort(-probabilities, 1)[:, :2], 1)).all()
    assert loaded.metadata["verified_output"] == f"logits before the final {op}"


def test_a_softmax_over_another_axis_is_refused(tmp_path) -> None:
    path = tmp_path / "odd.onnx"
    export_onnx(seed_classifier().eval(), path)
    _with_final(path, "Softmax", axis=0)
    with pytest.raises(RingcertError, match="Softmax over axis 0"):
        load_model(path)
