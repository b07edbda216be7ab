"""Occluders of known alpha composited over real face plates, for tests and bench/occlusion.py.

* ``glasses``: dark sunglasses (two tinted lenses, a bridge, temple arms) that ride on the face
  (placed in face space by the shot track's transform) and slide down onto the eyes from above
  the head between two frames: "the sunglasses go on" mid-shot.
* ``hand``: a hand-shaped cut-out (palm, four fingers, a thumb) in a skin tone with shading,
  moving across the face from one side to the other over the shot.

Each returns, per frame, the occluder's colour ``[H, W, 3]`` (scene-linear) and alpha ``[H, W]``;
``composite`` puts it over a plate, and ``write_shot`` writes plate and roto EXR sequences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facegraft.inference.io import exr
from facegraft.inference.io.frames import FrameSource
from facegraft.inference.track import align, tracker
from facegraft.inference.track.mattes import fill_polygon
from facegraft.inference.track.trackfile import ShotTrack


@dataclass
class Occluder:
    rgb: np.ndarray  # [H, W, 3] scene-linear
    alpha: np.ndarray  # [H, W] 0..1


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)])


def _capsule(a: Sequence[float], b: Sequence[float], radius: float, n: int = 16) -> np.ndarray:
    """A stadium polygon around the segment a-b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    angle = math.atan2(d[1], d[0])
    half = np.linspace(-math.pi / 2, math.pi / 2, n)
    cap_b = b + radius * np.column_stack([np.cos(angle + half), np.sin(angle + half)])
    cap_a = a + radius * np.column_stack([np.cos(angle + math.pi + half), np.sin(angle + math.pi + half)])
    return np.vstack([cap_b, cap_a])


def glasses(transform: np.ndarray, shape: tuple[int, int], drop: float = 0.0) -> Occluder:
    """Sunglasses on the face at ``transform`` (plate -> face space), raised by ``drop`` face
    units (0: on the eyes; 0.8: above the head)."""
    to_plate = align.invert(transform)
    lift = np.array([0.0, -drop])

    def poly(points: np.ndarray) -> np.ndarray:
        return align.apply(to_plate, points + lift)

    lens = np.maximum(fill_polygon(poly(_ellipse(0.33, 0.47, 0.145, 0.095)), shape),
                      fill_polygon(poly(_ellipse(0.67, 0.47, 0.145, 0.095)), shape))
    frame = np.maximum.reduce([
        fill_polygon(poly(_capsule((0.45, 0.44), (0.55, 0.44), 0.018)), shape),
        fill_polygon(poly(_capsule((0.19, 0.44), (0.0, 0.43), 0.02)), shape),
        fill_polygon(poly(_capsule((0.81, 0.44), (1.0, 0.43), 0.02)), shape),
    ])
    alpha = np.maximum(lens * 0.93, frame)
    h, w = shape
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    shade = 0.012 + 0.02 * np.clip(1.0 - np.abs(ys - 0.4) * 3, 0, 1)  # a soft reflection across the lenses
    rgb = np.empty((h, w, 3), np.float32)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = shade * 0.9, shade * 1.1, shade
    rgb = np.where(frame[..., None] > lens[..., None] * 0.93, 0.004, rgb)
    return Occluder(rgb.astype(np.float32), alpha.astype(np.float32))


