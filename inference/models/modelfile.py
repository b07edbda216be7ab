"""The FaceGraft face model file: an ONNX graph plus ``facegraft.*`` metadata.

Contract (format version 1):

* input ``face`` ``[N, 3, R, R]`` float (float32 or float16), NCHW, RGB, in the model's colour
  space (default ACEScct), dynamic batch;
* outputs ``swap`` ``[N, 3, R, R]`` (same space) and ``mask`` ``[N, 1, R, R]`` in 0..1;
* ``metadata_props``: ``facegraft.format_version``, ``.resolution``, ``.coverage``, ``.template``,
  ``.colorspace``, ``.ocio_config``, ``.identities`` (JSON ``{"source", "target"}``: the model turns
  the target face on the plate into the source identity), ``.provenance`` (JSON) and
  ``.content_hash`` (SHA-256 of the model with its metadata cleared).

``stamp`` writes the metadata (training's export calls it) and ``save`` the file; ``ADAPTER``
checks and describes a loaded graph. Reading a file of any format goes through ``formats``.
``stamp`` records the OCIO config as a stable name (``colour.resolve_config``: a built-in alias
such as ``ocio://studio-config-latest`` becomes the versioned URI it means with this OCIO).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import onnx

from facegraft.inference import __version__
from facegraft.inference.atomic import atomic_write_bytes
from facegraft.inference.errors import ModelFileError
from facegraft.inference.io.colour import DEFAULT_CONFIG, resolve_config
from facegraft.inference.models.base import ModelAdapter, ModelInfo
from facegraft.inference.models.onnx_graph import content_hash, dims, float_type, metadata, shape_text
from facegraft.inference.track.align import COVERAGES, TEMPLATE_NAME, TEMPLATES

KIND = "facegraft"
FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
PREFIX = "facegraft."
KEYS = ("format_version", "resolution", "coverage", "template", "colorspace", "ocio_config",
        "identities", "provenance", "content_hash")
INPUT_NAME = "face"
OUTPUT_NAMES = ("swap", "mask")

PathLike = Union[str, Path]


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
    dtype = float_type(face)
    if dtype is None:
        raise ModelFileError("the 'face' input must be float32 or float16", path=where)
    shape = dims(face)
    want = [None, 3, resolution, resolution]
    if len(shape) != 4 or any(d is not None and w is not None and d != w for d, w in zip(shape[1:], want[1:])):
        raise ModelFileError(
            f"the 'face' input is [{shape_text(shape)}] but the metadata says resolution {resolution}: "
            f"expected [N,3,{resolution},{resolution}]",
            path=where, hint="re-export the model, or stamp it with the resolution it was trained at")
    outputs = {o.name: dims(o) for o in graph.output}
    for name, channels in (("swap", 3), ("mask", 1)):
        if name not in outputs:
            raise ModelFileError(f"the model has no output named '{name}' (outputs: {', '.join(outputs)})", path=where,
                                 hint="export with output_names=['swap', 'mask'] (see docs/model_file.md)")
        out = outputs[name]
        expect = [None, channels, resolution, resolution]
        if out and (len(out) != 4 or any(d is not None and d != w for d, w in zip(out[1:], expect[1:]))):
            raise ModelFileError(f"the '{name}' output is [{shape_text(out)}], expected "
                                 f"[N,{channels},{resolution},{resolution}]", path=where)
    return dtype, shape[0]


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
    if coverage not in COVERAGES:
        raise ModelFileError(f"unknown coverage '{coverage}'", hint=f"use one of: {', '.join(sorted(COVERAGES))}")
    template = template or TEMPLATE_NAME
    if template not in TEMPLATES or coverage not in TEMPLATES[template].coverages:
        raise ModelFileError(f"the crop template '{template}' with coverage '{coverage}' is not one FaceGraft renders",
                             hint=f"templates: {', '.join(TEMPLATES)}")
    resolution = int(resolution)
    _check_io(model, resolution, None)
    prov = {"facegraft_version": __version__, **(provenance or {})}
    values = {
        "format_version": FORMAT_VERSION,
        "resolution": str(resolution),
        "coverage": coverage,
        "template": template,
        "colorspace": colorspace,
        "ocio_config": resolve_config(ocio_config),
        "identities": json.dumps({"source": source, "target": target}, sort_keys=True),
        "provenance": json.dumps(prov, sort_keys=True, default=str),
        "content_hash": content_hash(model),  # of the graph and weights: the metadata is left out
    }
    return with_metadata(model, values, KEYS)


def with_metadata(model: onnx.ModelProto, values: dict[str, str], keys: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose ``facegraft.*`` metadata is ``values`` (in the order of ``keys``);
    metadata of other tools is kept."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [(p.key, p.value) for p in out.metadata_props if not p.key.startswith(PREFIX)]
    del out.metadata_props[:]
    for key, value in kept:
        out.metadata_props.add(key=key, value=value)
    for key in keys:
        out.metadata_props.add(key=PREFIX + key, value=values[key])
    return out


def save(model: onnx.ModelProto, path: PathLike) -> Path:
    """Write ``model`` atomically (temporary file in the target folder, then a rename)."""
    return atomic_write_bytes(path, model.SerializeToString())


def json_metadata(meta: dict[str, str], key: str, where: str,
                  hint: str = "re-export the model with `facegraft export`") -> dict:
    """The JSON object stored under ``facegraft.KEY``; ModelFileError naming ``where`` otherwise."""
    try:
        value = json.loads(meta[PREFIX + key])
    except (KeyError, ValueError) as exc:
        raise ModelFileError(f"the metadata '{PREFIX}{key}' is missing or not JSON", path=where, hint=hint) from exc
    if not isinstance(value, dict):
        raise ModelFileError(f"the metadata '{PREFIX}{key}' is not a JSON object", path=where)
    return value


def is_facegraft(model: onnx.ModelProto) -> bool:
    """True when the graph carries FaceGraft metadata (whether or not it is valid)."""
    return any(p.key == PREFIX + "format_version" for p in model.metadata_props)


def info_from_proto(model: onnx.ModelProto, path: str = "") -> ModelInfo:
    """Check a loaded graph against the contract and describe it; ModelFileError says what is wrong."""
    meta = metadata(model)
    version = meta.get(PREFIX + "format_version")
    if version is None:
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
    coverage = meta[PREFIX + "coverage"]
    if coverage not in COVERAGES:
        raise ModelFileError(f"unknown coverage '{coverage}'", path=path,
                             hint=f"this FaceGraft knows: {', '.join(sorted(COVERAGES))}")
    identities = json_metadata(meta, "identities", path)
    dtype, batch = _check_io(model, resolution, path)
    stored = meta[PREFIX + "content_hash"]
    if stored != content_hash(model):
        raise ModelFileError("the model's content hash does not match its graph: the file was changed after export",
                             path=path, hint="re-export the model, or re-stamp it if the change was intended")
    return ModelInfo(
        path=path, kind=KIND, format_version=version, resolution=resolution, coverage=coverage,
        template=meta[PREFIX + "template"], colorspace=meta[PREFIX + "colorspace"],
        ocio_config=meta[PREFIX + "ocio_config"], source=str(identities.get("source", "")),
        target=str(identities.get("target", "")), input_name=INPUT_NAME, output_names=OUTPUT_NAMES,
        provenance=json_metadata(meta, "provenance", path), content_hash=stored, input_dtype=dtype, batch=batch,
    )


def pack(faces: np.ndarray) -> np.ndarray:
    """The crops as they are: the contract's input is ``[N,3,R,R]`` RGB."""
    return faces


def unpack(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``[swap, mask]`` as float32."""
    return np.asarray(outputs[0], dtype=np.float32), np.asarray(outputs[1], dtype=np.float32)


ADAPTER = ModelAdapter(kind=KIND, recognises=is_facegraft, describe=info_from_proto, pack=pack, unpack=unpack)
