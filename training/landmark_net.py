"""MediaPipe's FaceMesh and iris ONNX graphs as frozen torch modules, for losses inside the training graph.

The graphs ``facegraft setup`` prepares (``$FACEGRAFT_HOME/models``, converted from TFLite) use a
handful of operators: Conv (some with TFLite's "same" padding written as an asymmetric pad),
PRelu, Add, MaxPool, a channel Pad (the residual shortcut where a block widens), and for the
iris model's outputs Transpose and Reshape. ``OnnxGraph`` runs exactly those, node by node in
the file's order, with any batch size (the files fix it at 1; a ``Reshape`` to ``[1, -1]``
keeps the batch instead). Anything else is refused by name, so a changed model file fails
loudly rather than computing something else.

The weights are buffers, not parameters: they never reach an optimizer, take no gradient and
are not part of the face model's checkpoint; gradients flow through the graph to its *input*,
which is what a landmark loss needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Union

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from facegraft.inference import assets
from facegraft.inference.errors import FaceGraftError

SUPPORTED = ("Conv", "PRelu", "Add", "MaxPool", "Pad", "Transpose", "Reshape")


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxGraph(nn.Module):
    """An ONNX graph of ``SUPPORTED`` operators as a torch module: ``forward(x)`` -> the graph's outputs, in order."""

    def __init__(self, path: Union[str, Path]) -> None:
        super().__init__()
        model = onnx.load(str(path))
        graph = model.graph
        constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        unsupported = sorted({n.op_type for n in graph.node} - set(SUPPORTED))
        if unsupported:
            raise FaceGraftError(f"the model graph uses operators the training converter does not run: "
                                 f"{', '.join(unsupported)}", path=str(path),
                                 hint="re-run `facegraft setup` to prepare the MediaPipe models it expects")
        if len(graph.input) - len([i for i in graph.input if i.name in constants]) != 1:
            raise FaceGraftError("the model graph has more than one input", path=str(path),
                                 hint="re-run `facegraft setup`")
        self.input = next(i.name for i in graph.input if i.name not in constants)
        self.outputs = [o.name for o in graph.output]
        self._steps: list[tuple[str, list[str], str, Callable[..., torch.Tensor]]] = []
        self._buffer_names: dict[str, str] = {}
        for node in graph.node:  # the tensors a node reads: both of an Add's inputs, else the first (the rest are weights)
            reads = list(node.input[:2]) if node.op_type == "Add" else [node.input[0]]
            self._steps.append((node.op_type, reads, node.output[0], self._compile(node, constants, path)))

    def _constant(self, name: str, constants: dict[str, np.ndarray]) -> str:
        """Register the initializer ``name`` as a frozen buffer once; its attribute name."""
        if name not in self._buffer_names:
            attr = f"w{len(self._buffer_names)}"
            self.register_buffer(attr, torch.from_numpy(np.array(constants[name], dtype=np.float32)))
            self._buffer_names[name] = attr
        return self._buffer_names[name]

    def _compile(self, node: onnx.NodeProto, constants: dict[str, np.ndarray],
                 path: Union[str, Path]) -> Callable[..., torch.Tensor]:
        """The torch function for one node; it takes the module and the node's tensor inputs."""
        op, attrs = node.op_type, _attributes(node)
        if op == "Conv":
            weight = self._constant(node.input[1], constants)
            bias = self._constant(node.input[2], constants) if len(node.input) > 2 else None
            top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
            stride, groups = tuple(attrs.get("strides", [1, 1])), int(attrs.get("group", 1))
            if tuple(attrs.get("dilations", [1, 1])) != (1, 1) or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise FaceGraftError(f"unsupported Conv settings in node {node.name}", path=str(path))
            symmetric = top == bottom and left == right

            def conv(m: OnnxGraph, x: torch.Tensor) -> torch.Tensor:
                if not symmetric:
                    x = F.pad(x, (left, right, top, bottom))
                return F.conv2d(x, getattr(m, weight), getattr(m, bias) if bias else None, stride,
                                (top, left) if symmetric else 0, 1, groups)
            return conv
        if op == "PRelu":
            constants[node.input[1]] = constants[node.input[1]].reshape(-1)  # one slope per channel
            slope = self._constant(node.input[1], constants)
            return lambda m, x: F.prelu(x, getattr(m, slope))
        if op == "Add":
            return lambda m, a, b: a + b
        if op == "MaxPool":
            kernel, stride = tuple(attrs["kernel_shape"]), tuple(attrs.get("strides", attrs["kernel_shape"]))
            if attrs.get("auto_pad", b"VALID") not in (b"VALID", "VALID") and any(attrs.get("pads", [0])):
                raise FaceGraftError(f"unsupported MaxPool padding in node {node.name}", path=str(path))
            return lambda m, x: F.max_pool2d(x, kernel, stride)
        if op == "Pad":
            if attrs.get("mode", b"constant") not in (b"constant", "constant"):
                raise FaceGraftError(f"unsupported Pad mode in node {node.name}", path=str(path))
            pads = [int(p) for p in constants[node.input[1]]]
            value = float(constants[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0.0
            rank = len(pads) // 2
            torch_pads: list[int] = []  # torch: last dimension first, (begin, end) pairs
            for dim in reversed(range(rank)):
                torch_pads += [pads[dim], pads[dim + rank]]
            return lambda m, x: F.pad(x, torch_pads, value=value)
        if op == "Transpose":
            perm = list(attrs["perm"])
            return lambda m, x: x.permute(*perm)
        if op == "Reshape":
            shape = [int(s) for s in constants[node.input[1]]]
            if shape[0] not in (0, 1):
                raise FaceGraftError(f"Reshape {shape} in node {node.name} does not keep the batch", path=str(path))
            rest = shape[1:]
            return lambda m, x: x.reshape(x.shape[0], *rest)
        raise AssertionError(op)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[str, torch.Tensor] = {self.input: x}
        for _, reads, output, fn in self._steps:
            values[output] = fn(self, *(values[name] for name in reads))
        return [values[name] for name in self.outputs]


def frozen(path: Union[str, Path]) -> OnnxGraph:
    """``OnnxGraph`` of ``path`` in eval mode, every tensor without gradient."""
    graph = OnnxGraph(path).eval()
    for p in graph.parameters():
        p.requires_grad_(False)
    return graph


def face_mesh() -> OnnxGraph:
    """FaceMesh: ``[N,3,192,192]`` sRGB 0..1 -> (``[N,1404,1,1]`` 468 x (x, y, z) crop px, ``[N,1,1,1]`` presence logit)."""
    return frozen(assets.model_path("face_landmark"))


def iris_model() -> OnnxGraph:
    """The iris model: ``[N,3,64,64]`` sRGB 0..1 eye crops -> (``[N,213]`` 71 contour points, ``[N,15]`` 5 iris points), crop px."""
    return frozen(assets.model_path("iris_landmark"))
