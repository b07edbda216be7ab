"""The per-frame work of a render, stateless given the track file: read and crop (``prepare``),
then composite and write (``finish``). The model call between them is batched across frames by
the scheduler.

``prepare`` reads the plate (every part of a multi-part EXR; and the holdout), crops the tracked
face (``align.crop``, the model's coverage and resolution), sanitises it and converts it to model
space. ``compose`` lays out the output's parts (``output``), composites the face over its region
(``composite.composite``) into the beauty part and puts the FaceGraft layers in parts of their own;
``finish`` writes the frame, the beauty part a strip of scanlines at a time.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import colour, exr, layers
from facegraft.inference.io.frames import FrameSource, Plate, SequenceSource
from facegraft.inference.io.sequence import SequencePattern
from facegraft.inference.models.face_model import FaceModel
from facegraft.inference.models.occlusion import Occluders
from facegraft.inference.render import output
from facegraft.inference.render.composite import FaceLayers, Placement, Spaces, composite
from facegraft.inference.render.report import Timings
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import align
from facegraft.inference.track.trackfile import Face, ShotTrack


@dataclass
class Job:
    """One frame travelling through the pipeline."""

    frame: int
    plate: Optional[Plate] = None
    face: Optional[Face] = None
    holdout: Optional[np.ndarray] = None  # [H, W] over the plate's data window
    occlusion: Optional[np.ndarray] = None  # [h, w] over roi: what stays in front of the swap
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, y1, x0, x1 in the plate array
    crop: Optional[np.ndarray] = None  # [3, R, R] model space, sanitised
    error: Optional[FaceGraftError] = None
    status: str = layers.RENDERED
    note: dict[str, Any] = field(default_factory=dict)


class FrameRenderer:
    """The per-frame work; thread-safe and stateless between frames."""

    def __init__(self, source: FrameSource, track: ShotTrack, model: FaceModel, out: str,
                 settings: RenderSettings, timings: Optional[Timings] = None) -> None:
        self.source = source
        self.track = track
        self.model = model
        self.info = model.info
        self.out = SequencePattern(out)
        self.settings = settings
        self.timings = timings or Timings()
        cfg, plate_cs = settings.ocio_config, settings.plate_colorspace
        model_cfg = self.info.ocio_config or cfg  # the model's space is honoured in its own config
        self.spaces = Spaces(to_model=colour.converter(plate_cs, self.info.colorspace, cfg, model_cfg),
                             to_plate=colour.converter(self.info.colorspace, plate_cs, model_cfg, cfg))
        self.holdout = SequencePattern(settings.holdout) if settings.holdout else None
        self.margin = int(np.ceil(max(-settings.erode, 0.0) + settings.feather)) + 4
        self.occluders = Occluders(settings.occlusion, track, self.info.coverage, os.path.basename(model.path),
                                   device=model.device, plate_space=plate_cs, config=cfg)

    # -- read and crop -------------------------------------------------------------------------
    def prepare(self, frame: int) -> Job:
        """Read ``frame`` and crop its face; a bad frame comes back with ``error`` set."""
        job = Job(frame)
        try:
            start = time.perf_counter()
            job.plate = read_plate(self.source, frame)
            if self.holdout is not None:
                job.holdout = self._read_holdout(frame, job.plate)
            self.timings.add("read", time.perf_counter() - start)
            start = time.perf_counter()
            self._crop(job)
            self._occlusion(job)  # timed with the crop: both prepare the face's inputs
            self.timings.add("crop", time.perf_counter() - start)
        except FaceGraftError as exc:
            job.error = exc
        return job

    def fallback(self, frame: int) -> Optional[Plate]:
        """For --on-error hold: the nearest readable plate frame before ``frame`` (else after it)."""
        frames = sorted(self.source.frames)
        before = [f for f in frames if f < frame][::-1]
        after = [f for f in frames if f > frame]
        for candidate in before + after:
            try:
                return read_plate(self.source, candidate)
            except FaceGraftError:
                continue
        return None

    def _read_holdout(self, frame: int, plate: Plate) -> np.ndarray:
        assert self.holdout is not None
        image = exr.read_image(self.holdout.path(frame), frame)
        try:
            values = image.get([self.settings.holdout_channel])[..., 0]
        except FaceGraftError as exc:
            raise BadFrameError(exc.message, path=image.path, frame=frame,
                                hint="pick the matte's channel with --holdout-channel") from None
        values = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
        # Place the holdout's data window over the plate's (both relative to their display window).
        h, w = plate.shape
        out = np.zeros((h, w), np.float32)
        spec = image.spec
        hx, hy = spec.x - spec.full_x - plate.origin[0], spec.y - spec.full_y - plate.origin[1]
        x0, y0 = max(hx, 0), max(hy, 0)
        x1, y1 = min(hx + spec.width, w), min(hy + spec.height, h)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = values[y0 - hy:y1 - hy, x0 - hx:x1 - hx]
        return out

    def _crop(self, job: Job) -> None:
        assert job.plate is not None
        face = self.track.face(job.frame, self.settings.face)
        if face is None:
            job.status = layers.NO_FACE
            return
        # the face placed the way the model's crop template cuts it (its own geometry for a .dfm)
        face = replace(face, transform=align.model_transform(self.info.template, face.transform, face.landmarks,
                                                             self.info.resolution, self.info.coverage))
        y0, y1, x0, x1 = align.crop_region(face.transform, self.info.resolution, self.info.coverage,
                                           job.plate.origin, job.plate.shape, self.margin)
        if y1 - y0 < 2 or x1 - x0 < 2:
            job.status = layers.NO_FACE
            job.note["reason"] = "face outside the data window"
            return
        job.face, job.roi = face, (y0, y1, x0, x1)
        # the whole plate: align.crop samples only what it needs, exactly as faceset extraction does
        crop = align.crop(job.plate.rgb, face.transform, self.info.resolution, self.info.coverage,
                          origin=job.plate.origin, interpolation="cubic")
        job.crop = np.ascontiguousarray(self.spaces.to_model(crop).transpose(2, 0, 1))

    def _occlusion(self, job: Job) -> None:
        """What stays in front of the swap over the face's region (``--occlusion``)."""
        job.note["occlusion"] = self.occluders.label
        face = self.track.face(job.frame, self.settings.face)  # the track's own transform, not the model's
        if job.face is None or face is None or job.plate is None:
            return
        job.occlusion = self.occluders.matte(job.frame, job.plate.rgb, job.plate.origin, job.plate.display_window,
                                             face.transform, job.roi, self.source.name)

    # -- composite and write -------------------------------------------------------------------
    def finish(self, job: Job, swap: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> None:
        """Composite the model's ``swap`` ``[3, R, R]`` and ``mask`` ``[1, R, R]`` (none for a frame
        without a face, or held) and write the frame."""
        start = time.perf_counter()
        parts = self.compose(job, swap, mask)
        self.timings.add("paste", time.perf_counter() - start)
        start = time.perf_counter()
        exr.write_parts(self.out.path(job.frame), parts, job.frame)
        self.timings.add("write", time.perf_counter() - start)

    def compose(self, job: Job, swap: Optional[np.ndarray], mask: Optional[np.ndarray]) -> list[exr.Part]:
        """One output frame's parts (``output``): the plate's, in order, the beauty part (the one
        holding the RGB) as a recipe of plate channels and constants plus the new pixels over the
        face's region, then a part per FaceGraft layer over that region."""
        plate = job.plate
        assert plate is not None
        parts, index = plate_parts(plate)
        rgb = parts[index]
        stored = rgb.pixels
        dtype = stored.dtype  # the buffers' (float32 for a plate of mixed precision)
        lay = output.layout(rgb.channels, exr.channel_dtypes(rgb.spec))
        beauty = output.FrameOutput(lay.runs, stored, len(lay.names), dtype)
        face: Optional[FaceLayers] = None
        if job.face is not None and job.crop is not None and swap is not None and mask is not None:
            block = beauty.region(job.roi)
            face = self._composite(job, swap, mask, block, lay)
            output.pack(block, lay.index, face)
            beauty.roi, beauty.block = job.roi, block
        attrs = layers.attributes(self.info.content_hash, os.path.basename(self.model.path),
                                  self.settings.params(), job.status, device=self.model.device,
                                  device_fallback=self.model.fallback, **job.note)
        out: list[exr.Part] = []
        for i, image in enumerate(parts):
            if i == index:
                spec = output.header(rgb.spec, lay, dtype.type, attrs, self.settings.compression)
                out.append(exr.Part(spec, rows=beauty.rows))
            elif image.part_name not in layers.PARTS.values():  # a render used as a plate: new layers replace its own
                out.append(exr.Part(output.passthrough_header(image.spec, attrs), pixels=image.pixels))
        out += output.layers_parts(rgb.spec, self.settings.groups, lay.new_format, attrs, face, job.roi, job.holdout)
        output.name_parts([p.spec for p in out])
        return out

    def _composite(self, job: Job, swap: np.ndarray, mask: np.ndarray, block: np.ndarray,
                   lay: output.Layout) -> FaceLayers:
        """The face over ``job.roi``; ``block`` holds the frame there (the pass-through pixels)."""
        plate, face, crop = job.plate, job.face, job.crop
        assert plate is not None and face is not None and crop is not None
        y0, y1, x0, x1 = job.roi
        place = Placement(face.transform, face.landmarks, self.info.resolution, self.info.coverage,
                          origin=(plate.origin[0] + x0, plate.origin[1] + y0), shape=(y1 - y0, x1 - x0))
        index = lay.index
        return composite(
            plate.rgb[y0:y1, x0:x1], crop.transpose(1, 2, 0), swap.transpose(1, 2, 0), mask[0], place,
            self.settings, self.spaces,
            holdout=None if job.holdout is None else job.holdout[y0:y1, x0:x1], occlusion=job.occlusion,
            background=block[..., index["R"]:index["B"] + 1],
            plate_alpha=block[..., index["A"]] if lay.has_alpha else None,
            precision=lay.new_format, alpha_precision=lay.alpha_format, groups=self.settings.groups,
        )


def read_plate(source: FrameSource, frame: int) -> Plate:
    """The plate of ``frame`` for a render: every part of an EXR sequence frame, ``Plate.rgb`` a view
    of the RGB part's stored pixels (``SequenceSource.read_parts``); what ``source.read`` gives for
    any other source. Everything the renderer takes from ``rgb`` goes through ``colour.sanitize``
    (float32, exact for half), so the crops and pixels are the same either way."""
    if isinstance(source, SequenceSource):
        return source.read_parts(frame)
    return source.read(frame)


def plate_parts(plate: Plate) -> tuple[list[exr.Image], int]:
    """The plate's parts as stored and the index of the one holding the RGB (a single float32 part
    for a source that is not an EXR sequence)."""
    if plate.parts:
        return plate.parts, plate.part
    if plate.image is not None:
        return [plate.image], 0
    h, w = plate.shape
    spec = exr.new_spec(w, h, ["R", "G", "B"], np.float32)
    return [exr.Image(np.asarray(plate.rgb, np.float32), spec)], 0
