"""Cut a faceset from a plate or a video with the renderer's own read / colour / track / align code.

A training crop is made exactly as the renderer makes the model's input: the tracked face's
smoothed transform, ``align.crop`` over the same region of interest with cubic filtering,
sanitised, then converted to the model's colour space. A model therefore sees at render time
the crops it was trained on. Extract at the resolution you train at for bit-identical crops
(a faceset at a higher resolution is resized down when training, which is close but not exact).

Faces the tracker flagged ``low_confidence`` (FaceMesh unsure: profile, heavy blur, partial
occlusion) are left out by default, and so are near-duplicate frames (landmarks that barely moved
since the last kept face). A hand over the face would teach the model the hand: faces whose
matte hands cover more than ``max_occlusion`` of (the track file's ``occlusion``, 5% by default)
are left out, or, with ``mask_occlusion``, kept with the hands cut out of their mattes, which
the training losses are weighted by. Objects other than hands are not seen: leave such frames out
with ``--frames``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.io.frames import Plate, open_source
from facegraft.inference.io.sequence import format_frames
from facegraft.inference.progress import Progress, say
from facegraft.inference.track import align, expression, hands, mattes
from facegraft.inference.track.trackfile import Face, FrameTrack, ShotTrack, load_track, save_track

from .faceset import DEFAULT_MIN_MOTION, EXPRESSION, MATTE_NAMES, Faceset, FacesetWriter

RENDER_MARGIN = 4  # the renderer's crop region margin at default erode/feather
SKIPPED_FLAGS = ("low_confidence",)  # occluded faces are judged by how much is covered (max_occlusion)
MAX_OCCLUSION = 0.05  # faces whose matte hands cover more than this fraction are left out (or masked)

PathLike = Union[str, Path]


@dataclass
class ExtractReport:
    faceset: Faceset
    added: int = 0
    duplicates: int = 0
    already_there: int = 0
    no_face: list[int] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)
    occluded: list[int] = field(default_factory=list)  # left out: hands over more than max_occlusion
    masked: list[int] = field(default_factory=list)  # kept with the hands cut out of the mattes
    track_path: Optional[str] = None


def model_crop(plate: Plate, face: Face, res: int, coverage: str, to_model: colour.Converter) -> Optional[np.ndarray]:
    """The model's input for this face, ``[res, res, 3]`` in model space, made as the renderer makes it.

    None when the crop square misses the plate's data window (the renderer skips such frames).
    """
    y0, y1, x0, x1 = align.crop_region(face.transform, res, coverage, plate.origin, plate.shape, RENDER_MARGIN)
    if y1 - y0 < 2 or x1 - x0 < 2:
        return None
    crop = align.crop(plate.rgb, face.transform, res, coverage, origin=plate.origin, interpolation="cubic")
    return to_model(crop)


def extract(
    source_path: str,
    *,
    identity: str,
    out: PathLike,
    res: int = 256,
    coverage: str = "whole_face",
    frames: Optional[str] = None,
    face: str = "largest",
    in_colorspace: Optional[str] = None,
    plate_colorspace: str = colour.DEFAULT_PLATE_SPACE,
    model_colorspace: str = colour.DEFAULT_MODEL_SPACE,
    config: str = colour.DEFAULT_CONFIG,
    track: Optional[PathLike] = None,
    smooth: float = 0.5,
    min_motion: float = DEFAULT_MIN_MOTION,
    skip_flags: Sequence[str] = SKIPPED_FLAGS,
    max_occlusion: float = MAX_OCCLUSION,
    mask_occlusion: bool = False,
    json_progress: bool = False,
) -> ExtractReport:
    """Track (or load the track of) ``source_path`` and append its aligned faces to the faceset at ``out``.

    A face whose occlusion (the fraction of its matte hands cover) is above ``max_occlusion`` is
    left out, or with ``mask_occlusion`` kept with the hands cut out of its mattes."""
    if coverage not in align.COVERAGES:
        raise FaceGraftError(f"unknown coverage '{coverage}'", hint=f"use one of: {', '.join(align.COVERAGES)}")
    if not identity or any(c in identity for c in "/\\\"'"):
        raise FaceGraftError(f"'{identity}' is not usable as an identity name", hint="use a plain name such as actor_a")
    if res < 16 or res > 2048:
        raise FaceGraftError(f"--res {res} is out of range", hint="use 64 to 1024 (a power of two)")
    if not 0.0 <= max_occlusion <= 1.0:
        raise FaceGraftError(f"--max-occlusion {max_occlusion} is out of range", hint="a fraction from 0 to 1, e.g. 0.05")
    out = Path(out)
    source = open_source(source_path, frames, colorspace=plate_colorspace, in_colorspace=in_colorspace, config=config)
    wanted_track = None if face == "largest" else _track_id(face)
    to_model = colour.converter(plate_colorspace, model_colorspace, config)
    # open the faceset first: a refusal to append comes before minutes of tracking
    writer = FacesetWriter(out, identity=identity, resolution=res, coverage=coverage, colorspace=model_colorspace,
                           ocio_config=config, template=align.TEMPLATE_NAME, min_motion=min_motion,
                           matte_names=MATTE_NAMES)
    shot: ShotTrack
    track_path: Optional[str] = None
    try:
        if track is not None:
            shot = load_track(track)
            shot.require_frames(list(source.frames), str(track))
            track_path = str(track)
        else:
            from facegraft.inference.track.tracker import track_shot

            with Progress("track", len(source.frames), json_lines=json_progress) as progress:
                shot = track_shot(source, face=face, smooth=smooth, progress=progress)
            track_path = str(out / f"{identity}.{_stem(source_path)}.fgtrack.json")
            save_track(shot, track_path)
    except BaseException:
        writer.close()
        raise
    report = ExtractReport(faceset=writer.faceset, track_path=track_path)
    if not shot.hands_searched:
        say("warning: the track file has no hand data (tracked with --no-hands, or by an older FaceGraft): faces "
            "with a hand over them are not left out; track again to find them", json_progress)
    name = os.path.abspath(source_path)
    try:
        with Progress("extract", len(source.frames), json_lines=json_progress) as progress:
            for frame in source.frames:
                found = shot.face(frame, wanted_track)
                covered = 0.0 if found is None else occlusion_of(found)
                if found is not None and any(flag in found.flags for flag in skip_flags):
                    report.flagged.append(frame)
                elif found is not None and covered > max_occlusion and not (mask_occlusion and found.occlusion > 0):
                    report.occluded.append(frame)
                else:
                    crop = None if found is None else model_crop(source.read(frame), found, res, coverage, to_model)
                    if found is None or crop is None:
                        report.no_face.append(frame)
                    else:
                        points = align.apply(align.crop_matrix(found.transform, res, coverage), found.landmarks[:, :2])
                        face_mattes = mattes.crop_mattes(found.landmarks, found.transform, res, coverage)
                        if covered > max_occlusion:
                            face_mattes = without_hands(face_mattes, shot.frames[frame], found.transform, res, coverage)
                            report.masked.append(frame)
                        # openness from the unsmoothed lids (blinks intact), pose from the smoothed mesh
                        measured = expression.record(found.landmarks, found.landmarks_raw)
                        writer.add(crop, face_mattes, points, source=name, frame=frame, track=found.track,
                                   **{EXPRESSION: measured})
                progress.update(frame=frame, kept=writer.added)
    finally:
        report.faceset = writer.close()
    report.added, report.duplicates, report.already_there = writer.added, writer.duplicates, writer.skipped
    if not len(report.faceset):
        raise FaceGraftError("no usable face was found, so the faceset is empty", path=source_path,
                             hint="check --frames and --face (`facegraft track` lists the tracks), or pass --keep-flagged")
    if report.flagged:
        say(f"left out {len(report.flagged)} frame(s) flagged {' / '.join(skip_flags)}", json_progress)
    if report.occluded:
        say(f"left out {len(report.occluded)} frame(s) where hands cover more than {max_occlusion:.0%} of the face "
            f"(--max-occlusion; --mask-occlusion keeps them with the hands masked from the loss): "
            f"{format_frames(report.occluded)}", json_progress)
    if report.masked:
        say(f"kept {len(report.masked)} frame(s) with hands over the face, the hands masked from the loss: "
            f"{format_frames(report.masked)}", json_progress)
    return report


def occlusion_of(face: Face) -> float:
    """The fraction of the face hands cover; a face flagged ``occluded`` by hand in an edited
    track file, with no fraction measured, counts as covered whole."""
    if face.occlusion > 0:
        return float(face.occlusion)
    return 1.0 if "occluded" in face.flags else 0.0


def without_hands(face_mattes: dict[str, np.ndarray], record: FrameTrack, transform: np.ndarray, res: int,
                  coverage: str) -> dict[str, np.ndarray]:
    """The crop's mattes with the frame's hands cut out (the losses are weighted by them)."""
    to_crop = align.crop_matrix(transform, res, coverage)
    covered = hands.hands_matte([align.apply(to_crop, h.landmarks[:, :2]) for h in record.hands], (res, res))
    return {name: np.asarray(m, np.float32) * (1.0 - covered) for name, m in face_mattes.items()}


def _track_id(face: str) -> int:
    try:
        return int(face)
    except ValueError:
        raise FaceGraftError(f"--face '{face}' is neither 'largest' nor a track id",
                             hint="`facegraft track` prints the track ids; pass one, e.g. --face 2") from None


def _stem(path: str) -> str:
    base = os.path.basename(path)
    for token in ("#", "%", "@"):
        base = base.split(token)[0]
    return base.rstrip("._") or "plate"
