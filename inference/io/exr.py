"""EXR reading and writing through OpenImageIO.

Pixels are kept over the **data window** in their stored precision (half stays float16),
so a pixel that FaceGraft does not touch is written back bit for bit, NaN and Inf included.
The plate's header (windows, pixel aspect, every attribute) travels with the pixels in an
``oiio.ImageSpec``. Writes are atomic (``atomic``): a temporary file in the target folder, then a rename.

Multi-part files (OpenEXR parts = OpenImageIO subimages) are read three ways:

* ``read_image(path)``: every part's channels as one image, the way Nuke shows the file (each
  part placed by its data window over the union of them, 0 where a part has no pixel);
  ``read_image(path, part=...)`` reads one part;
* ``read_plate_parts(path)``: every part as it is stored, and which one holds the plate's RGB
  (``rgb_part``: the part named by the caller, else the first part with R, G and B), for a
  render that writes every part back;
* ``read_rgb_part(path)``: only that part, for tracking.

``write_parts`` writes several parts to one file, each part whole or a strip of scanlines at a time.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import OpenImageIO as oiio

from facegraft.inference.atomic import atomic_path
from facegraft.inference.errors import BadFrameError, FaceGraftError

PathLike = Union[str, Path]
PartKey = Union[int, str]  # a part by its index or its name
RGB = ("R", "G", "B")
_thread_config = threading.Lock()
_BAD_FRAME_HINT = "re-render or replace this frame; --on-error skip|hold renders around it"
# read-only facts of a file OpenImageIO reports in a header; written back they would describe the wrong file
_FILE_FACTS = ("oiio:subimages", "openexr:chunkCount", "oiio:RowsPerChunk")


def _type_name(dtype: type) -> str:
    """OpenImageIO's name of an array precision: ``half`` for float16, ``float`` for anything else."""
    return "half" if np.dtype(dtype) == np.float16 else "float"


def _array_dtype(type_name: str) -> type:
    """The array precision of an OpenImageIO type name: float16 for ``half``, float32 for anything else."""
    return np.float16 if type_name == "half" else np.float32


def configure_threads(threads: int) -> None:
    """Threads OIIO may use inside one file (0 = all cores)."""
    with _thread_config:
        oiio.attribute("threads", int(threads))
        oiio.attribute("exr_threads", int(threads))


@dataclass
class Image:
    """Pixels over the data window (``[H, W, C]``) plus the full header (of one part, or of the
    first part for a whole multi-part file read as one image)."""

    pixels: np.ndarray
    spec: oiio.ImageSpec
    path: Optional[str] = None

    @property
    def channels(self) -> list[str]:
        return list(self.spec.channelnames)

    @property
    def data_window(self) -> tuple[int, int, int, int]:
        """``(x, y, width, height)`` of the stored pixels."""
        return (self.spec.x, self.spec.y, self.spec.width, self.spec.height)

    @property
    def display_window(self) -> tuple[int, int, int, int]:
        """``(x, y, width, height)`` of the frame the plate is framed by."""
        return (self.spec.full_x, self.spec.full_y, self.spec.full_width, self.spec.full_height)

    @property
    def part_name(self) -> str:
        """The part's name ("" for a single-part file)."""
        return part_name(self.spec)

    def index(self, name: str) -> int:
        try:
            return self.channels.index(name)
        except ValueError:
            raise FaceGraftError(
                f"no channel '{name}' (channels: {', '.join(self.channels)})", path=self.path
            ) from None

    def get(self, names: Sequence[str], dtype: type = np.float32) -> np.ndarray:
        """The named channels as ``[H, W, len(names)]``."""
        idx = [self.index(n) for n in names]
        if idx == list(range(idx[0], idx[0] + len(idx))):  # a plain slice keeps pixels interleaved
            return self.pixels[..., idx[0]:idx[0] + len(idx)].astype(dtype, copy=True)
        return np.ascontiguousarray(np.take(self.pixels, idx, axis=-1), dtype=dtype)

    def rgb(self) -> np.ndarray:
        """R, G, B as float32 ``[H, W, 3]`` (a copy)."""
        return self.get(RGB)


def part_name(spec: oiio.ImageSpec) -> str:
    """A part's name ("" when it has none: a single-part file)."""
    return str(spec.getattribute("oiio:subimagename") or spec.getattribute("name") or "")


