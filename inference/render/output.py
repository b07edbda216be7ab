"""An output frame: its parts and their headers, a face's layers packed into them, and the beauty
part's pixels built a strip of scanlines at a time.

The output has the plate's parts, in the plate's order, then the FaceGraft layers' parts
(``docs/layers.md``):

* the part holding the plate's RGB (the **beauty** part): the plate's channels (``A`` added when
  it has none), data window, compression and header. Off the face's region every pixel comes
  straight from the plate's stored array (or is a constant), so the only full-frame work is one
  copy per strip into a reused buffer, and the encoder takes each strip as soon as it is built
  (``exr.write_parts``);
* every other plate part (depth, motion, ...) as it was read;
* a part per FaceGraft layer (``facegraft_swap``, ``facegraft_matte``, ``facegraft_stmap``)
  over the face's region only, ZIP-compressed (lossless); ``stmap.*`` in float32, the others in
  the precision of the beauty's new pixels. One precision per part keeps OpenImageIO on its fast
  path (a part of mixed precision is converted channel by channel, at twice the cost).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import OpenImageIO as oiio

from facegraft.inference.io import exr, layers
from facegraft.inference.render.composite import FaceLayers
from facegraft.inference.track.mattes import nonzero_box

Run = tuple[int, int, str, Any]  # first output channel, count, kind (copy/const), source
LAYERS_COMPRESSION = "zip"  # lossless, and fast on a small window
STMAP_FORMAT: type = np.float32  # an exact STMap costs little on the face's window
_strips = threading.local()


@dataclass
class Layout:
    """The beauty part's channels: names, stored types, and where each one's pixels come from."""

    names: list[str]
    formats: list[type]  # per channel: a plate channel keeps its stored precision
    runs: list[Run]
    new_format: type  # of new pixels (beauty RGB, FaceGraft layers): half when the plate's RGB is
    alpha_format: type  # of A
    has_alpha: bool  # the plate has an A to merge the matte over
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in enumerate(self.names)}


def layout(plate_channels: Sequence[str], stored_formats: Sequence[type]) -> Layout:
    """The beauty part's layout for a plate part with ``plate_channels`` stored as ``stored_formats``."""
    plate_channels = list(plate_channels)
    rgb_half = all(stored_formats[plate_channels.index(c)] == np.float16 for c in ("R", "G", "B"))
    new_format: type = np.float16 if rgb_half else np.float32
    names = layers.beauty_channels(plate_channels)
    has_alpha = "A" in plate_channels
    sources: list[tuple[str, Any]] = []
    formats: list[type] = []
    for name in names:
        if name == "A" and not has_alpha:
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


def _stable(spec: Any, like: Any) -> Any:
    if like.getattribute("DateTime") is None:
        spec.attribute("DateTime", "")  # else OpenImageIO stamps the time of writing: bytes would vary
    return spec


def header(like: Any, lay: Layout, dtype: type, attrs: Mapping[str, object], compression: Optional[str]) -> Any:
    """The beauty part's header: the plate part's (``like``) with the layout's channels and ``attrs``."""
    return _stable(exr.make_spec(like, lay.names, dtype, dict(attrs), compression, formats=lay.formats), like)


def passthrough_header(like: Any, attrs: Mapping[str, object]) -> Any:
    """A plate part written back as it was read: its own header (channels, formats, windows,
    compression, name, view) plus ``attrs``."""
    spec = oiio.ImageSpec(like)
    for key in ("oiio:ColorSpace", "oiio:BitsPerSample"):
        spec.erase_attribute(key)
    exr.set_attributes(spec, attrs)
    return _stable(spec, like)


def layer_parts(groups: Sequence[str], new_format: type) -> list[tuple[str, list[str], type]]:
    """``(part name, channels, stored type)`` of each FaceGraft layer of ``groups``: ``stmap`` in
    float32, the others in the beauty's new pixels' type."""
    return [(layers.PARTS[group], list(layers.GROUPS[group]), STMAP_FORMAT if group == "stmap" else new_format)
            for group in layers.GROUPS if group in groups]


def layers_header(like: Any, name: str, channels: Sequence[str], dtype: type,
                  window: tuple[int, int, int, int], attrs: Mapping[str, object]) -> Any:
    """A FaceGraft layer part's header: the beauty part's display window and metadata (``like``),
    the data window ``(x, y, width, height)``, scanlines, ZIP."""
    spec = exr.make_spec(like, list(channels), dtype, dict(attrs), LAYERS_COMPRESSION)
    spec.x, spec.y, spec.width, spec.height = window
    spec.tile_width = spec.tile_height = 0
    spec.attribute("oiio:subimagename", name)
    spec.erase_attribute("view")
    return _stable(spec, like)


