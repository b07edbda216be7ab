"""The per-shot occlusion model file, and running it over a render's frames.

A shot's occlusion model (``facegraft occlusion train``) is a small segmentation network over
aligned face crops: what passes in front of the face (glasses, a hand, a prop), learned from a
few roto keyframes. Contract (format version 1):

* input ``face`` ``[N, 3, R, R]`` float32, NCHW RGB in the model's colour space (ACEScct), the
  crop ``align.crop`` cuts from the shot track's transform (template ``facegraft-5pt-v1``) at the
  model's resolution and coverage;
* output ``occlusion`` ``[N, 1, R, R]`` in 0..1 (1: something in front of the face);
* ``metadata_props``: ``facegraft.kind`` = ``occlusion``, ``.format_version``, ``.resolution``,
  ``.coverage``, ``.template``, ``.colorspace``, ``.ocio_config``, ``.plate`` (JSON: the display
  window it was trained on, the plate and roto it came from, the keyframes), ``.provenance``
  (JSON) and ``.content_hash`` (SHA-256 of the model with its metadata cleared).

``ADAPTER`` lets ``formats`` recognise and describe such a file (``facegraft model-info``); it is
never a face model, and running it as one is refused. ``OcclusionModel`` loads one for a render:
``matte`` predicts a face's occlusion and warps it onto the region of the plate being composited.
``Occluders`` is what a render keeps in front of the swap (``--occlusion``): the hands of the
shot track, and such a model's matte.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import onnx

from facegraft.inference import __version__
from facegraft.inference.errors import ModelFileError
from facegraft.inference.io import colour
from facegraft.inference.models import checks, dfm, modelfile
from facegraft.inference.models.base import ModelAdapter, ModelInfo
from facegraft.inference.models.onnx_graph import content_hash, dims, float_type, metadata, shape_text
from facegraft.inference.models.runtime import create_session
from facegraft.inference.track import align, hands
from facegraft.inference.track.trackfile import ShotTrack

KIND = "occlusion"
FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
PREFIX = "facegraft."
KEYS = ("kind", "format_version", "resolution", "coverage", "template", "colorspace", "ocio_config", "plate",
        "provenance", "content_hash")
INPUT_NAME = "face"
OUTPUT_NAME = "occlusion"
#: How far a render grows the model's matte before it holds the swap off it, in the model's own
#: pixels (its crop's): the network is unsure over a pixel or so of the occluder's edge, and a swap
#: painted over the occluder's edge shows far more than a sliver of the plate's own face beside it.
#: The smallest grow that takes the swap off the occluders' edges in bench/occlusion.py (docs/occlusion.md).
GROW = 0.75

PathLike = Union[str, Path]


def is_occlusion(model: onnx.ModelProto) -> bool:
    """True when the graph says it is a FaceGraft occlusion model."""
    return metadata(model).get(PREFIX + "kind") == KIND


def _check_io(model: onnx.ModelProto, resolution: int, where: Optional[str]) -> None:
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    if INPUT_NAME not in inputs:
        raise ModelFileError(f"the occlusion model has no input named '{INPUT_NAME}' (inputs: {', '.join(inputs)})",
                             path=where, hint="train it with `facegraft occlusion train`")
    face = inputs[INPUT_NAME]
    shape = dims(face)
    if float_type(face) != "float32" or len(shape) != 4 or shape[1:] != [3, resolution, resolution]:
        raise ModelFileError(f"the 'face' input is [{shape_text(shape)}] {float_type(face) or 'not float'}, but the "
                             f"metadata says resolution {resolution}: expected float32 [N,3,{resolution},{resolution}]",
                             path=where, hint="train the occlusion model again")
    outputs = {o.name: dims(o) for o in graph.output}
    if OUTPUT_NAME not in outputs:
        raise ModelFileError(f"the occlusion model has no output named '{OUTPUT_NAME}' "
                             f"(outputs: {', '.join(outputs)})", path=where)
    out = outputs[OUTPUT_NAME]
    if len(out) != 4 or out[1:] != [1, resolution, resolution]:
        raise ModelFileError(f"the 'occlusion' output is [{shape_text(out)}], expected [N,1,{resolution},{resolution}]",
                             path=where)


def stamp(model: onnx.ModelProto, *, resolution: int, coverage: str, plate: dict, provenance: Optional[dict] = None,
          colorspace: str = colour.DEFAULT_MODEL_SPACE, ocio_config: str = colour.DEFAULT_CONFIG) -> onnx.ModelProto:
    """A copy of ``model`` carrying the occlusion metadata. ``plate`` holds at least
    ``display_window`` ([x, y, w, h], the plate's), and says where the model came from."""
    if coverage not in align.COVERAGES:
        raise ModelFileError(f"unknown coverage '{coverage}'", hint=f"use one of: {', '.join(align.COVERAGES)}")
    if "display_window" not in plate:
        raise ValueError("plate metadata needs the display window the model was trained on")
    _check_io(model, int(resolution), None)
    values = {
        "kind": KIND, "format_version": FORMAT_VERSION, "resolution": str(int(resolution)), "coverage": coverage,
        "template": align.TEMPLATE_NAME, "colorspace": colorspace, "ocio_config": ocio_config,
        "plate": json.dumps(plate, sort_keys=True, default=str),
        "provenance": json.dumps({"facegraft_version": __version__, **(provenance or {})}, sort_keys=True, default=str),
        "content_hash": content_hash(model),  # of the graph and weights: the metadata is left out
    }
    return modelfile.with_metadata(model, values, KEYS)


save = modelfile.save  # an occlusion model is written like a face model: atomically


def _json(meta: dict[str, str], key: str, where: str) -> dict:
    return modelfile.json_metadata(meta, key, where, hint="train the occlusion model again")


def info_from_proto(model: onnx.ModelProto, path: str = "") -> ModelInfo:
    """Check a loaded graph against the occlusion contract and describe it (``provenance`` also
    holds the ``plate`` block)."""
    meta = metadata(model)
    if meta.get(PREFIX + "kind") != KIND:
        raise ModelFileError("not a FaceGraft occlusion model (no facegraft.kind = occlusion)", path=path,
                             hint="train one with `facegraft occlusion train`; a face model goes to --model")
    version = meta.get(PREFIX + "format_version")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(f"occlusion model format version {version} is not supported by FaceGraft {__version__} "
                             f"(supported: {', '.join(SUPPORTED_VERSIONS)})", path=path,
                             hint="update FaceGraft, or train the occlusion model again with this version")
    missing = [PREFIX + k for k in KEYS if PREFIX + k not in meta]
    if missing:
        raise ModelFileError(f"missing metadata: {', '.join(missing)}", path=path,
                             hint="train the occlusion model again")
    try:
        resolution = int(meta[PREFIX + "resolution"])
    except ValueError:
        raise ModelFileError(f"bad resolution metadata '{meta[PREFIX + 'resolution']}'", path=path) from None
    coverage = meta[PREFIX + "coverage"]
    if coverage not in align.COVERAGES:
        raise ModelFileError(f"unknown coverage '{coverage}'", path=path,
                             hint=f"this FaceGraft knows: {', '.join(align.COVERAGES)}")
    plate = _json(meta, "plate", path)
    provenance = _json(meta, "provenance", path)
    _check_io(model, resolution, path)
    if meta[PREFIX + "content_hash"] != content_hash(model):
        raise ModelFileError("the occlusion model's content hash does not match its graph: the file was changed "
                             "after training", path=path, hint="train it again")
    return ModelInfo(
        path=path, kind=KIND, format_version=version, resolution=resolution, coverage=coverage,
        template=meta[PREFIX + "template"], colorspace=meta[PREFIX + "colorspace"],
        ocio_config=meta[PREFIX + "ocio_config"], source="", target="", input_name=INPUT_NAME,
        output_names=(OUTPUT_NAME,), provenance={**provenance, "plate": plate},
        content_hash=meta[PREFIX + "content_hash"],
    )


def _pack(faces: np.ndarray) -> np.ndarray:
    return faces


def _refuse(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    raise ModelFileError("this is an occlusion model, not a face model",
                         hint="pass it to `facegraft render` with --occlusion, and a face model with --model")


#: The face model formats, to name what was passed instead of an occlusion model.
FACE_ADAPTERS = (modelfile.ADAPTER, dfm.ADAPTER)
ADAPTER = ModelAdapter(kind=KIND, recognises=is_occlusion, describe=info_from_proto, pack=_pack, unpack=_refuse)


def read(path: PathLike) -> ModelInfo:
    """Load and check an occlusion model file; ModelFileError says what is wrong (a face model, too)."""
    model = checks.load_proto(path)
    if not is_occlusion(model):
        what = next((a.kind for a in FACE_ADAPTERS if a.recognises(model)), modelfile.ADAPTER.kind)
        raise ModelFileError(f"this is a {what} face model, not an occlusion model", path=str(path),
                             hint="pass an occlusion model (from `facegraft occlusion train`) to --occlusion")
    info = info_from_proto(model, str(path))
    checks.check_template(info)
    checks.check_weights(model, path)
    return info


class OcclusionModel:
    """A loaded occlusion model; ``predict`` is thread-safe (calls are serialised, batch of one:
    the same bytes for a frame alone or in any chunk)."""

    def __init__(self, path: PathLike, device: str = "auto", threads: Optional[int] = 1) -> None:
        self.path = str(path)
        self.info = read(path)
        self.plate = dict(self.info.provenance.get("plate", {}))
        self.session = create_session(self.path, device=device, threads=threads)
        self._lock = threading.Lock()

    @property
    def resolution(self) -> int:
        return self.info.resolution

    def check_plate(self, display_window: Sequence[int], plate_path: str, frame: Optional[int] = None) -> None:
        """ModelFileError when the plate's frame is not the size the model was trained on."""
        trained = [int(v) for v in self.plate.get("display_window", [])]
        if trained and list(display_window)[2:] != trained[2:]:
            where = plate_path if frame is None else f"frame {frame} of {plate_path}"
            raise ModelFileError(
                f"the occlusion model was trained on a {trained[2]}x{trained[3]} plate, but {where} is "
                f"{display_window[2]}x{display_window[3]}", path=self.path, frame=frame,
                hint="train the occlusion model on this plate (`facegraft occlusion train`)")

    def check_coverage(self, coverage: str, what: str) -> None:
        """ModelFileError when the model's crop does not hold all of ``coverage``'s (the face model's)."""
        if not covers(self.info.coverage, coverage):
            raise ModelFileError(
                f"the occlusion model sees '{self.info.coverage}' crops, smaller than the '{coverage}' crops of "
                f"{what}: it cannot say what covers the rest", path=self.path,
                hint=f"train the occlusion model with --coverage {coverage} (or larger)")

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """``[N, R, R]`` occlusion (0..1) for crops ``[N, 3, R, R]`` in the model's colour space."""
        out = []
        for crop in np.asarray(crops, dtype=np.float32):
            with self._lock:
                try:
                    value = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(crop[None])})[0]
                except Exception as exc:  # onnxruntime's own error types
                    raise ModelFileError(f"the occlusion model failed to run: {exc}", path=self.path) from exc
            out.append(np.clip(np.asarray(value, np.float32)[0, 0], 0.0, 1.0))
        res = self.resolution
        return np.stack(out) if out else np.zeros((0, res, res), np.float32)

    def matte(self, rgb: np.ndarray, origin: Sequence[float], transform: np.ndarray, to_model: colour.Converter,
              region: tuple[int, int, int, int], grow: float = 0.0) -> np.ndarray:
        """The occlusion of the face at ``transform`` over ``region`` (y0, y1, x0, x1 of the plate
        array ``rgb``, whose first pixel is at ``origin``), 0 outside the model's crop; ``grow``:
        the predicted matte grown by that many of its pixels first (``grow_matte``)."""
        res, coverage = self.resolution, self.info.coverage
        crop = align.crop(rgb, transform, res, coverage, origin=origin, interpolation="cubic")
        predicted = self.predict(to_model(crop).transpose(2, 0, 1)[None])[0]
        if grow > 0:
            predicted = grow_matte(predicted, grow)
        y0, y1, x0, x1 = region
        shape = (y1 - y0, x1 - x0)
        matte, footprint = align.uncrop(predicted, transform, coverage, shape,
                                        (origin[0] + x0, origin[1] + y0), "linear")
        return np.clip(matte, 0.0, 1.0) * footprint


