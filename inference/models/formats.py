"""The model-file formats FaceGraft reads, and which one a file is.

Each format is a ``ModelAdapter`` in its own module: FaceGraft's ``.onnx`` (``modelfile``) and
DeepFaceLab's ``.dfm`` (``dfm``). A graph with FaceGraft metadata is a FaceGraft model; one
with DeepFaceLab's inputs and outputs is a ``.dfm``; any other ONNX graph is checked as a
FaceGraft model, whose check says what it lacks.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import onnx

from facegraft.inference.errors import ModelFileError
from facegraft.inference.models import dfm, modelfile
from facegraft.inference.models.base import ModelAdapter, ModelInfo

#: The formats, in the order they are tried.
ADAPTERS: tuple[ModelAdapter, ...] = (modelfile.ADAPTER, dfm.ADAPTER)
#: What a graph no adapter recognises is checked as.
DEFAULT = modelfile.ADAPTER
_HINT = "pass a FaceGraft .onnx (from `facegraft export`) or a DeepFaceLab .dfm"

PathLike = Union[str, Path]


def load_proto(path: PathLike) -> onnx.ModelProto:
    """The ONNX protobuf of ``path``; ModelFileError when it is missing or not ONNX."""
    name = str(path)
    if not os.path.isfile(name):
        raise ModelFileError("model file not found", path=name, hint="check the --model path")
    try:
        model = onnx.load(name, load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelFileError(f"not an ONNX model ({type(exc).__name__})", path=name, hint=_HINT) from exc
    if not model.graph.node and not model.graph.output:
        raise ModelFileError("not an ONNX model (the file holds no graph)", path=name, hint=_HINT)
    return model


def adapter_for(model: onnx.ModelProto) -> ModelAdapter:
    """The format of a loaded graph: the first adapter that recognises it, else ``DEFAULT``."""
    return next((adapter for adapter in ADAPTERS if adapter.recognises(model)), DEFAULT)


def read(path: PathLike) -> tuple[ModelAdapter, ModelInfo]:
    """Load a model file, pick its format and check it: ``(adapter, info)``."""
    model = load_proto(path)
    adapter = adapter_for(model)
    return adapter, adapter.describe(model, str(path))


def read_info(path: PathLike) -> ModelInfo:
    """Check a model file of any format and describe it; ModelFileError says what is wrong."""
    return read(path)[1]
