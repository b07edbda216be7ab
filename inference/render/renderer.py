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
* ``report``: what a render did (``RenderReport``, ``Timings``, ``report_json``).
"""
from __future__ import annotations

import os
from typing import Callable, Optional

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.frames import FrameSource, SequenceSource
from facegraft.inference.models.face_model import FaceModel
from facegraft.inference.progress import Progress
from facegraft.inference.render.frame import FrameRenderer
from facegraft.inference.render.report import RenderReport, Timings, report_json
from facegraft.inference.render.scheduler import Scheduler, check_on_error, remove_stale_temps
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track.trackfile import ShotTrack

__all__ = ["FrameRenderer", "RenderReport", "RenderSettings", "Timings", "remove_stale_temps", "render_shot",
           "report_json"]


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

    Frames already complete in ``out`` are kept unless ``overwrite``; ``on_error`` is ``fail``,
    ``skip`` or ``hold``; ``readers`` / ``writers`` threads decode and encode."""
    check_on_error(on_error)
    report = RenderReport()
    wanted = list(frames if frames is not None else source.frames)
    track.require_frames(wanted, track_path)
    renderer = FrameRenderer(source, track, model, out, settings, report.timings)
    if wanted and _same_file(renderer.out.path(wanted[0]), source, wanted[0]):
        raise FaceGraftError("--out is the plate itself", path=out, hint="write the render to its own folder")
    scheduler = Scheduler(renderer, model, report, on_error=on_error, readers=readers, writers=writers,
                          progress=progress)
    return scheduler.run(scheduler.resume(renderer.out, wanted, overwrite, log))


def _same_file(out_path: str, source: FrameSource, frame: int) -> bool:
    """True when ``out_path`` is the plate's own file for ``frame`` (however either is spelled:
    ``./``, ``..``, ``####`` or ``%04d``, symbolic links)."""
    plate_path = source.path(frame) if isinstance(source, SequenceSource) else getattr(source, "name", None)
    if not plate_path:
        return False
    return os.path.realpath(out_path) == os.path.realpath(plate_path)
