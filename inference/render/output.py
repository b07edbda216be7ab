"""An output frame: its channel layout and header, a face's layers packed into its channels, and
its pixels built a strip of scanlines at a time.

Off the face's region every pixel comes straight from the plate's stored array (or is a
constant, or the holdout), so the only full-frame work is one copy per strip into a reused
buffer, and the encoder takes each strip as soon as it is built (``exr.write_image_rows``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from facegraft.inference.io import exr, layers
from facegraft.inference.render.composite import FaceLayers

Run = tuple[int, int, str, Any]  # first output channel, count, kind (copy/const/plane), source
_strips = threading.local()


@dataclass
class Layout:
    """The output's channels: names, stored types, and where each one's pixels come from."""

    names: list[str]
    formats: list[type]  # per channel: a plate channel keeps its stored precision
    runs: list[Run]
    new_format: type  # of new pixels (beauty RGB, FaceGraft layers): half when the plate's RGB is
    alpha_format: type  # of A
    has_alpha: bool  # the plate has an A to merge the matte over
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in enumerate(self.names)}


def layout(plate_channels: Sequence[str], stored_formats: Sequence[type], groups: Sequence[str],
           holdout: Optional[np.ndarray] = None) -> Layout:
    """The layout for a plate with ``plate_channels`` stored as ``stored_formats``, writing the
    FaceGraft layers of ``groups``; off the face they are 0 (``matte.holdout``: ``holdout``)."""
    plate_channels = list(plate_channels)
    rgb_half = all(stored_formats[plate_channels.index(c)] == np.float16 for c in ("R", "G", "B"))
    new_format: type = np.float16 if rgb_half else np.float32
    names = layers.channels(plate_channels, groups)
    has_alpha = "A" in plate_channels
    sources: list[tuple[str, Any]] = []
    formats: list[type] = []
    for name in names:
        if name in layers.FACEGRAFT:
            held = name == "matte.holdout" and holdout is not None
            sources.append(("plane", holdout) if held else ("const", 0.0))
            formats.append(new_format)
        elif name == "A" and not has_alpha:
            sources.append(("const", 1.0))
            formats.append(new_format)
        else:
            sources.append(("copy", plate_channels.index(name)))
            formats.append(stored_formats[plate_channels.index(name)])
    alpha_format = formats[names.index("A")] if has_alpha else new_format
    return Layout(names, formats, _runs(sources), new_format, alpha_format, has_alpha)


def _runs(sources: list[tuple[str, Any]]) -> list[Run]:
    """Merge per-channel sources into runs: consecutive plate channels, equal constants."""
    runs: list[Run] = []
    for channel, (kind, source) in enumerate(sources):
        if runs:
            first, count, last_kind, last = runs[-1]
            if kind == last_kind == "copy" and source == last + count:
                runs[-1] = (first, count + 1, kind, last)
                continue
            if kind == last_kind == "const" and source == last:
                runs[-1] = (first, count + 1, kind, last)
                continue
        runs.append((channel, 1, kind, source))
    return runs


def header(like: Any, lay: Layout, dtype: type, attrs: Mapping[str, object], compression: Optional[str]) -> Any:
    """The output header: the plate's (``like``) with the layout's channels and ``attrs``."""
    spec = exr.make_spec(like, lay.names, dtype, dict(attrs), compression, formats=lay.formats)
    if like.getattribute("DateTime") is None:
        spec.attribute("DateTime", "")  # else OpenImageIO stamps the time of writing: bytes would vary
    return spec


def pack(block: np.ndarray, index: Mapping[str, int], face: FaceLayers) -> None:
    """Write a face's layers into ``block`` (every output channel over the face's region, already
    holding what the frame has there off the face); layers not in ``index``, or not computed, are
    left as they are."""
    block[..., index["R"]:index["B"] + 1] = face.rgb
    if face.alpha is not None:
        block[..., index["A"]] = face.alpha
    if "swap.R" in index and face.swap is not None:
        block[..., index["swap.R"]:index["swap.B"] + 1] = face.swap
        block[..., index["swap.A"]] = face.matte
    if "matte.face" in index and face.face_matte is not None:
        block[..., index["matte.face"]] = face.face_matte
    if "stmap.R" in index and face.stmap is not None:
        block[..., index["stmap.R"]] = face.stmap[0]
        block[..., index["stmap.G"]] = face.stmap[1]


class FrameOutput:
    """An output frame's pixels as a recipe (plate channels, constants, the holdout) plus the new
    pixels over the face's region; ``rows`` builds any strip of scanlines."""

    def __init__(self, runs: list[Run], stored: np.ndarray, nchannels: int, dtype: np.dtype) -> None:
        self.runs = runs
        self.stored = stored
        self.nchannels = nchannels
        self.dtype = dtype
        self.spec: Any = None
        self.roi: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.block: Optional[np.ndarray] = None  # all channels over roi

    def fill(self, out: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> None:
        """``out[...] =`` the frame off the face over rows ``y0:y1`` and columns ``x0:x1``."""
        for first, count, kind, source in self.runs:
            if kind == "copy":
                out[..., first:first + count] = self.stored[y0:y1, x0:x1, source:source + count]
            elif kind == "const":
                out[..., first:first + count] = source
            else:
                out[..., first] = source[y0:y1, x0:x1]

    def region(self, roi: tuple[int, int, int, int]) -> np.ndarray:
        """A new array of every channel over ``roi`` (``y0, y1, x0, x1``), filled off the face."""
        y0, y1, x0, x1 = roi
        block = np.empty((y1 - y0, x1 - x0, self.nchannels), self.dtype)
        self.fill(block, y0, y1, x0, x1)
        return block

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` of the frame, ``[y1 - y0, W, C]``; a view of a per-thread buffer that
        the next call overwrites."""
        width = self.stored.shape[1]
        shape = (width, self.nchannels)
        buffer: Optional[np.ndarray] = getattr(_strips, "buffer", None)
        if buffer is None or buffer.shape[1:] != shape or buffer.dtype != self.dtype or len(buffer) < y1 - y0:
            buffer = np.empty((y1 - y0, *shape), self.dtype)
            _strips.buffer = buffer
        return self._build(buffer[: y1 - y0], y0, y1)

    def _build(self, out: np.ndarray, y0: int, y1: int) -> np.ndarray:
        self.fill(out, y0, y1, 0, out.shape[1])
        ry0, ry1, rx0, rx1 = self.roi
        top, bottom = max(y0, ry0), min(y1, ry1)
        if self.block is not None and bottom > top:
            out[top - y0:bottom - y0, rx0:rx1] = self.block[top - ry0:bottom - ry0]
        return out
