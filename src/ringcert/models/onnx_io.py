"""ONNX export and import for the supported layer vocabulary.

Export writes the ``nn.Sequential`` node by node with ``onnx.helper`` (no tracing, so it
does not depend on torch's exporter), each layer's nodes from its ``LayerType``. Import
maps every node whose op type a layer type claims (Conv, Relu, MaxPool, AveragePool,
Flatten/Reshape, Gemm, BatchNormalization) back to the same torch module form through
that type; the patterns that span several nodes (Constant nodes, MatMul followed by Add
as one Linear) are handled here. Any other op is a one-line ``RingcertError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from ringcert.errors import RingcertError
from ringcert.layers.registry import by_onnx_op, layer_type
from ringcert.models.architecture import INPUT_SHAPE

OPSET = 13


def export_onnx(network: nn.Sequential, path: str | Path, *,
                input_shape: tuple[int, ...] = INPUT_SHAPE) -> None:
    """Write ``network`` as an ONNX graph with input ``input`` (N, *input_shape) -> ``output``."""
    nodes, inits = [], []
    current = "input"
    for index, layer in enumerate(network):
        out = "output" if index == len(network) - 1 else f"t{index}"
        layer_nodes, layer_inits = layer_type(layer, "ONNX export").onnx_export(
            layer, f"l{index}", current, out)
        nodes += layer_nodes
        inits += layer_inits
        current = out
    with torch.no_grad():
        outputs = network(torch.zeros(1, *input_shape)).shape[1]
    graph = helper.make_graph(
        nodes, "ringcert",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["N", outputs])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ringcert")
    onnx.checker.check_model(model)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


MONOTONE_OUTPUTS = ("Sigmoid", "Softmax")
"""Final activations a multi-label classifier is often exported with. Both keep the order of
the logits (Sigmoid elementwise, Softmax over the class axis), so the top-k set is that of
the logits before them: the network is verified on those logits."""


@dataclass(frozen=True, eq=False)
class OnnxModel:
    """An imported network and the final monotone activation dropped from it, if any."""

    network: nn.Sequential
    dropped_output: str | None = None


def import_onnx(path: str | Path) -> nn.Sequential:
    """A chain-shaped ONNX classifier as an ``nn.Sequential`` of supported layers."""
    return read_onnx(path).network


def _final_activation(graph: onnx.GraphProto, path: str | Path) -> str | None:
    """The op of the last node if it is a monotone output activation over the classes."""
    nodes = [node for node in graph.node if node.op_type != "Constant"]
    if not nodes or nodes[-1].op_type not in MONOTONE_OUTPUTS:
        return None
    last = nodes[-1]
    if last.op_type == "Softmax" and _attrs(last).get("axis", -1) not in (1, -1):
        raise RingcertError(f"{path} ends in a Softmax over axis {_attrs(last)['axis']}, "
                            "not over the classes")
    return last.op_type


def read_onnx(path: str | Path) -> OnnxModel:
    """``import_onnx``, with a final Sigmoid or Softmax dropped (see ``MONOTONE_OUTPUTS``)."""
    try:
        model = onnx.load(str(path))
    except Exception as error:  # onnx raises many types for a bad file
        raise RingcertError(f"cannot read ONNX file {path}: {str(error).splitlines()[0]}") from None
    graph = model.graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            weights[node.output[0]] = torch.from_numpy(
                numpy_helper.to_array(_attrs(node)["value"]).copy())
    dropped = _final_activation(graph, path)
    body = [node for node in graph.node if node.op_type != "Constant"][: -1 if dropped else None]
    layers: list[nn.Module] = []
    pending_matmul: nn.Linear | None = None
    for node in body:
        attrs = _attrs(node)
        op = node.op_type
        if op == "Constant":
            continue
        if pending_matmul is not None and op != "Add":
            layers.append(pending_matmul)
            pending_matmul = None
        if op == "MatMul":
            w = weights[node.input[1]].float().T.contiguous()
            pending_matmul = nn.Linear(w.shape[1], w.shape[0])
            pending_matmul.weight.data, pending_matmul.bias.data = w, torch.zeros(w.shape[0])
        elif op == "Add" and pending_matmul is not None:
            bias_name = next(n for n in node.input if n in weights)
            pending_matmul.bias.data = weights[bias_name].float().reshape(-1)
            layers.append(pending_matmul)
            pending_matmul = None
        else:
            kind = by_onnx_op(op)
            if kind is None:
                raise RingcertError(f"unsupported ONNX op {op!r} in {path}")
            layers.append(kind.onnx_import(node, attrs, weights))
    if pending_matmul is not None:
        layers.append(pending_matmul)
    return OnnxModel(network=nn.Sequential(*layers).eval(), dropped_output=dropped)
