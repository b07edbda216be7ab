"""What every model-file format provides: a ``ModelInfo`` and a ``ModelAdapter``.

A format's module (``modelfile`` for FaceGraft's ``.onnx``, ``dfm`` for DeepFaceLab's) builds
one ``ModelAdapter``; ``formats`` lists them and picks the one a file is. The face model runs
any format through its adapter: ``pack`` turns NCHW RGB crops into the graph's input, and
``unpack`` turns the graph's outputs into the swap ``[N,3,R,R]`` and mask ``[N,1,R,R]``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import onnx


@dataclass
class ModelInfo:
    """What a face model file says about itself, and how to feed it."""

    path: str
    kind: str  # the adapter's kind: "facegraft" or "dfm"
    format_version: str
    resolution: int
    coverage: str
    template: str
    colorspace: str
    ocio_config: str
    source: str
    target: str
    input_name: str
    output_names: tuple[str, ...]
    provenance: dict = field(default_factory=dict)
    content_hash: str = ""
    input_dtype: str = "float32"
    batch: Optional[int] = None  # fixed batch size of the graph, None when dynamic
    extra_inputs: dict = field(default_factory=dict)  # name -> value fed on every call (dfm morph)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_names"] = list(self.output_names)
        return data


@dataclass(frozen=True)
class ModelAdapter:
    """One model-file format: how to recognise it, describe it, and feed it."""

    kind: str
    #: True when a loaded graph is of this format.
    recognises: Callable[[onnx.ModelProto], bool]
    #: The checked description of a graph of this format (``path`` names it in errors);
    #: raises ModelFileError when the graph breaks the format's contract.
    describe: Callable[[onnx.ModelProto, str], ModelInfo]
    #: ``[N,3,R,R]`` RGB crops in the model's colour space -> the graph's input.
    pack: Callable[[np.ndarray], np.ndarray]
    #: The graph's outputs (in ``ModelInfo.output_names`` order) -> (swap ``[N,3,R,R]``, mask ``[N,1,R,R]``).
    unpack: Callable[[Sequence[np.ndarray]], tuple[np.ndarray, np.ndarray]]