def layers_window(like: Any, roi: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The FaceGraft layer parts' data window: the face's region ``roi`` (``y0, y1, x0, x1`` in the
    beauty part's array), or one pixel at the beauty's data window origin when it is empty."""
    y0, y1, x0, x1 = roi
    if y1 <= y0 or x1 <= x0:
        return (like.x, like.y, 1, 1)
    return (like.x + x0, like.y + y0, x1 - x0, y1 - y0)


def layer_pixels(channels: Sequence[str], dtype: type, shape: tuple[int, int],
                 face: Optional[FaceLayers] = None, holdout: Optional[np.ndarray] = None) -> np.ndarray:
    """A FaceGraft layer part's pixels ``[h, w, len(channels)]`` over ``shape`` (the face's layers
    cut to the part's window): ``face``'s layers (0 where it has none, or without a face) and
    ``holdout`` in ``matte.holdout``."""
    out: np.ndarray = np.zeros((*shape, len(channels)), dtype)
    index = {name: i for i, name in enumerate(channels)}
    if "matte.holdout" in index and holdout is not None:
        out[..., index["matte.holdout"]] = holdout
    if face is None:
        return out
    if "swap.R" in index and face.swap is not None:
        out[..., index["swap.R"]:index["swap.B"] + 1] = face.swap
        out[..., index["swap.A"]] = face.matte
    if "matte.face" in index and face.face_matte is not None:
        out[..., index["matte.face"]] = face.face_matte
    if "matte.occlusion" in index and face.occlusion is not None:
        out[..., index["matte.occlusion"]] = face.occlusion
    if "stmap.R" in index and face.stmap is not None:
        out[..., index["stmap.R"]] = face.stmap[0]
        out[..., index["stmap.G"]] = face.stmap[1]
    return out


def group_box(group: str, face: FaceLayers, holdout: Optional[np.ndarray]) -> tuple[int, int, int, int]:
    """Where a FaceGraft layer group holds anything over the face's region (``y0, y1, x0, x1`` in
    it): ``swap`` where the blend matte is not 0 (``face.box``: the swap is premultiplied by it), ``matte`` where
    any of its mattes is, ``stmap`` everywhere (it maps every pixel of the region)."""
    if group == "swap":
        return face.box
    if group == "matte":
        return nonzero_box([face.face_matte, face.occlusion, holdout])
    h, w = face.matte.shape
    return (0, h, 0, w)


def name_parts(specs: Sequence[Any]) -> None:
    """Give every part of a multi-part output a distinct name (OpenEXR requires one): a plate part
    without a name (a single-part plate's) is called ``rgba``, Nuke's name for its main part."""
    if len(specs) < 2:
        return
    taken = {exr.part_name(s) for s in specs}
    for spec in specs:
        if not exr.part_name(spec):
            name, n = layers.PLATE_PART, 1
            while name in taken:
                name, n = f"{layers.PLATE_PART}{n}", n + 1
            spec.attribute("oiio:subimagename", name)
            taken.add(name)


def layers_parts(like: Any, groups: Sequence[str], new_format: type, attrs: Mapping[str, object],
                 face: Optional[FaceLayers] = None, roi: tuple[int, int, int, int] = (0, 0, 0, 0),
                 holdout: Optional[np.ndarray] = None) -> list[exr.Part]:
    """The FaceGraft layer parts of ``groups`` for a frame whose beauty part's header is ``like``:
    ``face``'s layers over its region ``roi`` (``y0, y1, x0, x1`` in the beauty's array) and the
    ``holdout`` there (``[H, W]`` over the beauty); one pixel of 0 without a face.

    Each part's data window is what it holds (``group_box``): the swap and the mattes are 0 off
    the matte's box, which is about half the region, so they are neither stored nor encoded there
    (a reader gives 0 outside a data window); the STMap covers the whole region."""
    held = None if holdout is None or face is None else holdout[roi[0]:roi[1], roi[2]:roi[3]]
    parts = []
    for group in (g for g in layers.GROUPS if g in groups):
        name, channels, dtype = layer_parts([group], new_format)[0]
        box = group_box(group, face, held) if face is not None else (0, 0, 0, 0)
        y0, y1, x0, x1 = box
        window = layers_window(like, (roi[0] + y0, roi[0] + y1, roi[2] + x0, roi[2] + x1))  # one pixel when empty
        if face is None or y1 <= y0:
            pixels = layer_pixels(channels, dtype, (1, 1))
        else:
            pixels = layer_pixels(channels, dtype, (y1 - y0, x1 - x0), face.within(box),
                                  None if held is None else held[y0:y1, x0:x1])
        parts.append(exr.Part(layers_header(like, name, channels, dtype, window, attrs), pixels=pixels))
    return parts


def pack(block: np.ndarray, index: Mapping[str, int], face: FaceLayers) -> None:
    """Write a face's beauty (``R, G, B`` and ``A``) into ``block`` (every beauty channel over the
    face's region, already holding what the frame has there off the face)."""
    block[..., index["R"]:index["B"] + 1] = face.rgb
    if face.alpha is not None:
        block[..., index["A"]] = face.alpha


class FrameOutput:
    """The beauty part's pixels as a recipe (plate channels, constants) plus the new pixels over
    the face's region; ``rows`` builds any strip of scanlines."""

    def __init__(self, runs: list[Run], stored: np.ndarray, nchannels: int, dtype: np.dtype) -> None:
        self.runs = runs
        self.stored = stored
        self.nchannels = nchannels
        self.dtype = dtype
        self.roi: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.block: Optional[np.ndarray] = None  # all channels over roi

    def fill(self, out: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> None:
        """``out[...] =`` the frame off the face over rows ``y0:y1`` and columns ``x0:x1``."""
        for first, count, kind, source in self.runs:
            if kind == "copy":
                out[..., first:first + count] = self.stored[y0:y1, x0:x1, source:source + count]
            else:
                out[..., first:first + count] = source

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
