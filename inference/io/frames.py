"""Frame sources: an EXR plate, an image sequence in another format, or a video file.

Every source hands out plate-space RGB over the data window plus where that window sits,
so detection, tracking, facesets and rendering read footage the same way.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Union

import cv2
import numpy as np

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import colour, exr
from facegraft.inference.io.sequence import _TOKEN, SequencePattern, parse_frames, resolve_frames

VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mxf", ".mpg", ".mpeg"}
SCENE_LINEAR_EXTENSIONS = {".exr", ".hdr"}
DEFAULT_IN_SPACE = "sRGB - Texture"


@dataclass
class Plate:
    """One frame: RGB in the plate colour space over the data window (not sanitized)."""

    frame: int
    rgb: np.ndarray
    origin: tuple[int, int]
    display_window: tuple[int, int, int, int]
    image: Optional[exr.Image] = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.rgb.shape[0]), int(self.rgb.shape[1]))


class FrameSource(Protocol):
    name: str
    frames: list[int]
    colorspace: str

    def read(self, frame: int) -> Plate: ...


class SequenceSource:
    """An image sequence read through OpenImageIO (EXR: scene-linear in ``colorspace``)."""

    def __init__(self, pattern: str, frames: Optional[str] = None, colorspace: str = colour.DEFAULT_PLATE_SPACE,
                 in_colorspace: Optional[str] = None, config: str = colour.DEFAULT_CONFIG) -> None:
        self.sequence = SequencePattern(pattern)
        self.name = pattern
        self.frames = resolve_frames(self.sequence, frames)
        self.colorspace = colorspace
        self.config = config
        ext = Path(pattern).suffix.lower()
        source_space = in_colorspace or (colorspace if ext in SCENE_LINEAR_EXTENSIONS else DEFAULT_IN_SPACE)
        self._convert = None if source_space == colorspace else colour.converter(source_space, colorspace, config)

    def path(self, frame: int) -> str:
        return self.sequence.path(frame)

    @property
    def converts(self) -> bool:
        """True when pixels are converted on read (a non-EXR sequence, or ``in_colorspace`` given)."""
        return self._convert is not None

    def read(self, frame: int) -> Plate:
        image = exr.read_image(self.path(frame), frame)
        try:
            rgb = image.rgb()
        except FaceGraftError as exc:
            raise BadFrameError(exc.message, path=image.path, frame=frame,
                                hint="FaceGraft needs R, G and B channels in the plate") from None
        if self._convert is not None:
            rgb = self._convert(rgb)
        spec = image.spec
        return Plate(frame, rgb, (spec.x - spec.full_x, spec.y - spec.full_y), image.display_window, image)


class VideoSource:
    """A video (or one still image) decoded with OpenCV; frames numbered from ``start``."""

    def __init__(self, path: str, frames: Optional[str] = None, colorspace: str = colour.DEFAULT_PLATE_SPACE,
                 in_colorspace: str = DEFAULT_IN_SPACE, config: str = colour.DEFAULT_CONFIG, start: int = 1) -> None:
        if not os.path.isfile(path):
            raise FaceGraftError("file not found", path=path)
        self.name = path
        self.start = start
        self.colorspace = colorspace
        self.config = config
        self._convert = colour.converter(in_colorspace, colorspace, config)
        self._lock = threading.Lock()
        self._capture: Optional[cv2.VideoCapture] = None
        self._next = 0  # index the open capture returns next
        count = self._count()
        if count == 0:
            raise FaceGraftError("no frames could be decoded", path=path,
                                 hint="check the file plays; convert it to an image sequence if the codec is exotic")
        available = list(range(start, start + count))
        if frames is None:
            self.frames = available
        else:
            self.frames = parse_frames(frames)
            outside = [f for f in self.frames if f not in set(available)]
            if outside:
                raise FaceGraftError(f"the video has frames {start}-{start + count - 1}; asked for {frames}", path=path)

    def _count(self) -> int:
        capture = cv2.VideoCapture(self.name)
        if not capture.isOpened():
            image = cv2.imread(self.name, cv2.IMREAD_COLOR)
            return 0 if image is None else 1
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:  # container without a count: decode to find out
            count = 0
            while capture.grab():
                count += 1
        capture.release()
        return count

    def _decode(self, index: int) -> np.ndarray:
        if self._capture is None or index < self._next:
            if self._capture is not None:
                self._capture.release()
            self._capture = cv2.VideoCapture(self.name)
            self._next = 0
        if not self._capture.isOpened():
            image = cv2.imread(self.name, cv2.IMREAD_COLOR)
            if image is None or index != 0:
                raise BadFrameError("cannot decode", path=self.name, frame=index + self.start)
            return image
        while self._next < index:
            self._capture.grab()
            self._next += 1
        ok, image = self._capture.read()
        self._next += 1
        if not ok or image is None:
            raise BadFrameError("cannot decode this frame", path=self.name, frame=index + self.start)
        return image

    def read(self, frame: int) -> Plate:
        with self._lock:
            bgr = self._decode(frame - self.start)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        h, w = rgb.shape[:2]
        return Plate(frame, self._convert(rgb), (0, 0), (0, 0, w, h), None)


def is_video(path: Union[str, Path]) -> bool:
    """True for a movie file or a single still image (anything without a frame token)."""
    name = os.path.basename(str(path))
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS or not _TOKEN.search(name)


def open_source(path: Union[str, Path], frames: Optional[str] = None, colorspace: str = colour.DEFAULT_PLATE_SPACE,
                in_colorspace: Optional[str] = None, config: str = colour.DEFAULT_CONFIG, start: int = 1) -> FrameSource:
    """The right source for ``path``: a sequence pattern (``####``, ``%04d``, ``@``) or a video/still file."""
    text = str(path)
    if is_video(text):
        return VideoSource(text, frames, colorspace, in_colorspace or DEFAULT_IN_SPACE, config, start)
    return SequenceSource(text, frames, colorspace, in_colorspace, config)