def _format_names(spec: oiio.ImageSpec) -> list[str]:
    return [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels


def _storage_dtype(spec: oiio.ImageSpec) -> type:
    """The array precision pixels are worked on in: half when every channel is half, else float32."""
    return np.float16 if all(d == np.float16 for d in channel_dtypes(spec)) else np.float32


def _exact_dtype(spec: oiio.ImageSpec) -> type:
    """An array precision that holds every channel of ``spec`` exactly: the channels' own when they
    share one (half, float, uint), float32 for half and float, float64 otherwise."""
    kinds = set(_format_names(spec))
    if kinds == {"half"}:
        return np.float16
    if kinds <= {"half", "float"}:
        return np.float32
    if kinds == {"uint"}:
        return np.uint32
    return np.float64


def _buffer_name(dtype: Union[type, np.dtype]) -> str:
    return {np.dtype(np.float16): "half", np.dtype(np.float32): "float", np.dtype(np.uint32): "uint",
            np.dtype(np.float64): "double"}[np.dtype(dtype)]


def _error(owner: object = oiio) -> str:
    """OpenImageIO's last error message (of ``owner``: an ImageInput/ImageOutput, or global),
    stripped; a damaged file can put bytes that are not text into it."""
    try:
        text = str(owner.geterror()).strip()  # type: ignore[attr-defined]
    except UnicodeDecodeError:
        return "OpenImageIO's message is not readable text"
    first = text.splitlines()[0] if text else ""
    return re.sub(r"^EXR Error \(.*?\): ", "", first)  # the path is named by the error itself


def _open(name: str, frame: Optional[int]) -> oiio.ImageInput:
    if not os.path.isfile(name):
        raise BadFrameError("file not found", path=name, frame=frame)
    source = oiio.ImageInput.open(name)
    if source is None:
        raise BadFrameError(f"not a readable image ({_error() or 'unknown format'})",
                            path=name, frame=frame, hint=_BAD_FRAME_HINT)
    return source


def _specs(source: oiio.ImageInput) -> list[oiio.ImageSpec]:
    """Every part's header (OpenEXR reads them all when it opens the file)."""
    specs: list[oiio.ImageSpec] = []
    while source.seek_subimage(len(specs), 0):
        specs.append(oiio.ImageSpec(source.spec()))
    _error(source)  # seeking past the last part is how the end is found, not an error
    return specs


def _read_part(source: oiio.ImageInput, index: int, spec: oiio.ImageSpec, name: str, frame: Optional[int],
               dtype: type) -> Image:
    if spec.deep:
        where = f" (part '{part_name(spec)}')" if part_name(spec) else ""
        raise BadFrameError(f"deep images are not supported{where}", path=name, frame=frame,
                            hint="flatten the plate (Nuke: DeepToImage) before FaceGraft")
    pixels = source.read_image(index, 0, 0, spec.nchannels, _buffer_name(dtype))
    if pixels is None:
        where = f" in part '{part_name(spec)}'" if part_name(spec) else ""
        raise BadFrameError(f"the file is truncated or corrupt{where} ({_error(source) or 'read failed'})",
                            path=name, frame=frame, hint=_BAD_FRAME_HINT)
    pixels = np.asarray(pixels).reshape(spec.height, spec.width, spec.nchannels)
    return Image(pixels=pixels, spec=spec, path=name)


def _part_index(specs: Sequence[oiio.ImageSpec], part: PartKey, name: str, frame: Optional[int]) -> int:
    names = [part_name(s) for s in specs]
    if isinstance(part, int) and 0 <= part < len(specs):
        return part
    if isinstance(part, str) and part in names:
        return names.index(part)
    raise FaceGraftError(f"no part '{part}' (parts: {describe_parts(specs)})", path=name, frame=frame)


def describe_parts(specs: Sequence[oiio.ImageSpec]) -> str:
    """``name (channels)`` of every part, for messages."""
    return "; ".join(f"{part_name(s) or i} ({', '.join(s.channelnames)})" for i, s in enumerate(specs))


def read_image(path: PathLike, frame: Optional[int] = None, part: Optional[PartKey] = None) -> Image:
    """Read ``path``: every part as one image (``flatten``), or the one ``part`` (index or name).

    A BadFrameError names the file and frame when the file is missing, not an image, truncated
    or deep; a multi-part file whose parts share channel names (stereo views) must be read a part
    at a time."""
    name = str(path)
    source = _open(name, frame)
    try:
        specs = _specs(source)
        wanted = range(len(specs)) if part is None else [_part_index(specs, part, name, frame)]
        images = [_read_part(source, i, specs[i], name, frame, _storage_dtype(specs[i])) for i in wanted]
    finally:
        source.close()
    return images[0] if len(images) == 1 else flatten(images)


def flatten(parts: Sequence[Image]) -> Image:
    """Parts as one image, the way Nuke reads a multi-part file: every channel, each part placed by
    its data window over the union of the data windows, 0 where a part has no pixel; the header is
    the first part's. Parts that share a channel name are refused (read them one at a time)."""
    owner: dict[str, str] = {}
    for i, image in enumerate(parts):
        label = image.part_name or str(i)
        for channel in image.channels:
            if channel in owner:
                raise FaceGraftError(f"channel '{channel}' is in part '{owner[channel]}' and in part '{label}' "
                                     "(a stereo or multi-view file?)", path=parts[0].path,
                                     hint="read one part at a time (part=...)")
            owner[channel] = label
    x0 = min(p.spec.x for p in parts)
    y0 = min(p.spec.y for p in parts)
    x1 = max(p.spec.x + p.spec.width for p in parts)
    y1 = max(p.spec.y + p.spec.height for p in parts)
    dtype = np.result_type(*(p.pixels.dtype for p in parts))
    pixels = np.zeros((y1 - y0, x1 - x0, len(owner)), dtype)
    formats: list[str] = []
    first = 0
    for image in parts:
        s = image.spec
        pixels[s.y - y0:s.y - y0 + s.height, s.x - x0:s.x - x0 + s.width, first:first + s.nchannels] = image.pixels
        first += s.nchannels
        formats += _format_names(s)
    spec = oiio.ImageSpec(parts[0].spec)
    spec.x, spec.y, spec.width, spec.height = x0, y0, x1 - x0, y1 - y0
    spec.nchannels = len(owner)
    spec.channelnames = tuple(owner)
    spec.set_format(_buffer_name(dtype))
    spec.channelformats = tuple(oiio.TypeDesc(f) for f in formats) if len(set(formats)) > 1 else ()
    spec.alpha_channel = list(owner).index("A") if "A" in owner else -1
    spec.z_channel = list(owner).index("Z") if "Z" in owner else -1
    return Image(pixels=pixels, spec=spec, path=parts[0].path)


def views(specs: Sequence[oiio.ImageSpec]) -> list[str]:
    """The views a file holds: its parts' ``view`` attributes and any ``multiView`` list."""
    found: list[str] = []
    for spec in specs:
        multi = spec.getattribute("multiView")
        for view in ([spec.getattribute("view")] + list(multi if isinstance(multi, (tuple, list)) else [])):
            if view and str(view) not in found:
                found.append(str(view))
    return found


def rgb_part(specs: Sequence[oiio.ImageSpec], path: str, frame: Optional[int] = None,
             name: Optional[str] = None) -> int:
    """The part holding the plate's RGB: the part called ``name`` when given, else the first part
    with R, G and B channels. Refuses deep parts and files with more than one view."""
    for spec in specs:
        if spec.deep:
            where = f" (part '{part_name(spec)}')" if part_name(spec) else ""
            raise BadFrameError(f"deep images are not supported{where}", path=path, frame=frame,
                                hint="flatten the plate (Nuke: DeepToImage) before FaceGraft")
    found = views(specs)
    if len(found) > 1:
        raise FaceGraftError(
            f"a multi-view (stereo) plate, views {', '.join(found)}: FaceGraft tracks and renders one view",
            path=path, frame=frame,
            hint="render each view as its own plate with its own track (oiiotool plate.exr --subimage left "
                 "-o left.exr; for one-part files --ch R,G,B,A)")
    if name:
        index = _part_index(specs, name, path, frame)
        if not all(c in specs[index].channelnames for c in RGB):
            raise BadFrameError(f"part '{name}' has no R, G and B channels (parts: {describe_parts(specs)})",
                                path=path, frame=frame)
        return index
    for index, spec in enumerate(specs):
        if all(c in spec.channelnames for c in RGB):
            return index
    what = f"channels: {', '.join(specs[0].channelnames)}" if len(specs) == 1 else f"parts: {describe_parts(specs)}"
    raise BadFrameError(f"no R, G and B channels ({what})", path=path, frame=frame,
                        hint="FaceGraft needs R, G and B channels in the plate")


def read_rgb_part(path: PathLike, frame: Optional[int] = None, name: Optional[str] = None) -> Image:
    """The part of ``path`` that holds the plate's RGB (``rgb_part``), alone."""
    text = str(path)
    source = _open(text, frame)
    try:
        specs = _specs(source)
        index = rgb_part(specs, text, frame, name)
        return _read_part(source, index, specs[index], text, frame, _storage_dtype(specs[index]))
    finally:
        source.close()


def read_plate_parts(path: PathLike, frame: Optional[int] = None,
                     name: Optional[str] = None) -> tuple[list[Image], int]:
    """Every part of ``path`` and the index of the one holding the plate's RGB (``rgb_part``). That
    part comes in the precision it is worked on in (half, or float32); every other part in one
    that holds its values exactly, to be written back as it was read."""
    text = str(path)
    source = _open(text, frame)
    try:
        specs = _specs(source)
        index = rgb_part(specs, text, frame, name)
        images = [_read_part(source, i, spec, text, frame, _storage_dtype(spec) if i == index else _exact_dtype(spec))
                  for i, spec in enumerate(specs)]
    finally:
        source.close()
    return images, index


def read_header(path: PathLike, frame: Optional[int] = None) -> oiio.ImageSpec:
    """The header of ``path``'s first part, without its pixels."""
    return read_headers(path, frame)[0]


def read_headers(path: PathLike, frame: Optional[int] = None) -> list[oiio.ImageSpec]:
    """Every part's header of ``path``, without pixels."""
    source = _open(str(path), frame)
    try:
        return _specs(source)
    finally:
        source.close()


def channel_dtypes(spec: oiio.ImageSpec) -> list[type]:
    """Each channel's stored precision: ``np.float16`` for half, ``np.float32`` for anything else."""
    formats = [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels
    return [_array_dtype(f) for f in formats]


def make_spec(
    like: oiio.ImageSpec,
    channels: Sequence[str],
    dtype: type = np.float16,
    attributes: Optional[Mapping[str, object]] = None,
    compression: Optional[str] = None,
    formats: Optional[Sequence[type]] = None,
) -> oiio.ImageSpec:
    """A header for new pixels: ``like``'s windows and metadata, the given channels and precision.

    ``formats`` (one ``np.float16`` / ``np.float32`` per channel) overrides ``dtype``. When they
    differ the header gets per-channel formats (``channelformats``) and a float format: pixels are
    then handed over as float32 and OpenImageIO stores each channel in its own precision.
    """
    kinds = [_type_name(d) for d in (formats or [dtype] * len(channels))]
    if len(kinds) != len(channels):
        raise ValueError(f"{len(kinds)} formats for {len(channels)} channels")
    spec = oiio.ImageSpec(like)
    spec.nchannels = len(channels)
    spec.channelnames = tuple(channels)
    spec.set_format("half" if all(k == "half" for k in kinds) else "float")
    spec.channelformats = tuple(oiio.TypeDesc(k) for k in kinds) if len(set(kinds)) > 1 else ()
    spec.alpha_channel = list(channels).index("A") if "A" in channels else -1
    spec.z_channel = -1
    for key in _FILE_FACTS + ("oiio:ColorSpace", "oiio:BitsPerSample"):
        spec.erase_attribute(key)
    if compression:
        spec.attribute("compression", compression)
    set_attributes(spec, attributes or {})
    return spec


def new_spec(width: int, height: int, channels: Sequence[str], dtype: type = np.float16) -> oiio.ImageSpec:
    """A bare header for a ``width`` x ``height`` image (data window = display window)."""
    spec = oiio.ImageSpec(width, height, len(channels), _type_name(dtype))
    spec.channelnames = tuple(channels)
    spec.alpha_channel = list(channels).index("A") if "A" in channels else -1
    return spec


@dataclass
class Part:
    """One part to write: its header and either all its pixels (``[H, W, C]``) or ``rows(y0, y1)``
    giving rows ``y0..y1`` of its data window (0 = the first row) as ``[y1 - y0, W, C]`` in the
    header's precision, called a strip of ``strip`` scanlines at a time."""

    spec: oiio.ImageSpec
    pixels: Optional[np.ndarray] = None
    rows: Optional[Callable[[int, int], np.ndarray]] = None
    strip: Optional[int] = None


def write_image(path: PathLike, pixels: np.ndarray, spec: oiio.ImageSpec, frame: Optional[int] = None) -> None:
    """Write atomically: no reader (or re-run) ever sees a half-written frame."""
    write_parts(path, [Part(spec, pixels=pixels)], frame)


def write_image_rows(path: PathLike, spec: oiio.ImageSpec, rows: Callable[[int, int], np.ndarray],
                     frame: Optional[int] = None, strip: Optional[int] = None) -> None:
    """Write atomically, a strip of scanlines at a time: ``rows(y0, y1)`` gives rows ``y0..y1`` of
    the data window (0 = its first row) as ``[y1 - y0, width, nchannels]`` in the header's precision.

    The file's bytes are those ``write_image`` writes for the same pixels; the whole image is
    never held in memory, so a caller can build each strip in a small reusable buffer. OIIO
    encodes a strip without holding the GIL.
    """
    write_parts(path, [Part(spec, rows=rows, strip=strip)], frame)


def write_parts(path: PathLike, parts: Sequence[Part], frame: Optional[int] = None) -> None:
    """Write ``parts`` to one file atomically, in order: one part gives a single-part file (the
    bytes ``write_image`` writes), several a multi-part EXR, where every part needs its own name
    (``oiio:subimagename``) and all share the display window. Parts are tiled as their headers
    say when all are tiled or none is; otherwise all are written as scanlines (OpenImageIO
    cannot mix the two in one file)."""
    if not parts:
        raise ValueError("no parts to write")
    specs = [_part_spec(p.spec, len(parts) > 1) for p in parts]
    if len({bool(s.tile_width) for s in specs}) > 1:  # OpenImageIO writes parts of one kind only
        specs = [_scanlines(s) for s in specs]
    names = [part_name(s) for s in specs]
    if len(parts) > 1 and (not all(names) or len(set(names)) != len(names)):
        raise ValueError(f"the parts of a multi-part file need distinct names, got {names}")
    for part, spec in zip(parts, specs):
        if part.pixels is not None:
            pixels = part.pixels[..., None] if part.pixels.ndim == 2 else part.pixels
            if pixels.shape != (spec.height, spec.width, spec.nchannels):
                raise ValueError(f"pixels {pixels.shape} do not match the header "
                                 f"{(spec.height, spec.width, spec.nchannels)}")
        elif part.rows is None:
            raise ValueError("a part needs pixels or rows")

    def write(out: oiio.ImageOutput, tmp: Path) -> bool:
        for i, (part, spec) in enumerate(zip(parts, specs)):
            if i and not out.open(str(tmp), spec, "AppendSubimage"):
                return False
            if not _write_part(out, part, spec):
                return False
        return True

    _write_atomic(path, specs, frame, write)


def _part_spec(spec: oiio.ImageSpec, multipart: bool) -> oiio.ImageSpec:
    """``spec`` without the facts OpenImageIO reported about the file it was read from."""
    if not multipart and not any(spec.getattribute(k) is not None for k in _FILE_FACTS + ("name",)):
        return spec
    spec = oiio.ImageSpec(spec)
    for key in _FILE_FACTS:
        spec.erase_attribute(key)
    name = part_name(spec)
    spec.erase_attribute("name")
    if not multipart:
        spec.erase_attribute("oiio:subimagename")
    elif name:
        spec.attribute("oiio:subimagename", name)
    return spec


def _scanlines(spec: oiio.ImageSpec) -> oiio.ImageSpec:
    if not spec.tile_width:
        return spec
    spec = oiio.ImageSpec(spec)
    spec.tile_width = spec.tile_height = spec.tile_depth = 0
    return spec


def _write_part(out: oiio.ImageOutput, part: Part, spec: oiio.ImageSpec) -> bool:
    if part.pixels is not None:
        pixels = part.pixels[..., None] if part.pixels.ndim == 2 else part.pixels
        if pixels.dtype.kind == "f" and pixels.dtype != np.float64:
            pixels = pixels.astype(_array_dtype(str(spec.format)), copy=False)
        return bool(out.write_image(np.ascontiguousarray(pixels)))
    assert part.rows is not None
    dtype = _array_dtype(str(spec.format))
    height, width, nchannels = spec.height, spec.width, spec.nchannels
    if spec.tile_width:  # a tiled part is written whole
        step = height
    else:
        step = max(1, int(part.strip or strip_rows(spec)))
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        block = part.rows(y0, y1)
        if block.shape != (y1 - y0, width, nchannels) or block.dtype != dtype:
            raise ValueError(f"rows {y0}-{y1}: got {block.shape} {block.dtype}, "
                             f"expected {(y1 - y0, width, nchannels)} {np.dtype(dtype)}")
        block = np.ascontiguousarray(block)
        ok = out.write_image(block) if spec.tile_width else out.write_scanlines(spec.y + y0, spec.y + y1, spec.z, block)
        if not ok:
            return False
    return True


def strip_rows(spec: oiio.ImageSpec, target_bytes: int = 8 << 20) -> int:
    """Scanlines per strip for ``write_image_rows``: about ``target_bytes``, whole 64-line blocks
    (a multiple of every scanline compression's chunk but DWAB's)."""
    row_bytes = max(1, spec.width * spec.nchannels * np.dtype(_array_dtype(str(spec.format))).itemsize)
    return max(64, target_bytes // row_bytes // 64 * 64)


def _write_atomic(path: PathLike, specs: Sequence[oiio.ImageSpec], frame: Optional[int],
                  write: Callable[[oiio.ImageOutput, Path], bool]) -> None:
    """Open a temporary file next to ``path`` (``atomic``'s scheme), let ``write`` fill it, close
    it and rename it over ``path``: a killed write never leaves a half frame."""
    target = Path(path)
    _check_folder(target.parent, frame)
    with atomic_path(target, frame=frame) as tmp:
        out = oiio.ImageOutput.create(str(target))
        if out is None:
            raise FaceGraftError(f"OpenImageIO cannot write this format ({_error()})", path=str(target), frame=frame)
        opened = out.open(str(tmp), specs[0]) if len(specs) == 1 else out.open(str(tmp), tuple(specs))
        if not opened:
            raise FaceGraftError(f"cannot open for writing ({_error(out)})", path=str(target), frame=frame)
        try:
            ok = write(out, tmp)
        finally:
            error = _error(out)
            closed = out.close()
        if not ok or not closed or not tmp.is_file():
            raise FaceGraftError(_write_failure(error or _error(), target.parent), path=str(target), frame=frame)


def _check_folder(folder: Path, frame: Optional[int]) -> None:
    """Create the output folder; refuse one that cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FaceGraftError(f"cannot create the output folder ({exc.strerror})", path=str(folder), frame=frame) from exc
    if not os.access(folder, os.W_OK):
        raise FaceGraftError("the output folder is not writable", path=str(folder), frame=frame,
                             hint="choose another --out or fix the folder's permissions")


def _write_failure(error: str, folder: Path) -> str:
    try:
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    except OSError:
        free = -1
    if 0 <= free < 16 << 20:
        return f"write failed: the disk is full ({error.strip()})"
    return f"write failed ({error.strip() or 'unknown error'})"


def is_complete(path: PathLike) -> bool:
    """True when ``path`` is a whole, readable image (writes are atomic, so the header suffices)."""
    if not os.path.isfile(path):
        return False
    source = oiio.ImageInput.open(str(path))
    if source is None:
        _error()  # clear it: a missing or partial file is an expected answer here
        return False
    source.close()
    return True


def set_attributes(spec: oiio.ImageSpec, attributes: Mapping[str, object]) -> None:
    for key, value in attributes.items():
        spec.attribute(key, value if isinstance(value, (int, float)) else str(value))


def attributes(spec: oiio.ImageSpec, prefix: str = "") -> dict[str, object]:
    """Header attributes (optionally only those starting with ``prefix``)."""
    return {a.name: a.value for a in spec.extra_attribs if a.name.startswith(prefix)}
