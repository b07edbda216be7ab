"""Graph rewrites that make the converted MediaPipe models cheap on the CPU, with the same results.

The converted graphs put a PRelu after most convolutions. onnxruntime's CPU PRelu is a generic
broadcasting kernel, and it does not take the blocked (NCHWc) layout its fast convolutions use,
so every PRelu also costs a reorder out of that layout and one back in: on FaceMesh and the iris
model the PRelus took more time than the convolutions. ``prelu_as_convs`` writes each as

    PRelu(y) = Relu(y) + DW(-s) ( Relu( DW(-1) (y) ) )

with ``DW(k)`` a 1x1 depthwise convolution scaling each channel by ``k`` (the slope ``s`` per
channel). Every node there stays in the blocked layout, the second Relu and the Add fuse into
the depthwise convolutions, and the arithmetic is exact (a product with -1, a Relu, one product
and a sum with a zero): the outputs agree with the original graph to float rounding (the
fused kernels may sum in another order). The residual shortcuts' channel padding (a Pad, which
has no blocked kernel either and leaves every residual sum after it in the plain layout)
becomes a 1x1 identity convolution (``channel_pads_as_convs``). One thread, measured: FaceMesh
5.1 -> 1.7 ms, the iris model on both eyes 9.3 -> 4.1 ms, the palm detector 19.8 -> 11.5 ms. The
face detector (Relu, no PRelu) gains nothing, and is left as it is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.models import runtime

Model = Union[str, Path, bytes, onnx.ModelProto]


def load(model: Model) -> onnx.ModelProto:
    """An ONNX model from a path, serialized bytes or a ``ModelProto`` (a copy: the caller's is left as it is)."""
    if isinstance(model, onnx.ModelProto):
        out = onnx.ModelProto()
        out.CopyFrom(model)
        return out
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    return onnx.load(str(model))


def prelu_as_convs(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every PRelu whose slope is a constant of one value per channel
    (shape ``[C, 1, 1]`` or ``[1, C, 1, 1]``) as Relu and 1x1 depthwise convolutions (module notes);
    returns how many were rewritten. Others are left as they are."""
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    slopes: set[str] = set()
    count = 0
    for index, node in enumerate(graph.node):
        slope = constants.get(node.input[1]) if node.op_type == "PRelu" and len(node.input) == 2 else None
        values = numpy_helper.to_array(slope) if slope is not None else None
        if values is None or values.ndim not in (3, 4) or any(d != 1 for d in values.shape[-2:]) \
                or (values.ndim == 4 and values.shape[0] != 1) or values.dtype != np.float32:
            nodes.append(node)
            continue
        channels = int(values.shape[-3])
        prefix = f"{node.name or 'prelu'}_{index}_as_convs_"
        negate = numpy_helper.from_array(np.full((channels, 1, 1, 1), -1.0, np.float32), prefix + "minus_one")
        scale = numpy_helper.from_array((-values).reshape(channels, 1, 1, 1).astype(np.float32), prefix + "minus_slope")
        graph.initializer.extend([negate, scale])
        x, out = node.input[0], node.output[0]
        slopes.add(node.input[1])
        nodes += [
            helper.make_node("Relu", [x], [prefix + "positive"], name=prefix + "relu"),
            helper.make_node("Conv", [x, negate.name], [prefix + "negated"], name=prefix + "negate",
                             group=channels, kernel_shape=[1, 1]),
            helper.make_node("Relu", [prefix + "negated"], [prefix + "negative"], name=prefix + "relu_negated"),
            helper.make_node("Conv", [prefix + "negative", scale.name], [prefix + "scaled"], name=prefix + "scale",
                             group=channels, kernel_shape=[1, 1]),
            helper.make_node("Add", [prefix + "scaled", prefix + "positive"], [out], name=prefix + "sum"),
        ]
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {name for node in nodes for name in node.input}
        kept = [init for init in graph.initializer if init.name not in slopes or init.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)  # without the slopes only the PRelus used
    return count


def channel_pads_as_convs(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every constant zero Pad that only adds channels at the end (``pads``
    ``[0, 0, 0, 0, 0, p, 0, 0]``, the residual shortcuts' channel padding) as a 1x1 convolution
    with identity weights for the first channels and zeros for the new ones (exact: each output
    is one input times 1, or 0); returns how many. The Pad has no blocked-layout kernel: every
    residual sum after it ran in the plain layout, with a reorder before each convolution."""
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    count = 0
    for index, node in enumerate(graph.node):
        if node.op_type != "Pad" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        value = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        pads = numpy_helper.to_array(constants[node.input[1]])
        shape = shapes.get(node.input[0], [])
        if mode != b"constant" or (value is not None and numpy_helper.to_array(value).any()) or len(shape) != 4 \
                or shape[1] <= 0 or pads.shape != (8,) or pads[5] <= 0 or np.delete(pads, 5).any():
            continue
        channels, extra = int(shape[1]), int(pads[5])
        weight = np.zeros((channels + extra, channels, 1, 1), np.float32)
        weight[np.arange(channels), np.arange(channels)] = 1.0
        name = f"{node.name or 'pad'}_{index}_as_conv_weight"
        graph.initializer.append(numpy_helper.from_array(weight, name))
        conv = helper.make_node("Conv", [node.input[0], name], list(node.output), name=f"{node.name or 'pad'}_{index}_as_conv",
                                kernel_shape=[1, 1])
        node.CopyFrom(conv)
        count += 1
    return count


def for_device(model: Union[str, Path, bytes], device: str) -> Union[str, Path, bytes]:
    """``model`` as the tracker loads it on ``device``: rewritten (``fast_graph``) where it runs
    on the CPU, as it is on a GPU (the rewrites only help onnxruntime's CPU kernels)."""
    try:
        cpu = runtime.providers_for(device)[0] == runtime.CPU
    except FaceGraftError:
        return model  # the session reports the device error itself
    return fast_graph(model) if cpu else model


def fast_graph(model: Model) -> bytes:
    """``model`` with its PRelus and channel pads rewritten (``prelu_as_convs``,
    ``channel_pads_as_convs``), serialized for onnxruntime."""
    proto = load(model)
    prelu_as_convs(proto)
    channel_pads_as_convs(proto)
    return proto.SerializeToString()
