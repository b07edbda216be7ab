"""Checks every model file gets, whatever its format: it is ONNX, its weights are finite, and the
renderer implements its crop template. The format registry (``formats``) and the occlusion
model both use them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import onnx

from facegraft.inference.errors import ModelFileError
from facegraft.inference.models.base import ModelInfo
from facegraft.inference.models.onnx_graph import non_finite_weights
from facegraft.inference.track import align

PathLike = Union[str, Path]
_HINT = "pass a FaceGraft .onnx (from `facegraft export`) or a DeepFaceLab .dfm"


def load_proto(path: PathLike) -> onnx.ModelProto:
    """The ONNX protobuf of ``path``; ModelFileError when it is missing or not ONNX."""
    name = str(path)
    if not os.path.isfile(name):
        raise ModelFileError("model file not found", path=name, hint="check the --model path")
    try:
        model = onnx.load(name, load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelFileError(f"not an ONNX model, or the file is cut short ({type(exc).__name__})", path=name,
                             hint=_HINT + "; a model cut short in a copy needs copying again") from exc
    if not model.graph.node and not model.graph.output:
        raise ModelFileError("not an ONNX model (the file holds no graph)", path=name, hint=_HINT)
    return model


def check_weights(model: onnx.ModelProto, path: PathLike) -> None:
    """ModelFileError when a weight holds NaN or Inf (a diverged training exported anyway)."""
    name = str(path)
    try:
        bad = non_finite_weights(model, os.path.dirname(os.path.abspath(name)))
    except (OSError, ValueError) as exc:  # external weights missing or short
        raise ModelFileError(f"the model's weights cannot be read ({exc})", path=name,
                             hint="keep the model's external weight files next to it") from exc
    if bad:
        listed = ", ".join(f"'{t}' ({n} of {total})" for t, n, total in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ModelFileError(f"the model's weights hold NaN or Inf values: {listed}{more}", path=name,
                             hint="the training diverged; export an earlier checkpoint")


def check_template(info: ModelInfo) -> None:
    """ModelFileError when the renderer does not implement the model's crop template and coverage."""
    try:
        align.template(info.template, info.coverage)
    except ValueError as exc:
        raise ModelFileError(str(exc), path=info.path,
                             hint="this FaceGraft cannot crop faces the way the model was trained; "
                                  "update FaceGraft or use a model aligned to one of those templates") from None
