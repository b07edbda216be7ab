"""A contact sheet PNG to eyeball a shot track: thumbnails with landmarks, boxes and track ids.

Each cell is one frame, tone-mapped for the sRGB display. The target track is drawn green,
other tracks yellow; a frame flagged in the track file (no face, unreadable, bridged,
low confidence) gets a red border and its flags written under the frame number.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from facegraft.inference.atomic import atomic_write_bytes
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.track.trackfile import FrameTrack

GREEN = (60, 220, 60)
YELLOW = (40, 210, 230)
RED = (40, 40, 230)
WHITE = (255, 255, 255)
MARKED = ("bridged", "low_confidence", "occluded")  # face flags that mark a frame for review


def thumbnail(rgb: np.ndarray, width: int, plate_space: str, config: str = colour.DEFAULT_CONFIG) -> tuple[np.ndarray, float]:
    """``(BGR uint8 thumbnail, scale)``: the frame shrunk first, then converted (cheap on 4K)."""
    h, w = rgb.shape[:2]
    scale = width / w
    small = cv2.resize(colour.sanitize(rgb), (width, max(1, int(round(h * scale)))), interpolation=cv2.INTER_AREA)
    shown = colour.to_display_uint8(small, plate_space, config, tone_map=True)
    return np.ascontiguousarray(shown[..., ::-1]), scale


def draw_frame(thumb: np.ndarray, scale: float, origin: Sequence[float], record: FrameTrack,
               target: Optional[int]) -> np.ndarray:
    """Draw landmarks, boxes and ids (plate px -> thumbnail px) and the frame's flags."""
    out = thumb.copy()
    ox, oy = origin

    def px(x: float, y: float) -> tuple[int, int]:  # plate px -> thumbnail px, 4 bits of subpixel
        return (int(round((x - ox) * scale * 16)), int(round((y - oy) * scale * 16)))

    for face in record.faces:
        tint = GREEN if face.track == target else YELLOW
        x0, y0, x1, y1 = face.box
        cv2.rectangle(out, px(x0, y0), px(x1, y1), tint, 1, cv2.LINE_AA, shift=4)
        for x, y in np.asarray(face.landmarks)[:, :2]:
            cv2.circle(out, px(x, y), 8, tint, -1, cv2.LINE_AA, shift=4)
        label = f"{face.track}" + ("*" if face.flags else "")
        cv2.putText(out, label, (int((x0 - ox) * scale), max(10, int((y0 - oy) * scale) - 3)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, tint, 1, cv2.LINE_AA)
    face_flags = sorted({flag for f in record.faces if f.track == target for flag in f.flags if flag in MARKED})
    flags = list(record.flags) + face_flags
    if flags:
        cv2.rectangle(out, (0, 0), (out.shape[1] - 1, out.shape[0] - 1), RED, 3)
    return out


def cell(image: np.ndarray, frame: int, flags: Sequence[str], width: int) -> np.ndarray:
    """The thumbnail above a caption strip with the frame number and flags."""
    h = int(round(image.shape[0] * width / image.shape[1]))
    body = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
    caption = np.full((18, width, 3), 32, np.uint8)
    text = f"{frame}  {' '.join(flags)}".strip()
    cv2.putText(caption, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, RED if flags else WHITE, 1, cv2.LINE_AA)
    return np.vstack([body, caption])


def sheet(cells: Sequence[np.ndarray], columns: int = 6, gap: int = 4, background: int = 16) -> np.ndarray:
    """Cells (uint8 pictures, all one size, either channel order) on a grid of ``columns``
    (fewer when there are fewer cells), ``gap`` px apart on a grey ``background``."""
    if not len(cells):
        raise ValueError("no cells")
    h, w = cells[0].shape[:2]
    rows = (len(cells) + columns - 1) // columns
    cols = min(columns, len(cells))
    out = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), background, np.uint8)
    for k, c in enumerate(cells):
        r, q = divmod(k, columns)
        out[gap + r * (h + gap):gap + r * (h + gap) + h, gap + q * (w + gap):gap + q * (w + gap) + w] = c
    return out


def write_png(path: str | Path, image: np.ndarray, rgb: bool = False) -> Path:
    """Write a uint8 picture, BGR (OpenCV's order) or with ``rgb`` RGB, atomically."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1] if rgb else image))
    if not ok:
        raise FaceGraftError("cannot encode the PNG", path=str(path))
    return atomic_write_bytes(path, encoded.tobytes())


def pick_frames(frames: Sequence[int], limit: int) -> list[int]:
    """At most ``limit`` frames spread evenly over the shot (first and last included)."""
    if len(frames) <= limit:
        return list(frames)
    picks = np.unique(np.round(np.linspace(0, len(frames) - 1, limit)).astype(int))
    return [frames[i] for i in picks]
