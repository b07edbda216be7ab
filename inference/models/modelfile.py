"""The face model file: an ONNX graph plus ``facegraft.*`` metadata.

Contract (format version 1):

* input ``face`` ``[N, 3, R, R]`` float (float32 or float16), NCHW, RGB, in the model's colour
  space (default ACEScct), dynamic batch;
* outputs ``swap`` ``[N, 3, R, R]`` (same space) and ``mask`` ``[N, 1, R, R]`` in 0..1;
* ``metadata_props``: ``facegraft.format_version``, ``.resolution``, ``.coverage``, ``.template``,
  ``.colorspace``, ``.ocio_config``, ``.identities`` (JSON ``{"source", "target"}``: the model turns
  the target face on the plate into the source identity), ``.provenance`` (JSON) and
  ``.content_hash`` (SHA-256 of the model with its metadata cleared).

``stamp`` writes the metadata (training's export calls it); ``read_info`` checks a file and
describes it. DeepFaceLab/DeepFaceLive ``.dfm`` files are recognised and described through
``facegraft.inference.models.dfm``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import onnx

from facegraft.inference import __version__
from facegraft.inference.atomic import atomic_write_bytes
from facegraft.inference.errors import ModelFileError
from facegraft.inference.io.colour import DEFAULT_CONFIG

FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
PREFIX = "facegraft."
KEYS = ("format_version", "resolution", "coverage", "template", "colorspace", "ocio_config",
        "identities", "provenance", "content_hash")
INPUT_NAME = "face"
OUTPUT_NAMES = ("swap", "mask")
_FALLBACK_TEMPLATE = "facegraft-5pt-v1"
_FALLBACK_COVERAGES = frozenset({"face", "whole_face", "head"})
_FLOAT_TYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}

PathLike = Union[str, Path]


def _align_constants() -> tuple[str, frozenset]:
    """The face template name and coverages from ``align`` (fallbacks while it is absent)."""
    try:
        from facegraft.inference.track import align
    except ImportError:
        return _FALLBACK_TEMPLATE, _FALLBACK_COVERAGES
    return (str(getattr(align, "TEMPLATE_NAME", _FALLBACK_TEMPLATE)),
            frozenset(getattr(align, "COVERAGES", _FALLBACK_COVERAGES)))


@dataclass
class ModelInfo:
    """What a face model file says about itself, and how to feed it."""

    path: str
    kind: str  # "facegraft" or "dfm"
    format_version: str
    resolution: int
    coverage: str
    template: str
    colorspace: str
    ocio_config: str
    source: str
    target: str
    provenance: dict = field(default_factory=dict)
    content_hash: str = ""
    input_name: str = INPUT_NAME
    output_names: tuple[str, ...] = OUTPUT_NAMES
    input_dtype: str = "float32"
    batch: Optional[int] = None  # fixed batch size of the graph, None when dynamic
    extra_inputs: dict = field(default_factory=dict)  # name -> value fed on every call (dfm morph)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["output_names"] = list(self.output_names)
        return data


def content_hash(model: onnx.ModelProto) -> str:
    """SHA-256 of the model with its metadata cleared: the graph, weights and opsets."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.metadata_props[:]
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _dims(value_info: onnx.ValueInfoProto) -> list[Optional[int]]:
    """Static dims as ints, symbolic or unknown dims as None."""
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _check_io(model: onnx.ModelProto, resolution: int, where: Optional[str]) -> tuple[str, Optional[int]]:
    """Check inputs/outputs against the contract; returns (input dtype, fixed batch or None)."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    names = [i.name for i in inputs]
    if INPUT_NAME not in names:
        raise ModelFileError(f"the model has no input named '{INPUT_NAME}' (inputs: {', '.join(names) or 'none'})",
                             path=where, hint="export with input_names=['face'] (see docs/model_file.md)")
    face = inputs[names.index(INPUT_NAME)]
    dtype = _FLOAT_TYPES.get(face.type.tensor_type.elem_type)
    if dtype is None:
        raise ModelFileError("the 'face' input must be float32 or float16", path=where)
    dims = _dims(face)
    want = [None, 3, resolution, resolution]
    if len(dims) != 4 or any(d is not None and w is not None and d != w for d, w in zip(dims[1:], want[1:])):
        shown = "x".join("?" if d is None else str(d) for d in dims)
        raise ModelFileError(
            f"the 'face' input is [{shown}] but the metadata says resolution {resolution}: expected [N,3,{resolution},{resolution}]",
            path=where, hint="re-export the model, or stamp it with the resolution it was trained at")
    outputs = {o.name: _dims(o) for o in graph.output}
    for name, channels in (("swap", 3), ("mask", 1)):
        if name not in outputs:
            raise ModelFileError(f"the model has no output named '{name}' (outputs: {', '.join(outputs)})", path=where,
                                 hint="export with output_names=['swap', 'mask'] (see docs/model_file.md)")
        out = outputs[name]
        expect = [None, channels, resolution, resolution]
        if out and (len(out) != 4 or any(d is not None and d != w for d, w in zip(out[1:], expect[1:]))):
            shown = "x".join("?" if d is None else str(d) for d in out)
            raise ModelFileError(f"the '{name}' output is [{shown}], expected [N,{channels},{resolution},{resolution}]",
                                 path=where)
    return dtype, dims[0]


def stamp(
    model: onnx.ModelProto,
    *,
    resolution: int,
    coverage: str,
    colorspace: str,
    source: str,
    target: str,
    provenance: Optional[dict] = None,
    ocio_config: str = DEFAULT_CONFIG,
    template: Optional[str] = None,
) -> onnx.ModelProto:
    """A copy of ``model`` carrying the FaceGraft metadata (other metadata kept)."""
    default_template, coverages = _align_constants()
    if coverage not in coverages:
        raise ModelFileError(f"unknown coverage '{coverage}'", hint=f"use one of: {', '.join(sorted(coverages))}")
    resolution = int(resolution)
    _check_io(model, resolution, None)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [(p.key, p.value) for p in out.metadata_props if not p.key.startswith(PREFIX)]
    del out.metadata_props[:]
    prov = {"facegraft_version": __version__, **(provenance or {})}
    values = {
        "format_version": FORMAT_VERSION,
        "resolution": str(resolution),
        "coverage": coverage,
        "template": template or default_template,
        "colorspace": colorspace,
        "ocio_config": ocio_config,
        "identities": json.dumps({"source": source, "target": target}, sort_keys=True),
        "provenance": json.dumps(prov, sort_keys=True, default=str),
        "content_hash": content_hash(out),
    }
    for key, value in kept:
        out.metadata_props.add(key=key, value=value)
    for key in KEYS:
        out.metadata_props.add(key=PREFIX + key, value=values[key])
    return out


def save(model: onnx.ModelProto, path: PathLike) -> Path:
    """Write ``model`` atomically (temporary file in the target folder, then a rename)."""
    return atomic_write_bytes(path, model.SerializeToString())


def load_proto(path: PathLike) -> onnx.ModelProto:
    """The ONNX protobuf of ``path``; ModelFileError when it is missing or not ONNX."""
    name = str(path)
    if not os.path.isfile(name):
        raise ModelFileError("model file not found", path=name, hint="check the --model path")
    try:
        model = onnx.load(name, load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelFileError(f"not an ONNX model ({type(exc).__name__})", path=name,
                             hint="pass a FaceGraft .onnx (from `facegraft export`) or a DeepFaceLab .dfm") from exc
    if not model.graph.node and not model.graph.output:
        raise ModelFileError("not an ONNX model (the file holds no graph)", path=name,
                             hint="pass a FaceGraft .onnx (from `facegraft export`) or a DeepFaceLab .dfm")
    return model


def _json(meta: dict[str, str], key: str, where: str) -> dict:
    try:
        value = json.loads(meta[PREFIX + key])
    except (KeyError, ValueError) as exc:
        raise ModelFileError(f"the metadata '{PREFIX}{key}' is missing or not JSON", path=where,
                             hint="re-export the model with `facegraft export`") from exc
    if not isinstance(value, dict):
        raise ModelFileError(f"the metadata '{PREFIX}{key}' is not a JSON object", path=where)
    return value


def info_from_proto(model: onnx.ModelProto, path: str = "", verify_hash: bool = True) -> ModelInfo:
    """Describe an already loaded model (see ``read_info``)."""
    meta = metadata(model)
    version = meta.get(PREFIX + "format_version")
    if version is None:
        from facegraft.inference.models import dfm

        if dfm.is_dfm(model):
            return dfm.info_from_proto(model, path)
        raise ModelFileError(
            "the ONNX file has no FaceGraft metadata (facegraft.format_version)", path=path,
            hint="export it with `facegraft export`, or stamp an existing ONNX with facegraft.inference.models.modelfile.stamp")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"model format version {version} is not supported by FaceGraft {__version__} "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})", path=path,
            hint="update FaceGraft, or re-export the model with this version")
    missing = [PREFIX + k for k in KEYS if PREFIX + k not in meta]
    if missing:
        raise ModelFileError(f"missing metadata: {', '.join(missing)}", path=path,
                             hint="re-export the model with `facegraft export`")
    try:
        resolution = int(meta[PREFIX + "resolution"])
    except ValueError:
        raise ModelFileError(f"bad resolution metadata '{meta[PREFIX + 'resolution']}'", path=path) from None
    _, coverages = _align_constants()
    coverage = meta[PREFIX + "coverage"]
    if coverage not in coverages:
        raise ModelFileError(f"unknown coverage '{coverage}'", path=path,
                             hint=f"this FaceGraft knows: {', '.join(sorted(coverages))}")
    identities = _json(meta, "identities", path)
    dtype, batch = _check_io(model, resolution, path)
    stored = meta[PREFIX + "content_hash"]
    if verify_hash and stored != content_hash(model):
        raise ModelFileError("the model's content hash does not match its graph: the file was changed after export",
                             path=path, hint="re-export the model, or re-stamp it if the change was intended")
    return ModelInfo(
        path=path, kind="facegraft", format_version=version, resolution=resolution, coverage=coverage,
        template=meta[PREFIX + "template"], colorspace=meta[PREFIX + "colorspace"],
        ocio_config=meta[PREFIX + "ocio_config"], source=str(identities.get("source", "")),
        target=str(identities.get("target", "")), provenance=_json(meta, "provenance", path), content_hash=stored,
        input_dtype=dtype, batch=batch,
    )


def read_info(path: PathLike) -> ModelInfo:
    """Check a model file against the contract and describe it; ModelFileError says what is wrong."""
    return info_from_proto(load_proto(path), str(path))
