"""Reading an ONNX graph's contract: tensor precisions and shapes, metadata, the content hash,
weights that are not finite.

Shared by every model-file format (``modelfile`` for FaceGraft's own, ``dfm`` for DeepFaceLab's).
"""
from __future__ import annotations

import hashlib
from typing import Iterator, Optional, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

#: The input precisions a face model may take, by ONNX element type.
FLOAT_TYPES: dict[int, str] = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}


def dims(value_info: onnx.ValueInfoProto) -> list[Optional[int]]:
    """Static dims as ints, symbolic or unknown dims as None."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def shape_text(shape: Sequence[Optional[int]]) -> str:
    """A shape as messages show it: ``1x?x3`` (``?`` for a dynamic dim)."""
    return "x".join("?" if d is None else str(d) for d in shape)


def float_type(value_info: onnx.ValueInfoProto) -> Optional[str]:
    """``float32`` or ``float16`` for a tensor of that precision, None for any other."""
    return FLOAT_TYPES.get(value_info.type.tensor_type.elem_type)


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def content_hash(model: onnx.ModelProto) -> str:
    """SHA-256 of the model with its metadata cleared: the graph, weights and opsets."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.metadata_props[:]
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()


#: Element types whose values can be NaN or Inf.
_FLOATING = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every constant tensor of ``graph`` and its subgraphs: initializers and Constant node values."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _tensors(sub)


def non_finite_weights(model: onnx.ModelProto, base_dir: str = "") -> list[tuple[str, int, int]]:
    """``(tensor name, non-finite values, values)`` for each weight holding NaN or Inf.

    Weights stored as external data are read from ``base_dir`` (the model's folder).
    """
    found = []
    for tensor in _tensors(model.graph):
        if tensor.data_type not in _FLOATING:
            continue
        values = np.asarray(numpy_helper.to_array(tensor, base_dir=base_dir)).astype(np.float32, copy=False)
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            found.append((tensor.name or "(unnamed constant)", bad, int(values.size)))
    return found
