"""Rendering a shot: per-frame face replacement, pipelined across frames.

Per frame (stateless given the track file, so any chunking gives the same bytes):
crop the tracked face from the plate (``align.crop``, the model's coverage and resolution),
sanitise, convert to model space, run the model (batched across frames), colour match inside
the matte, convert back to plate space, warp back onto the plate (``align.uncrop``), build the
matte (model mask x FaceMesh face matte, erode/feather in plate px, minus the holdout), blend,
composite, write the layers of ``facegraft.inference.io.layers``.

Pixels where the final matte is 0 are copied from the stored plate pixels (``np.where`` on the
stored dtype), so they are bit-identical, NaN and values above 1 included. All work happens on
a region of interest around the face; the rest of the frame is never touched: the output is
built a strip of scanlines at a time in a reused buffer (plate channels copied, FaceGraft
layers filled with 0, the face's region pasted in) and each strip goes to the encoder at once.

The shot render overlaps the stages: reader threads decode plates and cut crops, the calling
thread runs the model on batches of crops, writer threads paste and encode. Queues are bounded.
OpenImageIO releases the GIL while it decodes and encodes and threads inside each file.
Which frames share a model call (and their slots in it) depends on frame numbers only, so a
frame gets the same bytes whatever the timing, the chunking or a resumed render.
"""
from __future__ import annotations

import glob
import json
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import colour, exr, layers
from facegraft.inference.io.frames import FrameSource, Plate, SequenceSource
from facegraft.inference.io.sequence import SequencePattern, format_frames
from facegraft.inference.models.face_model import FaceModel
from facegraft.inference.progress import Progress
from facegraft.inference.render import blend, colormatch
from facegraft.inference.render.settings import ON_ERROR, RenderSettings
from facegraft.inference.track import align, mattes
from facegraft.inference.track.trackfile import Face, ShotTrack


@dataclass
class Timings:
    """Seconds spent per stage (summed over threads) and the wall time of the render."""

    read: float = 0.0
    crop: float = 0.0
    model: float = 0.0
    paste: float = 0.0
    write: float = 0.0
    wall: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            setattr(self, stage, getattr(self, stage) + seconds)

    def as_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 3) for k in ("read", "crop", "model", "paste", "write", "wall")}


@dataclass
class RenderReport:
    rendered: list[int] = field(default_factory=list)
    no_face: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # failed frames with --on-error skip (no file written)
    existing: list[int] = field(default_factory=list)  # already complete, not rendered again
    errors: dict[int, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)

    @property
    def written(self) -> int:
        return len(self.rendered) + len(self.no_face) + len(self.held)


