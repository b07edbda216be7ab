"""Synthetic plates and shot tracks for render tests (imported by the render tests).

``make_plate`` writes a half-float EXR sequence with overscan (data window larger than the
display window), a smooth ramp in R and G (so sampling errors show), poison pixels (NaN, Inf,
values above 1, negatives) far from the face, an extra ``Z`` channel and a custom header
attribute. ``aligned_transform`` places a face so that crop pixels land exactly on plate
pixels (resampling is then lossless and "identity" can be checked to half precision).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from tracking_support import synthetic_landmarks

from facegraft.inference.io import exr
from facegraft.inference.track import align
from facegraft.inference.track.trackfile import Face, FrameTrack, ShotTrack

FIRST = 1001
DISPLAY = (192, 144)
OVERSCAN = (8, 6)
POISON = {(2, 3): np.nan, (3, 200): np.inf, (150, 4): 60000.0, (151, 205): -5.0, (10, 10): 3.5}  # (row, col)


def plate_pixels(frame: int, alpha: bool = False) -> tuple[np.ndarray, list[str]]:
    w, h = DISPLAY[0] + 2 * OVERSCAN[0], DISPLAY[1] + 2 * OVERSCAN[1]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xx - OVERSCAN[0] + 0.5, yy - OVERSCAN[1] + 0.5  # display coordinates of pixel centres
    r = 0.01 * x + 0.001 * (frame - FIRST)
    g = 0.01 * y
    b = 0.3 + 0.2 * np.sin(x / 9.0) * np.cos(y / 7.0)
    planes = [r, g, b]
    names = ["R", "G", "B"]
    if alpha:
        planes.append(np.clip(0.25 + 0.005 * x, 0, 1))
        names.append("A")
    planes.append(np.full_like(r, 10.0 + frame))
    names.append("Z")
    pixels = np.stack(planes, axis=-1).astype(np.float16)
    for (row, col), value in POISON.items():
        pixels[row, col, :3] = value
    return pixels, names


def make_plate(folder: Path, frames: Iterable[int] = range(FIRST, FIRST + 4), alpha: bool = False,
               name: str = "plate") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    pattern = str(folder / f"{name}.####.exr")
    for frame in frames:
        pixels, names = plate_pixels(frame, alpha)
        spec = exr.new_spec(pixels.shape[1], pixels.shape[0], names, np.float16)
        spec.x, spec.y = -OVERSCAN[0], -OVERSCAN[1]
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, DISPLAY[0], DISPLAY[1]
        spec.attribute("compression", "zip")
        spec.attribute("PixelAspectRatio", 1.0)
        spec.attribute("studio/shot", "sh010")
        exr.write_image(pattern.replace("####", f"{frame:04d}"), pixels, spec)
    return pattern


def aligned_transform(res: int, coverage: str, offset: tuple[int, int]) -> np.ndarray:
    """Plate -> face space such that crop px = plate px - offset (a whole-pixel translation)."""
    shift = np.array([[1.0, 0.0, -offset[0]], [0.0, 1.0, -offset[1]]])
    return align.compose(align.invert(align.coverage_matrix(res, coverage)), shift)


def rotated_transform(centre: tuple[float, float], size: float, angle_deg: float) -> np.ndarray:
    """Plate -> face space for a face ``size`` px wide centred at ``centre``, rolled by ``angle``."""
    a = np.deg2rad(angle_deg)
    rot = size * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.asarray(centre) - rot @ np.array([0.5, 0.5])
    return align.invert(np.hstack([rot, t[:, None]]))


def make_face(transform: np.ndarray, track: int = 0) -> Face:
    lm = synthetic_landmarks(transform)
    box = (float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max()))
    return Face(track=track, box=box, score=0.99, landmarks_raw=lm.copy(), landmarks=lm, transform=transform, flags=[])


def make_track(frames: Iterable[int], transform: np.ndarray, no_face: Iterable[int] = (),
               pattern: str = "", moving: Optional[float] = None) -> ShotTrack:
    """A track whose every frame has the template face at ``transform`` (shifted ``moving`` px per frame)."""
    records = {}
    missing = set(no_face)
    for i, frame in enumerate(frames):
        if frame in missing:
            records[frame] = FrameTrack(frame, [], ["no_face"])
            continue
        t = np.array(transform, dtype=np.float64)
        if moving:
            t = align.compose(t, np.array([[1.0, 0.0, -moving * i], [0.0, 1.0, 0.0]]))
        records[frame] = FrameTrack(frame, [make_face(t)], [])
    plate = {"pattern": pattern, "first": min(records), "last": max(records), "display_window": [0, 0, *DISPLAY],
             "data_window": [-OVERSCAN[0], -OVERSCAN[1], DISPLAY[0] + 2 * OVERSCAN[0], DISPLAY[1] + 2 * OVERSCAN[1]],
             "pixel_aspect": 1.0, "colorspace": "ACEScg", "ocio_config": "ocio://studio-config-latest"}
    return ShotTrack(plate=plate, params={"smooth": 0.0}, target=0, tracks=[{"id": 0}], frames=records)