def hand(centre: Sequence[float], size: float, shape: tuple[int, int], angle: float = 0.0, seed: int = 0) -> Occluder:
    """A hand cut-out: palm centred at ``centre`` (plate px), ``size`` px from wrist to fingertips,
    turned ``angle`` degrees (fingers up at 0)."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rot = np.array([[c, -s], [s, c]])

    def place(points: np.ndarray) -> np.ndarray:
        return np.asarray(points, float) @ rot.T * size + np.asarray(centre, float)

    parts = [_ellipse(0.0, 0.05, 0.2, 0.24)]  # the palm (unit: the hand's length)
    for x, length in ((-0.15, 0.3), (-0.05, 0.36), (0.05, 0.38), (0.15, 0.33)):
        parts.append(_capsule((x * 1.05, -0.1), (x * 1.25, -0.1 - length), 0.05))
    parts.append(_capsule((-0.17, 0.12), (-0.38, -0.08), 0.055))  # the thumb
    alpha = np.maximum.reduce([fill_polygon(place(p), shape) for p in parts])
    h, w = shape
    rng = np.random.default_rng(seed)
    noise = cv2.resize(rng.normal(0.0, 1.0, (max(2, h // 24), max(2, w // 24))).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.85 + 0.25 * np.clip(((xx - centre[0]) * 0.6 - (yy - centre[1])) / max(size, 1.0), -1, 1) + 0.06 * noise
    skin = np.array([0.42, 0.24, 0.16], np.float32)
    rgb = (light[..., None] * skin[None, None, :]).astype(np.float32)
    return Occluder(rgb, alpha.astype(np.float32))


def composite(plate: np.ndarray, occluder: Occluder) -> np.ndarray:
    """``occluder over plate``."""
    a = occluder.alpha[..., None]
    return (occluder.rgb * a + plate.astype(np.float32) * (1.0 - a)).astype(np.float32)


def glasses_drop(index: int, count: int, arrive: tuple[float, float] = (0.35, 0.55)) -> float:
    """How high the glasses are on frame ``index`` of ``count``: absent (None-like 9.0) before they
    arrive, sliding down while they arrive, on the eyes after."""
    t = index / max(1, count - 1)
    a, b = arrive
    if t < a:
        return 9.0  # far off the frame
    if t >= b:
        return 0.0
    return 0.9 * (1.0 - (t - a) / (b - a))


def write_shot(folder: Path, name: str, first: int, plates: Sequence[np.ndarray],
               alphas: Sequence[np.ndarray]) -> tuple[str, str]:
    """Write ``plates`` as ``NAME.####.exr`` (half RGB) and ``alphas`` as ``NAME_roto.####.exr``
    (half A); returns the two patterns."""
    folder.mkdir(parents=True, exist_ok=True)
    plate_pattern, roto_pattern = str(folder / f"{name}.####.exr"), str(folder / f"{name}_roto.####.exr")
    for i, (rgb, alpha) in enumerate(zip(plates, alphas)):
        frame = first + i
        h, w = rgb.shape[:2]
        exr.write_image(str(folder / f"{name}.{frame:04d}.exr"), rgb.astype(np.float16),
                        exr.new_spec(w, h, ["R", "G", "B"], np.float16))
        exr.write_image(str(folder / f"{name}_roto.{frame:04d}.exr"), alpha[..., None].astype(np.float16),
                        exr.new_spec(w, h, ["A"], np.float16))
    return plate_pattern, roto_pattern


@dataclass
class GlassesShot:
    plate: str  # the plate pattern, sunglasses composited
    roto: str  # their alpha, as a roto sequence
    track: ShotTrack  # the clean plate's track
    alphas: list[np.ndarray]


def glasses_shot_on(clean: FrameSource, folder: Path, name: str = "sh010") -> GlassesShot:
    """``clean`` (tracked, without hands) with sunglasses sliding on mid-shot, written to ``folder``
    as ``NAME.####.exr`` from frame 1001 with its roto."""
    shot = tracker.track_shot(clean, tracker=tracker.FrameTracker(tracker.TrackerOptions(device="cpu", hands=False)))
    plates, alphas = [], []
    for i, frame in enumerate(clean.frames):
        plate = clean.read(frame)
        occluder = glasses(shot.face(frame).transform, plate.shape, glasses_drop(i, len(clean.frames)))
        plates.append(composite(plate.rgb, occluder))
        alphas.append(occluder.alpha)
    plate, roto = write_shot(folder, name, 1001, plates, alphas)
    return GlassesShot(plate, roto, shot, alphas)
