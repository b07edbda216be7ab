"""DeepFaceLab / DeepFaceLive ``.dfm`` models, presented as FaceGraft face models.

A ``.dfm`` is an ONNX graph with input ``in_face:0`` ``[N, R, R, 3]`` (NHWC, BGR, 0..1 in the
sRGB encoding) and outputs ``out_celeb_face:0`` (the swapped face, same layout) and one or two
masks: ``out_celeb_face_mask:0`` (the source face's learned mask) and/or ``out_face_mask:0``
(the destination face's). AMP models also take ``morph_value:0`` (a scalar, 0..1).

FaceGraft sees such a model through the contract: colour space ``sRGB Encoded Rec.709 (sRGB)``,
coverage ``whole_face`` (DeepFaceLab's ``wf`` face type) with DeepFaceLab's own whole-face crop
template (``align.DFL_WHOLE_FACE``: the renderer crops such a model's faces exactly as
DeepFaceLab cut its training faces), resolution from the input shape.
``pack`` and ``unpack`` convert NCHW RGB batches to and from the model's own layout. The mask
is the product of the masks the model has (DeepFaceLab's ``learned-prd*learned-dst``).
``ADAPTER`` presents all of it to ``formats``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx

from facegraft.inference.errors import ModelFileError
from facegraft.inference.models.base import ModelAdapter, ModelInfo
from facegraft.inference.models.onnx_graph import content_hash, dims, float_type, metadata, shape_text
from facegraft.inference.track.align import DFL_WHOLE_FACE

KIND = "dfm"
INPUT = "in_face:0"
FACE = "out_celeb_face:0"
MASKS = ("out_celeb_face_mask:0", "out_face_mask:0")
MORPH = "morph_value:0"
COLORSPACE = "sRGB Encoded Rec.709 (sRGB)"
COVERAGE = "whole_face"
TEMPLATE = DFL_WHOLE_FACE
DEFAULT_MORPH = 0.75


def is_dfm(model: onnx.ModelProto) -> bool:
    """True when the graph has the DeepFaceLab/DeepFaceLive inputs and outputs."""
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    return INPUT in inputs and FACE in outputs and any(m in outputs for m in MASKS)


def info_from_proto(model: onnx.ModelProto, path: str = "") -> ModelInfo:
    """A ModelInfo for a ``.dfm`` graph (no FaceGraft metadata needed)."""
    if not is_dfm(model):
        raise ModelFileError(f"not a DeepFaceLab model: needs input {INPUT} and outputs {FACE} and a mask", path=path)
    face = next(i for i in model.graph.input if i.name == INPUT)
    shape = dims(face)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ModelFileError(f"{INPUT} is [{shape_text(shape)}], expected [N,R,R,3] (NHWC, square)", path=path)
    dtype = float_type(face)
    if dtype is None:
        raise ModelFileError(f"{INPUT} must be float32 or float16", path=path)
    outputs = {o.name for o in model.graph.output}
    masks = tuple(m for m in MASKS if m in outputs)
    extra = {MORPH: DEFAULT_MORPH} if MORPH in {i.name for i in model.graph.input} else {}
    meta = metadata(model)
    return ModelInfo(
        path=path, kind=KIND, format_version="dfm", resolution=int(shape[1]), coverage=COVERAGE,
        template=TEMPLATE, colorspace=COLORSPACE, ocio_config=meta.get("facegraft.ocio_config", ""),
        source=meta.get("facegraft.source", ""), target="", provenance={"format": "DeepFaceLab .dfm"},
        content_hash=content_hash(model), input_name=INPUT, output_names=(FACE, *masks), input_dtype=dtype,
        batch=shape[0], extra_inputs=extra,
    )


def pack(faces: np.ndarray) -> np.ndarray:
    """``[N,3,R,R]`` RGB -> ``[N,R,R,3]`` BGR, clipped to 0..1 as DeepFaceLab trained."""
    return np.ascontiguousarray(np.clip(faces[:, ::-1].transpose(0, 2, 3, 1), 0.0, 1.0))


def unpack(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The model's ``[face, mask(s)...]`` NHWC BGR -> (swap ``[N,3,R,R]`` RGB, mask ``[N,1,R,R]``)."""
    face = np.asarray(outputs[0], dtype=np.float32)
    swap = np.ascontiguousarray(face[..., ::-1].transpose(0, 3, 1, 2))
    mask = np.ones(swap[:, :1].shape, dtype=np.float32)
    for extra in outputs[1:]:
        m = np.asarray(extra, dtype=np.float32)
        m = m.transpose(0, 3, 1, 2) if m.ndim == 4 else m[:, None]
        mask = mask * np.clip(m, 0.0, 1.0)
    return swap, mask


ADAPTER = ModelAdapter(kind=KIND, recognises=is_dfm, describe=info_from_proto, pack=pack, unpack=unpack)
