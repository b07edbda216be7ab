"""float16 versions of face models, made at load time (``--precision fp16``).

A GPU runs float16 convolutions on its tensor cores at several times the float32 rate and moves
half the bytes. ``convert`` turns a float32 graph into a float16 one with onnxruntime's own
converter (``onnxruntime.transformers.float16``, shipped inside onnxruntime): weights, activations
and the graph's inputs and outputs become float16; operators without float16 kernels stay float32
behind Cast nodes (the converter's block list). The renderer casts its crops to float16 and the
results back to float32 at the session's boundary (``binding.BoundRunner``), so everything
before and after the network is unchanged.

A graph that is float16 already (float16 inputs, or exported with ``facegraft export --fp16``,
whose weights are float16 behind float32 inputs) is used as it is.

What float16 costs in pixels: its spacing is 2^-11 relative, about 2.4e-4 at the mid-grey
0.41 of ACEScct; a network's outputs differ from float32 by a few of those steps
(``tests/inference/test_providers.py`` checks a comb network against float32 on the CPU).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx

from facegraft.inference.errors import ModelFileError
from facegraft.inference.models.onnx_graph import FLOAT_TYPES

PRECISIONS = ("fp32", "fp16")
#: The share of weight values that must be float16 for a graph to count as float16 already.
HALF_SHARE = 0.9


def _weight_counts(model: onnx.ModelProto) -> tuple[int, int]:
    """(float16 values, float values of any precision) over the graph's initializers."""
    half = total = 0
    for tensor in model.graph.initializer:
        if tensor.data_type not in FLOAT_TYPES:
            continue
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        total += count
        half += count if tensor.data_type == onnx.TensorProto.FLOAT16 else 0
    return half, total


def is_half(model: onnx.ModelProto) -> bool:
    """True when the graph computes in float16 already (float16 input, or float16 weights)."""
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if inputs and inputs[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
        return True
    half, total = _weight_counts(model)
    return total > 0 and half >= HALF_SHARE * total


def _converter() -> Any:
    """onnxruntime's float16 converter. Its package puts its own folder on ``sys.path`` (for its
    scripts); that is undone, so modules named like its files cannot shadow anything."""
    saved = list(sys.path)
    try:
        from onnxruntime.transformers import float16
    finally:
        sys.path[:] = saved
    return float16


def convert(model: onnx.ModelProto, path: str = "") -> onnx.ModelProto:
    """The float16 version of a float32 face model (inputs and outputs float16 too).

    Metadata is kept. Weights beyond float16's range are clamped to it by the converter
    (65504); ``ModelFileError`` (naming ``path``) when the converter refuses the graph.
    """
    try:
        half = _converter().convert_float_to_float16(model, keep_io_types=False, disable_shape_infer=False)
    except Exception as exc:  # the converter raises plain exceptions on graphs it cannot handle
        raise ModelFileError(f"the model cannot be converted to float16 ({type(exc).__name__}: {exc})", path=path or None,
                             hint="render with --precision fp32, or export the model with `facegraft export --fp16`") from exc
    del half.metadata_props[:]
    half.metadata_props.extend(model.metadata_props)
    return half


def source(path: Union[str, Path], precision: str) -> tuple[Union[str, bytes], str]:
    """What onnxruntime should load for ``path`` at ``precision``: the file itself (``as is``), or
    the bytes of its float16 conversion (``converted``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    if precision == "fp32":
        return str(path), "as is"
    model = onnx.load(str(path))  # with any external weights, which the conversion rewrites
    if is_half(model):
        return str(path), "as is"
    return convert(model, str(path)).SerializeToString(), "converted"