@dataclass
class Job:
    """One frame travelling through the pipeline."""

    frame: int
    plate: Optional[Plate] = None
    face: Optional[Face] = None
    holdout: Optional[np.ndarray] = None  # [H, W] over the plate's data window
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
        self.to_model = colour.converter(plate_cs, self.info.colorspace, cfg)
        self.to_plate = colour.converter(self.info.colorspace, plate_cs, cfg)
        self.holdout = SequencePattern(settings.holdout) if settings.holdout else None
        self.margin = int(np.ceil(max(-settings.erode, 0.0) + settings.feather)) + 4

    # -- stage 1: read and crop ---------------------------------------------------------------
    def prepare(self, frame: int) -> Job:
        job = Job(frame)
        try:
            start = time.perf_counter()
            job.plate = _read_plate(self.source, frame)
            if self.holdout is not None:
                job.holdout = self._read_holdout(frame, job.plate)
            self.timings.add("read", time.perf_counter() - start)
            start = time.perf_counter()
            self._crop(job)
            self.timings.add("crop", time.perf_counter() - start)
        except FaceGraftError as exc:
            job.error = exc
        return job

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
        job.crop = np.ascontiguousarray(self.to_model(crop).transpose(2, 0, 1))

    # -- stage 3: paste, composite, write -----------------------------------------------------
    def finish(self, job: Job, swap: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> None:
        start = time.perf_counter()
        frame_out = self.compose(job, swap, mask)
        self.timings.add("paste", time.perf_counter() - start)
        start = time.perf_counter()
        exr.write_image_rows(self.out.path(job.frame), frame_out.spec, frame_out.rows, job.frame)
        self.timings.add("write", time.perf_counter() - start)

    def compose(self, job: Job, swap: Optional[np.ndarray], mask: Optional[np.ndarray]) -> FrameOutput:
        """One output frame: its header, and its pixels as a recipe (plate channels, constants,
        the holdout) plus the new pixels over the face's region; ``FrameOutput.rows`` builds any
        strip of scanlines."""
        plate = job.plate
        assert plate is not None
        stored, plate_channels, like = _stored(plate)
        dtype = stored.dtype  # the buffers' (float32 for a plate of mixed precision)
        stored_formats = exr.channel_dtypes(like)
        # new pixels (beauty, FaceGraft layers) are half when the plate's RGB is
        rgb_half = all(stored_formats[plate_channels.index(c)] == np.float16 for c in ("R", "G", "B"))
        new_format: type = np.float16 if rgb_half else np.float32
        names = layers.channels(plate_channels, self.settings.groups)
        has_alpha = "A" in plate_channels
        sources: list[tuple[str, Any]] = []
        formats: list[type] = []  # per output channel: a plate channel keeps its stored precision
        for name in names:
            if name in layers.FACEGRAFT:
                held = name == "matte.holdout" and job.holdout is not None
                sources.append(("plane", job.holdout) if held else ("const", 0.0))
                formats.append(new_format)
            elif name == "A" and not has_alpha:
                sources.append(("const", 1.0))
                formats.append(new_format)
            else:
                sources.append(("copy", plate_channels.index(name)))
                formats.append(stored_formats[plate_channels.index(name)])
        out = FrameOutput(_runs(sources), stored, len(names), dtype)
        if job.face is not None and swap is not None and mask is not None:
            y0, y1, x0, x1 = job.roi
            block = np.empty((y1 - y0, x1 - x0, len(names)), dtype)
            out.fill(block, y0, y1, x0, x1)
            index = {n: i for i, n in enumerate(names)}
            alpha_format = formats[index["A"]] if has_alpha else new_format
            self._paste(job, swap, mask, block, index, has_alpha, new_format, alpha_format)
            out.roi, out.block = job.roi, block
        attrs = layers.attributes(self.info.content_hash, os.path.basename(self.model.path),
                                  self.settings.params(), job.status, **job.note)
        spec = exr.make_spec(like, names, dtype.type, attrs, self.settings.compression, formats=formats)
        if like.getattribute("DateTime") is None:
            spec.attribute("DateTime", "")  # else OpenImageIO stamps the time of writing: bytes would vary
        out.spec = spec
        return out

    def _paste(self, job: Job, swap: np.ndarray, mask: np.ndarray, block: np.ndarray,
               index: dict[str, int], has_alpha: bool, new_format: type = np.float16,
               alpha_format: type = np.float16) -> None:
        """Composite the face into ``block`` (all output channels over ``job.roi``, filled with
        what the frame holds off the face) and fill the FaceGraft layers there.

        New pixels are rounded to the precision they are stored in (``new_format`` for the beauty
        RGB and the FaceGraft layers, ``alpha_format`` for A) before they go into ``block``, so
        the encoder's conversion of a float32 buffer to per-channel half is exact."""
        plate, face, info, s = job.plate, job.face, self.info, self.settings
        assert plate is not None and face is not None and job.crop is not None
        res, cov = info.resolution, info.coverage
        y0, y1, x0, x1 = job.roi
        roi_shape = (y1 - y0, x1 - x0)
        roi_origin = (plate.origin[0] + x0, plate.origin[1] + y0)

        # colour match in model space, inside the model mask x mesh matte of the crop
        swap_face = swap.transpose(1, 2, 0)
        if s.color_match != "none":
            pts_crop = align.apply(align.crop_matrix(face.transform, res, cov), face.landmarks[:, :2])
            matte_crop = mask[0] * mattes.face_matte(pts_crop, (res, res), s.forehead)
            swap_face = colormatch.match(swap_face, job.crop.transpose(1, 2, 0), matte_crop, s.color_match)
        # multiband blends in the model's (log) space, where a band added to a dark plate cannot
        # go negative; alpha needs the swap in plate space only
        log_blend = s.blend == "multiband"
        swap_src = np.ascontiguousarray(swap_face) if log_blend else self.to_plate(swap_face)

        # back onto the plate: colour, model mask, footprint; the face matte drawn at plate resolution
        swap_roi, footprint = align.uncrop(swap_src, face.transform, cov, roi_shape, roi_origin, "cubic")
        mask_roi, _ = align.uncrop(np.ascontiguousarray(mask[0]), face.transform, cov, roi_shape, roi_origin, "linear")
        pts_roi = np.asarray(face.landmarks[:, :2], np.float64) - np.asarray(roi_origin, np.float64)
        mesh_roi = mattes.face_matte(pts_roi, roi_shape, s.forehead)
        raw = np.clip(mask_roi, 0.0, 1.0) * mesh_roi * footprint
        alpha = mattes.erode_feather(raw, s.erode, s.feather) * footprint
        if job.holdout is not None:
            alpha *= 1.0 - job.holdout[y0:y1, x0:x1]
        # quantise the matte to the output precision first: "matte == 0" then means "plate pixel"
        alpha = np.clip(alpha, 0.0, 1.0).astype(new_format).astype(np.float32)
        inside = alpha > 0

        plate_roi = colour.sanitize(plate.rgb[y0:y1, x0:x1])
        if log_blend:
            # outside the matte the swap holds whatever the crop's border repeated; fill it with the
            # plate so the coarse pyramid levels do not carry that into the face
            plate_log = self.to_model(plate_roi)
            a3_fill = alpha[..., None]
            swap_filled = swap_roi * a3_fill + plate_log * (1.0 - a3_fill)
            colour_roi = self.to_plate(blend.face_colour(plate_log, swap_filled, alpha, s.blend))
        else:
            colour_roi = blend.face_colour(plate_roi, swap_roi, alpha, s.blend)
        a3 = alpha[..., None]
        premult = colour_roi * a3
        composite = premult + plate_roi * (1.0 - a3)

        rgb = block[..., index["R"]:index["B"] + 1]
        rgb[...] = np.where(inside[..., None], composite.astype(new_format), rgb)
        if has_alpha:
            plate_a = block[..., index["A"]]
            merged = (alpha + np.nan_to_num(plate_a.astype(np.float32), nan=0.0) * (1.0 - alpha)).astype(alpha_format)
            plate_a[...] = np.where(inside, merged, plate_a)
        if "swap.R" in index:
            block[..., index["swap.R"]:index["swap.B"] + 1] = np.where(inside[..., None], premult, 0.0).astype(new_format)
            block[..., index["swap.A"]] = alpha.astype(new_format)
        if "matte.face" in index:
            block[..., index["matte.face"]] = raw.astype(new_format)
        if "stmap.R" in index:
            st_s, st_t = align.stmap_planes(face.transform, res, cov, roi_shape, roi_origin)
            block[..., index["stmap.R"]] = st_s.astype(new_format)
            block[..., index["stmap.G"]] = st_t.astype(new_format)


_Run = tuple[int, int, str, Any]  # first output channel, count, kind (copy/const/plane), source
_strips = threading.local()


def _runs(sources: list[tuple[str, Any]]) -> list[_Run]:
    """Merge per-channel sources into runs: consecutive plate channels, equal constants."""
    runs: list[_Run] = []
    for channel, (kind, source) in enumerate(sources):
        if runs:
            first, count, last_kind, last = runs[-1]
            if kind == last_kind == "copy" and source == last + count:
                runs[-1] = (first, count + 1, kind, last)
                continue
            if kind == last_kind == "const" and source == last:
                runs[-1] = (first, count + 1, kind, last)
                continue
        runs.append((channel, 1, kind, source))
    return runs


class FrameOutput:
    """An output frame built a strip of scanlines at a time (see ``FrameRenderer.compose``).

    Off the face's region every pixel comes straight from the plate's stored array (or is a
    constant), so the only full-frame work is one copy per strip into a reused buffer, and the
    encoder takes each strip as soon as it is built.
    """

    def __init__(self, runs: list[_Run], stored: np.ndarray, nchannels: int, dtype: np.dtype) -> None:
        self.runs = runs
        self.stored = stored
        self.nchannels = nchannels
        self.dtype = dtype
        self.spec: Any = None
        self.roi: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.block: Optional[np.ndarray] = None  # all channels over roi

    def fill(self, out: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> None:
        """``out[...] =`` the frame off the face over rows ``y0:y1`` and columns ``x0:x1``."""
        for first, count, kind, source in self.runs:
            if kind == "copy":
                out[..., first:first + count] = self.stored[y0:y1, x0:x1, source:source + count]
            elif kind == "const":
                out[..., first:first + count] = source
            else:
                out[..., first] = source[y0:y1, x0:x1]

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` of the frame, ``[y1 - y0, W, C]``; a view of a per-thread buffer that
        the next call overwrites."""
        width = self.stored.shape[1]
        shape = (width, self.nchannels)
        buffer: Optional[np.ndarray] = getattr(_strips, "buffer", None)
        if buffer is None or buffer.shape[1:] != shape or buffer.dtype != self.dtype or len(buffer) < y1 - y0:
            buffer = np.empty((y1 - y0, *shape), self.dtype)
            _strips.buffer = buffer
        return self._build(buffer[: y1 - y0], y0, y1)

    def _build(self, out: np.ndarray, y0: int, y1: int) -> np.ndarray:
        self.fill(out, y0, y1, 0, out.shape[1])
        ry0, ry1, rx0, rx1 = self.roi
        top, bottom = max(y0, ry0), min(y1, ry1)
        if self.block is not None and bottom > top:
            out[top - y0:bottom - y0, rx0:rx1] = self.block[top - ry0:bottom - ry0]
        return out


def _read_plate(source: FrameSource, frame: int) -> Plate:
    """``source.read(frame)``, but an EXR plate taken as it is stored keeps ``Plate.rgb`` a view of
    the stored pixels (half stays half) instead of a float32 copy of the whole frame. Everything
    the renderer takes from ``rgb`` goes through ``colour.sanitize`` (float32, exact for half), so
    the crops and pixels are the same either way."""
    if not isinstance(source, SequenceSource) or source.converts:
        return source.read(frame)
    image = exr.read_image(source.path(frame), frame)
    try:
        first = [image.index(c) for c in ("R", "G", "B")]
    except FaceGraftError as exc:
        raise BadFrameError(exc.message, path=image.path, frame=frame,
                            hint="FaceGraft needs R, G and B channels in the plate") from None
    pixels = image.pixels
    consecutive = first == list(range(first[0], first[0] + 3))
    rgb = pixels[..., first[0]:first[0] + 3] if consecutive else pixels[..., first]
    spec = image.spec
    return Plate(frame, rgb, (spec.x - spec.full_x, spec.y - spec.full_y), image.display_window, image)


def _stored(plate: Plate) -> tuple[np.ndarray, list[str], Any]:
    """The plate's stored pixels, channel names and header (a float header for non-EXR sources)."""
    if plate.image is not None:
        return plate.image.pixels, plate.image.channels, plate.image.spec
    h, w = plate.shape
    spec = exr.new_spec(w, h, ["R", "G", "B"], np.float32)
    return np.asarray(plate.rgb, np.float32), ["R", "G", "B"], spec


def remove_stale_temps(out: SequencePattern, frames: list[int]) -> int:
    """Delete temporary files a killed render left for ``frames`` (exr's ``.NAME.*.tmp.EXT``)."""
    removed = 0
    for frame in frames:
        target = Path(out.path(frame))
        for tmp in glob.glob(str(target.with_name(f".{glob.escape(target.stem)}.*.tmp{target.suffix}"))):
            try:
                os.unlink(tmp)
                removed += 1
            except OSError:
                pass
    return removed


def _same_file(out_path: str, source: FrameSource, frame: int) -> bool:
    """True when ``out_path`` is the plate's own file for ``frame`` (however either is spelled:
    ``./``, ``..``, ``####`` or ``%04d``, symbolic links)."""
    plate_path = source.path(frame) if isinstance(source, SequenceSource) else getattr(source, "name", None)
    if not plate_path:
        return False
    return os.path.realpath(out_path) == os.path.realpath(plate_path)


def _fallback_frame(renderer: FrameRenderer, frame: int) -> Optional[Plate]:
    """For --on-error hold: the nearest readable plate frame before ``frame`` (else after it)."""
    frames = sorted(renderer.source.frames)
    before = [f for f in frames if f < frame][::-1]
    after = [f for f in frames if f > frame]
    for candidate in before + after:
        try:
            return renderer.source.read(candidate)
        except FaceGraftError:
            continue
    return None


def render_shot(
    source: FrameSource,
    track: ShotTrack,
    model: FaceModel,
    out: str,
    settings: RenderSettings,
    *,
    frames: Optional[list[int]] = None,
    on_error: str = "fail",
    overwrite: bool = False,
    readers: int = 2,
    writers: int = 2,
    progress: Optional[Progress] = None,
    track_path: Optional[str] = None,
    log: Callable[[str], None] = lambda message: None,
) -> RenderReport:
    """Render ``frames`` (default: all of ``source``) to ``out``; see the module docstring."""
    if on_error not in ON_ERROR:
        raise FaceGraftError(f"unknown --on-error '{on_error}'", hint=f"one of {', '.join(ON_ERROR)}")
    report = RenderReport()
    wanted = list(frames if frames is not None else source.frames)
    track.require_frames(wanted, track_path)
    renderer = FrameRenderer(source, track, model, out, settings, report.timings)
    pattern = renderer.out
    if wanted and _same_file(pattern.path(wanted[0]), source, wanted[0]):
        raise FaceGraftError("--out is the plate itself", path=out, hint="write the render to its own folder")
    if overwrite:
        todo = list(wanted)
    else:
        report.existing = [f for f in wanted if exr.is_complete(pattern.path(f))]
        done = set(report.existing)
        todo = [f for f in wanted if f not in done]
    removed = remove_stale_temps(pattern, todo)
    if removed:
        log(f"removed {removed} temporary file(s) left by an interrupted render")
    if report.existing:
        log(f"{len(report.existing)} frame(s) already rendered, kept: {format_frames(report.existing)} (--overwrite renders them again)")
        if progress is not None:
            progress.update(len(report.existing))
    wall = time.perf_counter()
    batch = model.batch
    read_pool = ThreadPoolExecutor(max(1, readers), thread_name_prefix="facegraft-read")
    write_pool = ThreadPoolExecutor(max(1, writers), thread_name_prefix="facegraft-write")
    reads: deque[Future[Job]] = deque()
    writes: deque[tuple[int, str, Future[None]]] = deque()
    queue = deque(todo)
    read_ahead = batch + max(1, readers) * 2
    write_ahead = max(1, writers) * 2

    def fill_reads() -> None:
        while queue and len(reads) < read_ahead:
            reads.append(read_pool.submit(renderer.prepare, queue.popleft()))

    def collect_writes(limit: int) -> None:
        while len(writes) > limit:
            frame, status, future = writes.popleft()
            future.result()  # write errors (disk full, permissions) stop the render
            {layers.RENDERED: report.rendered, layers.NO_FACE: report.no_face, layers.HELD: report.held}[status].append(frame)
            if progress is not None:
                progress.update(1, frame=frame, status=status)

    def submit_write(job: Job, swap: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> None:
        writes.append((job.frame, job.status, write_pool.submit(renderer.finish, job, swap, mask)))
        collect_writes(write_ahead)

    def handle_error(job: Job) -> None:
        assert job.error is not None
        error = job.error
        if error.frame is None:
            error.frame = job.frame
        if on_error == "fail":
            raise error
        report.errors[job.frame] = error.describe()
        if progress is not None:
            progress.warn(f"frame {job.frame}: {error.message}", frame=job.frame, file=error.path)
        if on_error == "skip":
            report.skipped.append(job.frame)
            if progress is not None:
                progress.update(1, frame=job.frame, status="skipped")
            return
        held = job.plate if job.plate is not None else _fallback_frame(renderer, job.frame)
        if held is None:  # no readable plate frame to show: nothing can be written
            report.skipped.append(job.frame)
            if progress is not None:
                progress.update(1, frame=job.frame, status="skipped")
            return
        note: dict[str, Any] = {"hold_reason": error.message}
        if job.plate is None:
            note["held_from"] = held.frame
        submit_write(Job(job.frame, plate=held, status=layers.HELD, note=note))

    # Crops go to the model in fixed-size batches, each frame in slot ``frame % batch`` of the batch
    # for its block of frames ``frame // batch``: which frames share a call, and where, depends
    # on the frame numbers only, never on timing, chunking or a resumed render.
    waiting: list[Job] = []  # jobs since the last model call, in order (with and without a face)

    def run_model() -> None:
        faced = [j for j in waiting if j.crop is not None]
        swaps = masks = np.zeros((0,), np.float32)
        if faced:
            faces = np.zeros((batch, *model.shape), np.float32)
            for job in faced:
                faces[job.frame % batch] = job.crop
            start = time.perf_counter()
            swaps, masks = model.run(faces)
            report.timings.add("model", time.perf_counter() - start)
        for job in waiting:
            if job.crop is not None:
                submit_write(job, swaps[job.frame % batch], masks[job.frame % batch])
            else:
                submit_write(job)
        waiting.clear()

    try:
        fill_reads()
        while reads:
            job = reads.popleft().result()
            fill_reads()
            if job.error is not None:
                run_model()  # frames before the bad one are written first
                handle_error(job)
                continue
            if job.crop is not None:
                faced = [j for j in waiting if j.crop is not None]
                if faced and (job.frame // batch != faced[0].frame // batch
                              or any(j.frame % batch == job.frame % batch for j in faced)):
                    run_model()
            waiting.append(job)
            if sum(j.crop is not None for j in waiting) == batch or len(waiting) >= 2 * batch:
                run_model()
        run_model()
        collect_writes(0)
    except BaseException:
        for future in reads:
            future.cancel()
        for _, _, pending in writes:
            pending.cancel()
        raise
    finally:
        read_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True, cancel_futures=True)
        report.timings.wall += time.perf_counter() - wall
    return report


def report_json(report: RenderReport) -> dict[str, Any]:
    return {
        "rendered": format_frames(report.rendered), "no_face": format_frames(report.no_face),
        "held": format_frames(report.held), "skipped": format_frames(report.skipped),
        "existing": format_frames(report.existing), "timings": report.timings.as_dict(),
        "errors": {str(k): v for k, v in sorted(report.errors.items())},
    }


def dumps(report: RenderReport) -> str:
    return json.dumps(report_json(report), sort_keys=True)
