"""The model-file formats FaceGraft reads, and which one a file is.

Each format is a ``ModelAdapter`` in its own module: FaceGraft's ``.onnx`` (``modelfile``) and
DeepFaceLab's ``.dfm`` (``dfm``); a shot's occlusion model (``occlusion``) is described here too,
and refused as a face model. A graph with FaceGraft metadata is a FaceGraft model; one
with DeepFaceLab's inputs and outputs is a ``.dfm``; any other ONNX graph is checked as a
FaceGraft model, whose check says what it lacks.

``read`` refuses, before any frame is rendered, a file that is not ONNX (or is cut short), breaks
its format's contract, holds NaN or Inf weights, or is aligned to a crop template the renderer
does not implement (``align.TEMPLATES``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import onnx

from facegraft.inference.models import dfm, modelfile, occlusion
from facegraft.inference.models.base import ModelAdapter, ModelInfo
from facegraft.inference.models.checks import check_template, check_weights, load_proto

#: The formats, in the order they are tried (an occlusion model carries facegraft.* metadata too:
#: it is tried before the face model; it is never run as one).
ADAPTERS: tuple[ModelAdapter, ...] = (occlusion.ADAPTER, modelfile.ADAPTER, dfm.ADAPTER)
#: What a graph no adapter recognises is checked as.
DEFAULT = modelfile.ADAPTER
_HINT = "pass a FaceGraft .onnx (from `facegraft export`) or a DeepFaceLab .dfm"

PathLike = Union[str, Path]


def adapter_for(model: onnx.ModelProto) -> ModelAdapter:
    """The format of a loaded graph: the first adapter that recognises it, else ``DEFAULT``."""
    return next((adapter for adapter in ADAPTERS if adapter.recognises(model)), DEFAULT)


def read(path: PathLike) -> tuple[ModelAdapter, ModelInfo]:
    """Load a model file, pick its format and check it: ``(adapter, info)``."""
    model = load_proto(path)
    adapter = adapter_for(model)
    info = adapter.describe(model, str(path))
    check_template(info)
    check_weights(model, path)
    return adapter, info


def read_info(path: PathLike) -> ModelInfo:
    """Check a model file of any format and describe it; ModelFileError says what is wrong."""
    return read(path)[1]