def grow_matte(matte: np.ndarray, radius: float) -> np.ndarray:
    """``matte`` grown by ``radius`` pixels: a grey dilation by a disc, so its soft edge moves out
    whole and a partial value (a tinted lens) stays what it is; a fractional radius blends the
    dilations by the whole radii either side of it."""
    matte = np.asarray(matte, np.float32)
    if radius <= 0:
        return matte
    low = int(np.floor(radius))
    blend = float(radius - low)
    inner = _dilate(matte, low)
    if blend < 1e-6:
        return inner
    return (1.0 - blend) * inner + blend * _dilate(matte, low + 1)


def _dilate(matte: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return matte
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = ((xx * xx + yy * yy) <= radius * radius).astype(np.uint8)
    return cv2.dilate(matte, disc, borderType=cv2.BORDER_REPLICATE)


def covers(outer: str, inner: str) -> bool:
    """True when a crop of coverage ``outer`` holds every pixel of one of ``inner`` (same face)."""
    size_o, (cx_o, cy_o) = align.COVERAGES[outer]
    size_i, (cx_i, cy_i) = align.COVERAGES[inner]
    eps = 1e-9
    return (cx_o - size_o / 2 <= cx_i - size_i / 2 + eps and cx_i + size_i / 2 <= cx_o + size_o / 2 + eps
            and cy_o - size_o / 2 <= cy_i - size_i / 2 + eps and cy_i + size_i / 2 <= cy_o + size_o / 2 + eps)


def load(path: PathLike, device: str = "auto", threads: Optional[int] = 1) -> OcclusionModel:
    """Load and check an occlusion model for a render."""
    return OcclusionModel(path, device=device, threads=threads)


def content_hash_of(setting: str) -> Optional[str]:
    """The content hash of the occlusion model ``--occlusion`` names (checked as ``read`` does);
    None for ``auto`` and ``none``. A render's stamp holds it, not the file's name: a retrained
    model renders its frames again, the same model moved or renamed keeps them."""
    if setting in ("auto", "none"):
        return None
    return read(setting).content_hash


def missing_hands_warning(setting: str, track: ShotTrack) -> Optional[str]:
    """What to tell the user when ``--occlusion`` wants the track's hands and the track has none."""
    if setting == "none" or track.hands_searched:
        return None
    return ("the track file has no hand data (tracked with --no-hands, or by an older FaceGraft): no hands are "
            "kept in front of the swap (the frames say so in facegraft/occlusion); track the shot again to find them")


class Occluders:
    """What a render keeps in front of the swap (``--occlusion``): ``auto`` the hands the shot
    track found, ``none`` nothing, a model file that model's matte and the hands. ``matte`` gives
    it over a face's region of one frame; ``label`` names it for the header, ``warning`` says
    when ``auto`` has nothing to work with (a track made without hands)."""

    def __init__(self, setting: str, track: ShotTrack, face_coverage: str, face_model: str, *,
                 device: str = "cpu", plate_space: str = colour.DEFAULT_PLATE_SPACE,
                 config: str = colour.DEFAULT_CONFIG, track_path: Optional[str] = None) -> None:
        self.track = track
        self.grow = GROW  # the model's matte is grown by this many of its pixels (see GROW)
        self.hands = setting != "none" and track.hands_searched
        self.model: Optional[OcclusionModel] = None
        self.warning: Optional[str] = None
        if setting not in ("auto", "none"):
            self.model = load(setting, device="cuda" if device in ("cuda", "tensorrt") else "cpu")
            self.model.check_coverage(face_coverage, face_model)
            window = track.plate.get("display_window")
            if window:  # before any frame is read: the plate the shot was tracked on
                self.model.check_plate(window, f"the plate of the shot track ({track.plate.get('pattern') or track_path})")
            info = self.model.info
            self.to_model = colour.converter(plate_space, info.colorspace, config, info.ocio_config or config)
        self.warning = missing_hands_warning(setting, track)
        parts = (["hands"] if self.hands else []) + ([f"model {Path(setting).name}"] if self.model else [])
        self.label = " + ".join(parts) if parts else ("none" if setting == "none" else "none (no hand data)")

    @property
    def active(self) -> bool:
        return self.hands or self.model is not None

    def matte(self, frame: int, rgb: np.ndarray, origin: Sequence[float], display_window: Sequence[int],
              transform: np.ndarray, region: tuple[int, int, int, int], plate_path: str = "") -> Optional[np.ndarray]:
        """``[h, w]`` 0..1 over ``region`` (y0, y1, x0, x1 of the plate array ``rgb``, first pixel at
        ``origin``) for the face at ``transform`` (the track's) on ``frame``; None when nothing is kept."""
        if not self.active:
            return None
        y0, y1, x0, x1 = region
        shape = (y1 - y0, x1 - x0)
        out = np.zeros(shape, np.float32)
        record = self.track.frames.get(frame)
        if self.hands and record is not None and record.hands:
            out = hands.hands_matte([h.landmarks for h in record.hands], shape, (origin[0] + x0, origin[1] + y0))
        if self.model is not None:
            self.model.check_plate(display_window, plate_path, frame)
            np.maximum(out, self.model.matte(rgb, origin, transform, self.to_model, region, grow=self.grow), out=out)
        return out
