"""Video or display-referred stills -> a scene-linear EXR plate."""
from __future__ import annotations

from typing import Optional

import numpy as np

from facegraft.inference import __version__
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, exr
from facegraft.inference.io.frames import DEFAULT_IN_SPACE, VideoSource, open_source
from facegraft.inference.io.sequence import SequencePattern, format_frames, parse_frames
from facegraft.inference.progress import Progress


def ingest(
    source: str,
    out_pattern: str,
    in_colorspace: str = DEFAULT_IN_SPACE,
    colorspace: str = colour.DEFAULT_PLATE_SPACE,
    config: str = colour.DEFAULT_CONFIG,
    start: int = 1001,
    frames: Optional[str] = None,
    compression: str = "zip",
    overwrite: bool = False,
    json_progress: bool = False,
    resize: Optional[tuple[int, int]] = None,
) -> list[str]:
    """Write every frame of ``source`` as half-float EXR in ``colorspace``; returns the paths written.

    Output frame numbers: a video's first frame becomes ``start``; an image sequence keeps its own
    numbers (``start`` applies to videos and stills only). ``frames`` counts in output numbering;
    asking for frames the source does not have is an error, raised before anything is written.
    Frames already complete on disk are kept unless ``overwrite``.
    """
    import cv2

    src = open_source(source, None, colorspace, in_colorspace, config, start=start)
    if frames is None:
        wanted = list(src.frames)
    else:
        wanted = parse_frames(frames)
        have = set(src.frames)
        missing = [f for f in wanted if f not in have]
        if missing:
            raise FaceGraftError(
                f"the source has no frame(s) {format_frames(missing)} (it has {format_frames(src.frames)})",
                path=source, hint="ask --frames for frames in that range" + (
                    "; a video's first frame is numbered --start" if isinstance(src, VideoSource) else ""))
    # facegraft/source_frame: the frame's number in the source's own numbering
    offset = 1 - src.start if isinstance(src, VideoSource) else 0
    out = SequencePattern(out_pattern)
    written = []
    with Progress("ingest", len(wanted), json_lines=json_progress) as progress:
        for frame in wanted:
            path = out.path(frame)
            if not overwrite and exr.is_complete(path):
                progress.update(frame=frame, skipped=True)
                continue
            plate = src.read(frame)
            rgb = plate.rgb
            if resize is not None:
                rgb = cv2.resize(rgb, resize, interpolation=cv2.INTER_CUBIC if resize[0] > rgb.shape[1] else cv2.INTER_AREA)
            h, w = rgb.shape[:2]
            spec = exr.new_spec(w, h, ["R", "G", "B"], np.float16)
            exr.set_attributes(spec, {
                "compression": compression,
                "facegraft/version": __version__,
                "facegraft/source": source,
                "facegraft/source_frame": frame + offset,
                "facegraft/colorspace": colorspace,
                "facegraft/source_colorspace": in_colorspace,
            })
            exr.write_image(path, rgb.astype(np.float16), spec, frame=frame)
            written.append(path)
            progress.update(frame=frame)
    return written

