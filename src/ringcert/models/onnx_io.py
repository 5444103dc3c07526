"""ONNX export and import for the supported layer vocabulary.

Export writes the ``nn.Sequential`` node by node with ``onnx.helper`` (no tracing, so it
does not depend on torch's exporter). Import maps Conv, Relu, MaxPool, AveragePool,
Flatten/Reshape, Gemm, MatMul+Add and BatchNormalization back to the same torch module
form; any other op is a one-line ``RingcertError`` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from ringcert.errors import RingcertError
from ringcert.models.architecture import INPUT_SHAPE, pair

OPSET = 13


def _init(name: str, value: torch.Tensor | np.ndarray) -> onnx.TensorProto:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def export_onnx(network: nn.Sequential, path: str | Path, *,
                input_shape: tuple[int, ...] = INPUT_SHAPE) -> None:
    """Write ``network`` as an ONNX graph with input ``input`` (N, *input_shape) -> ``output``."""
    nodes, inits = [], []
    current = "input"
    for index, layer in enumerate(network):
        out = "output" if index == len(network) - 1 else f"t{index}"
        p = f"l{index}"
        if isinstance(layer, nn.Conv2d):
            inits += [_init(f"{p}.w", layer.weight), _init(f"{p}.b", layer.bias)]
            pad = list(layer.padding)
            nodes.append(helper.make_node("Conv", [current, f"{p}.w", f"{p}.b"], [out],
                                          kernel_shape=list(layer.kernel_size),
                                          strides=list(layer.stride), pads=pad + pad))
        elif isinstance(layer, nn.Linear):
            inits += [_init(f"{p}.w", layer.weight), _init(f"{p}.b", layer.bias)]
            nodes.append(helper.make_node("Gemm", [current, f"{p}.w", f"{p}.b"], [out], transB=1))
        elif isinstance(layer, nn.ReLU):
            nodes.append(helper.make_node("Relu", [current], [out]))
        elif isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
            pad = list(pair(layer.padding))
            op = "MaxPool" if isinstance(layer, nn.MaxPool2d) else "AveragePool"
            extra = {} if op == "MaxPool" else {"count_include_pad": int(layer.count_include_pad)}
            nodes.append(helper.make_node(op, [current], [out],
                                          kernel_shape=list(pair(layer.kernel_size)),
                                          strides=list(pair(layer.stride)), pads=pad + pad, **extra))
        elif isinstance(layer, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [current], [out], axis=1))
        elif isinstance(layer, nn.BatchNorm2d):
            inits += [_init(f"{p}.scale", layer.weight), _init(f"{p}.bias", layer.bias),
                      _init(f"{p}.mean", layer.running_mean), _init(f"{p}.var", layer.running_var)]
            nodes.append(helper.make_node(
                "BatchNormalization",
                [current, f"{p}.scale", f"{p}.bias", f"{p}.mean", f"{p}.var"], [out],
                epsilon=float(layer.eps)))
        else:
            raise RingcertError(f"cannot export layer {type(layer).__name__} to ONNX")
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


def _symmetric_pads(node: onnx.NodeProto, attrs: dict[str, object]) -> tuple[int, int]:
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise RingcertError(f"unsupported auto_pad in ONNX node {node.name or node.op_type}")
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise RingcertError(f"asymmetric padding in ONNX node {node.name or node.op_type}")
    return int(pads[0]), int(pads[1])


def import_onnx(path: str | Path) -> nn.Sequential:
    """A chain-shaped ONNX classifier as an ``nn.Sequential`` of supported layers."""
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
    layers: list[nn.Module] = []
    pending_matmul: nn.Linear | None = None
    for node in graph.node:
        attrs = _attrs(node)
        op = node.op_type
        if op == "Constant":
            continue
        if pending_matmul is not None and op != "Add":
            layers.append(pending_matmul)
            pending_matmul = None
        if op == "Conv":
            w = weights[node.input[1]]
            b = weights[node.input[2]] if len(node.input) > 2 else torch.zeros(w.shape[0])
            if attrs.get("group", 1) != 1 or list(attrs.get("dilations", [1, 1])) != [1, 1]:
                raise RingcertError("unsupported ONNX Conv: group or dilation other than 1")
            conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]),
                             stride=tuple(attrs.get("strides", [1, 1])),
                             padding=_symmetric_pads(node, attrs))
            conv.weight.data, conv.bias.data = w.float(), b.float()
            layers.append(conv)
        elif op == "Relu":
            layers.append(nn.ReLU())
        elif op in ("MaxPool", "AveragePool"):
            kernel = tuple(attrs["kernel_shape"])
            stride = tuple(attrs.get("strides", kernel))
            pad = _symmetric_pads(node, attrs)
            if op == "MaxPool":
                layers.append(nn.MaxPool2d(kernel, stride=stride, padding=pad))
            else:
                layers.append(nn.AvgPool2d(kernel, stride=stride, padding=pad,
                                           count_include_pad=bool(attrs.get("count_include_pad", 0))))
        elif op in ("Flatten", "Reshape"):
            layers.append(nn.Flatten())
        elif op == "Gemm":
            w = weights[node.input[1]].float()
            if attrs.get("transA", 0):
                raise RingcertError("unsupported ONNX Gemm with transA")
            w = w if attrs.get("transB", 0) else w.T
            w = w * float(attrs.get("alpha", 1.0))
            b = (weights[node.input[2]].float() * float(attrs.get("beta", 1.0))
                 if len(node.input) > 2 else torch.zeros(w.shape[0]))
            linear = nn.Linear(w.shape[1], w.shape[0])
            linear.weight.data, linear.bias.data = w.contiguous(), b.reshape(-1)
            layers.append(linear)
        elif op == "MatMul":
            w = weights[node.input[1]].float().T.contiguous()
            pending_matmul = nn.Linear(w.shape[1], w.shape[0])
            pending_matmul.weight.data, pending_matmul.bias.data = w, torch.zeros(w.shape[0])
        elif op == "Add" and pending_matmul is not None:
            bias_name = next(n for n in node.input if n in weights)
            pending_matmul.bias.data = weights[bias_name].float().reshape(-1)
            layers.append(pending_matmul)
            pending_matmul = None
        elif op == "BatchNormalization":
            scale, bias, mean, var = (weights[n].float() for n in node.input[1:5])
            norm = nn.BatchNorm2d(scale.shape[0], eps=float(attrs.get("epsilon", 1e-5)))
            norm.weight.data, norm.bias.data = scale, bias
            norm.running_mean.data, norm.running_var.data = mean, var
            layers.append(norm)
        else:
            raise RingcertError(f"unsupported ONNX op {op!r} in {path}")
    if pending_matmul is not None:
        layers.append(pending_matmul)
    return nn.Sequential(*layers).eval()
