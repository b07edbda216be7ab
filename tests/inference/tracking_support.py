"""Test support for tracking: plate sources, synthetic faces, whole-shot linking.

Synthetic shots (black frames, rotated faces, a small face in a 4K frame) are built from real
sample frames held in memory; the tracker reads them through the same ``read(frame) -> plate``
interface as EXR sequences. ``synthetic_landmarks`` places a neutral FaceMesh on a plate where
no tracker ran, and ``link`` gives a whole shot of observations their track ids.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from facegraft.inference import assets
from facegraft.inference.io import colour
from facegraft.inference.track import align, linking


@dataclass
class MemoryPlate:
    frame: int
    rgb: np.ndarray
    origin: tuple[int, int] = (0, 0)
    display_window: tuple[int, int, int, int] = (0, 0, 0, 0)
    image: Optional[object] = None


@dataclass
class MemorySource:
    """Scene-linear frames in memory, numbered from ``first``."""

    arrays: list[np.ndarray]
    first: int = 1001
    name: str = "memory"
    colorspace: str = colour.DEFAULT_PLATE_SPACE
    frames: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = list(range(self.first, self.first + len(self.arrays)))

    def read(self, frame: int) -> MemoryPlate:
        rgb = self.arrays[frame - self.first]
        h, w = rgb.shape[:2]
        return MemoryPlate(frame, rgb.copy(), (0, 0), (0, 0, w, h))


@lru_cache(maxsize=4)
def _decoded(name: str, count: int, step: int) -> tuple[np.ndarray, ...]:
    capture = cv2.VideoCapture(str(assets.footage_path(name)))
    out = []
    index = 0
    to_linear = colour.converter("sRGB - Texture", colour.DEFAULT_PLATE_SPACE)
    while len(out) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        if index % step == 0:
            out.append(to_linear(bgr[..., ::-1].astype(np.float32) / 255.0))
        index += 1
    capture.release()
    return tuple(out)


def clip_frames(name: str, count: int, step: int = 1) -> list[np.ndarray]:
    """``count`` frames of a sample clip as ACEScg float32 (copies)."""
    return [f.copy() for f in _decoded(name, count, step)]


def rotate(rgb: np.ndarray, degrees: float, centre: Optional[tuple[float, float]] = None) -> np.ndarray:
    """The frame rotated about ``centre`` (default: the frame centre), black outside."""
    h, w = rgb.shape[:2]
    c = centre or (w / 2, h / 2)
    m = cv2.getRotationMatrix2D(c, degrees, 1.0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


@lru_cache(maxsize=1)
def template_mesh() -> np.ndarray:
    """A neutral 478-point FaceMesh (with irises) in face space: ``(478, 3)``, z in face units."""
    data = json.loads((Path(__file__).with_name("data") / "template_mesh.json").read_text())
    return np.asarray(data["points"], dtype=np.float64)


def synthetic_landmarks(transform: np.ndarray) -> np.ndarray:
    """The template mesh placed on a plate by ``transform`` (plate -> face space): ``(478, 3)`` px."""
    mesh = template_mesh()
    inv = align.invert(transform)
    scale = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    return np.column_stack([align.apply(inv, mesh[:, :2]), mesh[:, 2] * scale])


def link(per_index: Sequence[Sequence[linking.Observation]], max_age: int = linking.MAX_AGE) -> None:
    """Assign track ids over a whole shot (``per_index[i]`` are the faces at position i)."""
    linker = linking.Linker(max_age)
    for i, faces in enumerate(per_index):
        linker.assign(i, faces)
