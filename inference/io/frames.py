"""Frame sources: an EXR plate, an image sequence in another format, or a video file.

Every source hands out plate-space RGB over the data window plus where that window sits,
so detection, tracking, facesets and rendering read footage the same way.

A multi-part EXR plate is tracked and rendered on the part holding its RGB: the part named by
``part`` when given, else the first part with R, G and B channels (``exr.rgb_part``); a render
reads every part (``SequenceSource.read_parts``) to write them all back. Every frame of a
sequence must have the display window (resolution) of the first frame on disk.

A still (an image file without a frame token: ``ref/still.exr``) is a one-frame sequence read
through OpenImageIO like any plate frame (an EXR still keeps its float pixels); only movie
files go to the video reader (OpenCV/ffmpeg, 8-bit display-referred).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Protocol, Union

import cv2
import numpy as np

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import colour, exr
from facegraft.inference.io.sequence import _TOKEN, STILL_FRAME, SequencePattern, parse_frames, resolve_frames

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
    image: Optional[exr.Image] = None  # the EXR part holding the RGB, as stored
    parts: list[exr.Image] = field(default_factory=list)  # every part (for a render), or none
    part: int = 0  # the index of ``image`` in ``parts``

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.rgb.shape[0]), int(self.rgb.shape[1]))


class FrameSource(Protocol):
    name: str
    frames: list[int]
    colorspace: str

    def read(self, frame: int) -> Plate: ...


class SequenceSource:
    """An image sequence read through OpenImageIO (EXR: scene-linear in ``colorspace``); ``part``
    names the part of a multi-part EXR that holds the plate's RGB (default: the first with R, G, B).

    ``pattern`` is a pattern's text or a ``SequencePattern`` (``SequencePattern(path, still=N)``:
    a still read as frame N)."""

    def __init__(self, pattern: Union[str, SequencePattern], frames: Optional[str] = None,
                 colorspace: str = colour.DEFAULT_PLATE_SPACE, in_colorspace: Optional[str] = None,
                 config: str = colour.DEFAULT_CONFIG, part: Optional[str] = None) -> None:
        self.sequence = pattern if isinstance(pattern, SequencePattern) else SequencePattern(pattern)
        self.name = str(pattern)
        self.frames = resolve_frames(self.sequence, frames)
        self.colorspace = colorspace
        self.config = config
        self.part = part or None
        ext = Path(self.name).suffix.lower()
        source_space = in_colorspace or (colorspace if ext in SCENE_LINEAR_EXTENSIONS else DEFAULT_IN_SPACE)
        self._convert = None if source_space == colorspace else colour.converter(source_space, colorspace, config)
        self._lock = threading.Lock()
        self._reference: Optional[tuple[int, tuple[int, int, int, int]]] = None

    def path(self, frame: int) -> str:
        return self.sequence.path(frame)

    @property
    def converts(self) -> bool:
        """True when pixels are converted on read (a non-EXR sequence, or ``in_colorspace`` given)."""
        return self._convert is not None

    def read(self, frame: int) -> Plate:
        """The RGB of ``frame`` in the plate colour space (a float32 copy), from its RGB part only."""
        image = exr.read_rgb_part(self.path(frame), frame, self.part)
        rgb = image.rgb()
        if self._convert is not None:
            rgb = self._convert(rgb)
        return self._plate(frame, rgb, image, [image], 0)

    def read_parts(self, frame: int) -> Plate:
        """Every part of ``frame`` as stored, for a render that writes them all back. ``rgb`` is a
        view of the RGB part's stored pixels (half stays half) unless the source converts."""
        images, index = exr.read_plate_parts(self.path(frame), frame, self.part)
        if self._convert is not None:  # the part is written back in the plate space: RGB as converted
            images[index] = _converted(images[index], self._convert(images[index].rgb()))
        image = images[index]
        first = [image.index(c) for c in exr.RGB]
        pixels = image.pixels
        consecutive = first == list(range(first[0], first[0] + 3))
        rgb = pixels[..., first[0]:first[0] + 3] if consecutive else pixels[..., first]
        return self._plate(frame, rgb, image, images, index)

    def _plate(self, frame: int, rgb: np.ndarray, image: exr.Image, parts: list[exr.Image], index: int) -> Plate:
        self._check_resolution(frame, image)
        spec = image.spec
        return Plate(frame, rgb, (spec.x - spec.full_x, spec.y - spec.full_y), image.display_window, image,
                     parts, index)

    def _check_resolution(self, frame: int, image: exr.Image) -> None:
        """Refuse a frame whose display window differs from that of the sequence's first readable
        frame on disk (whatever frames this source reads, so every chunk of a shot agrees)."""
        with self._lock:
            if self._reference is None:
                self._reference = self._first_window(frame, image)
            first, window = self._reference
        if image.display_window != window:
            raise BadFrameError(
                f"the plate changes resolution: this frame is {_window_text(image.display_window)}, "
                f"frame {first} is {_window_text(window)}", path=image.path, frame=frame,
                hint="a shot has one resolution: reformat the plate, or split it into shots where it changes")

    def _first_window(self, frame: int, image: exr.Image) -> tuple[int, tuple[int, int, int, int]]:
        for candidate in self.sequence.on_disk() or self.frames:
            if candidate == frame:
                return frame, image.display_window
            try:
                spec = exr.read_headers(self.path(candidate), candidate)
            except FaceGraftError:
                continue  # a bad frame is reported when it is read
            return candidate, (spec[0].full_x, spec[0].full_y, spec[0].full_width, spec[0].full_height)
        return frame, image.display_window


