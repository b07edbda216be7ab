"""Rendering a shot: ``render_shot``, the entry point of ``facegraft render``, the farm and the demo.

Per frame (stateless given the track file, so any chunking gives the same bytes): crop the
tracked face, run the model (batched across frames), composite the face over a region around it,
write the EXR layers of ``facegraft.inference.io.layers``. Pixels where the final matte is 0 are
the plate's stored pixels bit for bit, NaN and values above 1 included; the rest of the frame is
never touched but copied a strip of scanlines at a time on its way to the encoder.

The parts, one module each:

* ``frame``: the per-frame work (``FrameRenderer``: read and crop; composite and write);
* ``composite``: one face on one frame, pure (colour match, warp, matte, blend, over);
* ``output``: the output's channel layout and header, packing, the strip-wise rows;
* ``scheduler``: the pipeline (read / model / write stages, batch slots, error policy, progress,
  resume);
* ``stamp``: what "done" means for a frame on disk (its stamp matches this render's);
* ``report``: what a render did (``RenderReport``, ``Timings``, ``report_json``).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Optional

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.frames import FrameSource, SequenceSource
from facegraft.inference.io.sequence import SequencePattern
from facegraft.inference.memory import reuse_freed_memory
from facegraft.inference.models import occlusion
from facegraft.inference.models.face_model import FaceModel
from facegraft.inference.progress import Progress
from facegraft.inference.render.frame import FrameRenderer
from facegraft.inference.render.report import RenderReport, Timings, report_json
from facegraft.inference.render.scheduler import Scheduler, check_on_error, remove_stale_temps
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.render.stamp import RenderStamp
from facegraft.inference.track.trackfile import ShotTrack

__all__ = ["FrameRenderer", "RenderReport", "RenderSettings", "Timings", "remove_stale_temps", "render_settings",
           "render_shot", "render_stamp", "report_json"]


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
    """Render ``frames`` (default: all of ``source``) to ``out``; see the module docstring.

    Frames in ``out`` that are complete and stamped as this render would stamp them are kept
    unless ``overwrite``; the others are rendered again (``report.stale`` says why);
    ``on_error`` is ``fail``, ``skip`` or ``hold``; ``readers`` / ``writers`` threads decode and
    encode."""
    check_on_error(on_error)
    reuse_freed_memory()  # frame-sized buffers are reused, not mapped afresh every frame
    settings = _with_source_part(settings, source)
    settings = dataclasses.replace(settings, precision=getattr(model, "precision", settings.precision))  # as run
    report = RenderReport()
    wanted = list(frames if frames is not None else source.frames)
    track.require_frames(wanted, track_path)
    renderer = FrameRenderer(source, track, model, out, settings, report.timings)
    if wanted and _same_file(renderer.out.path(wanted[0]), source, wanted[0]):
        raise FaceGraftError("--out is the plate itself", path=out, hint="write the render to its own folder")
    scheduler = Scheduler(renderer, model, report, on_error=on_error, readers=readers, writers=writers,
                          progress=progress, stamp=render_stamp(model.info.content_hash, settings, source, track))
    return scheduler.run(scheduler.resume(renderer.out, wanted, overwrite, log))


def _with_source_part(settings: RenderSettings, source: FrameSource) -> RenderSettings:
    """``settings`` naming the plate part ``source`` reads (what the stamp records); a source
    reading another part than ``settings.plate_part`` asks for is refused."""
    part = str(getattr(source, "part", None) or "")
    if part == settings.plate_part:
        return settings
    if settings.plate_part:
        raise FaceGraftError(f"the plate source reads part '{part or 'the first with R, G, B'}', the render "
                             f"settings name part '{settings.plate_part}'", path=getattr(source, "name", None),
                             hint="open the plate with part=settings.plate_part")
    return dataclasses.replace(settings, plate_part=part)


def _same_file(out_path: str, source: FrameSource, frame: int) -> bool:
    """True when ``out_path`` is the plate's own file for ``frame`` (however either is spelled:
    ``./``, ``..``, ``####`` or ``%04d``, symbolic links)."""
    plate_path = source.path(frame) if isinstance(source, SequenceSource) else getattr(source, "name", None)
    if not plate_path:
        return False
    return os.path.realpath(out_path) == os.path.realpath(plate_path)


def render_stamp(model_hash: str, settings: RenderSettings, source: FrameSource, track: ShotTrack) -> RenderStamp:
    """The stamp of a render of ``source`` with a model of ``model_hash`` and ``settings`` (an
    occlusion model by its content hash)."""
    holdout = SequencePattern(settings.holdout).path if settings.holdout else None
    return RenderStamp(model_hash, settings, source, track, holdout_path=holdout,
                       occlusion_hash=occlusion.content_hash_of(settings.occlusion))


# RenderSettings fields a command line (or a farm shot's options) sets; ``face`` is not among them:
# a shot's ``face`` option picks the track's target, ``facegraft render --face`` a track id.
_SETTING_FIELDS = tuple(f.name for f in dataclasses.fields(RenderSettings) if f.name not in ("face", "forehead"))


def render_settings(options: Mapping[str, Any], face: Optional[int] = None) -> RenderSettings:
    """The RenderSettings of ``facegraft render`` given ``options`` (parsed flags, or a shot's
    options; None or absent: the default): one construction for the command and for
    ``facegraft batch``, which must agree on what a frame's stamp is."""
    given = {name: options[name] for name in _SETTING_FIELDS if options.get(name) is not None}
    return RenderSettings(face=face, **given)
