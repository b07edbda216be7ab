"""Tiny face models built with onnx.helper, for tests and benchmarks of every part.

``build_identity_model(path, res=64, shift=None)`` -> a contract-conforming FaceGraft model:
``swap = face + shift`` (shift per RGB channel, model space), ``mask`` = ones (or an ellipse).
``build_conv_model`` costs something realistic (a few 3x3 convolutions); ``build_dfm_model``
builds a DeepFaceLab-shaped graph (NHWC BGR ``in_face:0``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facegraft.inference.models import modelfile

OPSET = [helper.make_opsetid("", 17)]
PathLike = Union[str, Path]


def _ellipse(res: int, fill: float = 0.8) -> np.ndarray:
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) + 0.5
    r = ((xx - res / 2) / (fill * res / 2)) ** 2 + ((yy - res / 2) / (fill * res / 2)) ** 2
    return np.clip((1.0 - r) * 4.0, 0.0, 1.0).astype(np.float32)[None, None]


def _graph_nodes(res: int, shift: Sequence[float], mask: str, conv_layers: int, conv_width: int):
    """Nodes computing swap/mask from a float32 NCHW tensor named 'x'."""
    nodes, inits = [], []
    inits.append(numpy_helper.from_array(np.asarray(shift, np.float32).reshape(1, 3, 1, 1), "shift"))
    inits.append(numpy_helper.from_array(np.zeros(1, np.float32), "zero"))
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "s0"))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "s1"))
    base = "x"
    if conv_layers:
        rng = np.random.default_rng(0)
        prev = 3
        for i in range(conv_layers):
            out = 3 if i == conv_layers - 1 else conv_width
            w = (rng.standard_normal((out, prev, 3, 3)) * (0.01 if i == conv_layers - 1 else 0.1)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            inits.append(numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}"))
            nodes.append(helper.make_node("Conv", [base, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
            base = f"c{i}"
            prev = out
            if i != conv_layers - 1:
                nodes.append(helper.make_node("Relu", [base], [f"r{i}"]))
                base = f"r{i}"
        nodes.append(helper.make_node("Add", ["x", base], ["residual"]))
        base = "residual"
    nodes.append(helper.make_node("Add", [base, "shift"], ["swap_out"]))
    nodes.append(helper.make_node("Slice", ["x", "s0", "s1", "s1"], ["first"]))
    nodes.append(helper.make_node("Mul", ["first", "zero"], ["zeros"]))
    if mask == "ellipse":
        inits.append(numpy_helper.from_array(_ellipse(res), "mask_const"))
    else:
        inits.append(numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "mask_const"))
    nodes.append(helper.make_node("Add", ["zeros", "mask_const"], ["mask_out"]))
    return nodes, inits


def build_identity_model(
    path: PathLike,
    res: int = 64,
    shift: Optional[Sequence[float]] = None,
    *,
    mask: str = "ones",
    coverage: str = "whole_face",
    colorspace: str = "ACEScct",
    dtype: str = "float32",
    batch: Optional[int] = None,
    conv_layers: int = 0,
    conv_width: int = 16,
    source: str = "source_actor",
    target: str = "plate_actor",
) -> Path:
    """A FaceGraft model file: ``swap = face (+ convs) + shift``, ``mask`` ones or an ellipse."""
    shift = list(shift) if shift is not None else [0.0, 0.0, 0.0]
    onnx_type = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    n = batch if batch else "N"
    nodes, inits = _graph_nodes(res, shift, mask, conv_layers, conv_width)
    pre = [helper.make_node("Cast", ["face"], ["x"], to=TensorProto.FLOAT)]
    post = [helper.make_node("Cast", ["swap_out"], ["swap"], to=onnx_type),
            helper.make_node("Cast", ["mask_out"], ["mask"], to=onnx_type)]
    graph = helper.make_graph(
        pre + nodes + post, "facegraft_test_model",
        [helper.make_tensor_value_info("face", onnx_type, [n, 3, res, res])],
        [helper.make_tensor_value_info("swap", onnx_type, [n, 3, res, res]),
         helper.make_tensor_value_info("mask", onnx_type, [n, 1, res, res])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="facegraft-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    stamped = modelfile.stamp(model, resolution=res, coverage=coverage, colorspace=colorspace, source=source,
                              target=target, provenance={"steps": 0, "shots": ["test"], "date": "2024-01-01"})
    return modelfile.save(stamped, path)


def build_conv_model(path: PathLike, res: int = 256, layers: int = 4, width: int = 16, **kwargs) -> Path:
    """A model that costs something: ``layers`` 3x3 convolutions ``width`` wide, residual."""
    return build_identity_model(path, res, conv_layers=layers, conv_width=width, **kwargs)


def build_dfm_model(
    path: PathLike,
    res: int = 64,
    shift: Optional[Sequence[float]] = None,
    masks: Sequence[str] = ("out_celeb_face_mask:0",),
    morph: bool = False,
    batch: Optional[int] = None,
) -> Path:
    """A DeepFaceLab-shaped graph: ``in_face:0`` NHWC BGR -> face (+shift, BGR order), masks ones."""
    shift = list(shift) if shift is not None else [0.0, 0.0, 0.0]
    n = batch if batch else "N"
    inits = [numpy_helper.from_array(np.asarray(shift, np.float32).reshape(1, 1, 1, 3), "shift"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.ones(1, np.float32), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.array([3], np.int64), "ax")]
    nodes = [helper.make_node("Add", ["in_face:0", "shift"], ["out_celeb_face:0"]),
             helper.make_node("Slice", ["in_face:0", "s0", "s1", "ax"], ["first"]),
             helper.make_node("Mul", ["first", "zero"], ["zeros"])]
    inputs = [helper.make_tensor_value_info("in_face:0", TensorProto.FLOAT, [n, res, res, 3])]
    outputs = [helper.make_tensor_value_info("out_celeb_face:0", TensorProto.FLOAT, [n, res, res, 3])]
    for name in masks:
        nodes.append(helper.make_node("Add", ["zeros", "one"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, res, res, 1]))
    if morph:
        inputs.append(helper.make_tensor_value_info("morph_value:0", TensorProto.FLOAT, [1]))
        nodes.append(helper.make_node("Identity", ["morph_value:0"], ["morph_out"]))
        outputs.append(helper.make_tensor_value_info("morph_out", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(nodes, "dfm_like", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=OPSET, producer_name="tf2onnx")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return modelfile.save(model, path)