def _converted(image: exr.Image, rgb: np.ndarray) -> exr.Image:
    """``image`` as float32 with its R, G, B replaced by ``rgb``."""
    pixels = image.pixels.astype(np.float32)
    for i, name in enumerate(exr.RGB):
        pixels[..., image.index(name)] = rgb[..., i]
    spec = exr.make_spec(image.spec, image.channels, np.float32)
    spec.alpha_channel, spec.z_channel = image.spec.alpha_channel, image.spec.z_channel
    return exr.Image(pixels, spec, image.path)


def _window_text(window: tuple[int, int, int, int]) -> str:
    x, y, w, h = window
    return f"{w}x{h}" + (f" at {x},{y}" if x or y else "")


class VideoSource:
    """A video decoded with OpenCV (8-bit, display-referred); frames numbered from ``start``."""

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


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """File extensions OpenImageIO reads as images (``.exr``, ``.png``, ``.tif``, ...), movies excluded."""
    import OpenImageIO as oiio

    found: set[str] = set()
    for entry in str(oiio.get_string_attribute("extension_list")).split(";"):
        fmt, _, extensions = entry.partition(":")
        if fmt not in ("ffmpeg", "null", "term"):
            found.update("." + e.lower() for e in extensions.split(",") if e)
    return frozenset(found - VIDEO_EXTENSIONS)


def is_video(path: Union[str, Path]) -> bool:
    """True for a movie file: a movie extension, or a file without a frame token that OpenImageIO
    does not read as an image (``.mts``, ``.wmv``, ...)."""
    name = os.path.basename(str(path))
    ext = Path(name).suffix.lower()
    return ext in VIDEO_EXTENSIONS or (not _TOKEN.search(name) and ext not in image_extensions())


def is_still(path: Union[str, Path]) -> bool:
    """True for a single image: no frame token in its name, and a format OpenImageIO reads."""
    name = os.path.basename(str(path))
    return not _TOKEN.search(name) and not is_video(name)


def open_source(path: Union[str, Path], frames: Optional[str] = None, colorspace: str = colour.DEFAULT_PLATE_SPACE,
                in_colorspace: Optional[str] = None, config: str = colour.DEFAULT_CONFIG, start: int = STILL_FRAME,
                part: Optional[str] = None) -> FrameSource:
    """The right source for ``path``: a sequence pattern (``####``, ``%04d``, ``@``), a still (a
    one-frame sequence, numbered ``start``) or a video file (frames numbered from ``start``);
    ``part``: the EXR part holding the plate's RGB (sequences and stills)."""
    text = str(path)
    if is_video(text):
        if part:
            raise FaceGraftError(f"a plate part ('{part}') only applies to an EXR plate, not a video", path=text)
        return VideoSource(text, frames, colorspace, in_colorspace or DEFAULT_IN_SPACE, config, start)
    if is_still(text):
        if not os.path.isfile(text):
            raise FaceGraftError("file not found", path=text)
        return SequenceSource(SequencePattern(text, still=start), frames, colorspace, in_colorspace, config, part)
    return SequenceSource(text, frames, colorspace, in_colorspace, config, part)
