"""EXR reading and writing through OpenImageIO.

Pixels are kept over the **data window** in their stored precision (half stays float16),
so a pixel that FaceGraft does not touch is written back bit for bit, NaN and Inf included.
The plate's header (windows, pixel aspect, every attribute) travels with the pixels in an
``oiio.ImageSpec``. Writes are atomic (``atomic``): a temporary file in the target folder, then a rename.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import OpenImageIO as oiio

from facegraft.inference.atomic import atomic_path
from facegraft.inference.errors import BadFrameError, FaceGraftError

PathLike = Union[str, Path]
_thread_config = threading.Lock()


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
    """Pixels over the data window (``[H, W, C]``) plus the full header."""

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
        return self.get(("R", "G", "B"))


def _storage_dtype(spec: oiio.ImageSpec) -> type:
    """The array precision pixels are read in: half when every channel is half, else float32."""
    return np.float16 if all(d == np.float16 for d in channel_dtypes(spec)) else np.float32


def read_image(path: PathLike, frame: Optional[int] = None) -> Image:
    """Read the first subimage of ``path``; a BadFrameError names the file and frame on failure."""
    name = str(path)
    if not os.path.isfile(name):
        raise BadFrameError("file not found", path=name, frame=frame)
    source = oiio.ImageInput.open(name)
    if source is None:
        raise BadFrameError(
            f"not a readable image ({oiio.geterror().strip() or 'unknown format'})", path=name, frame=frame,
            hint="re-render or replace this frame; --on-error skip|hold renders around it",
        )
    try:
        spec = source.spec()
        if spec.deep:
            raise BadFrameError("deep images are not supported", path=name, frame=frame,
                                hint="flatten the plate (DeepToImage) before FaceGraft")
        dtype = _storage_dtype(spec)
        pixels = source.read_image(0, 0, 0, spec.nchannels, _type_name(dtype))
        if pixels is None:
            raise BadFrameError(
                f"the file is truncated or corrupt ({source.geterror().strip() or 'read failed'})",
                path=name, frame=frame, hint="re-render or replace this frame; --on-error skip|hold renders around it",
            )
        spec_copy = oiio.ImageSpec(spec)
    finally:
        source.close()
    pixels = np.asarray(pixels).reshape(spec.height, spec.width, spec.nchannels)
    return Image(pixels=pixels, spec=spec_copy, path=name)


def read_header(path: PathLike) -> oiio.ImageSpec:
    """The header of ``path`` without its pixels."""
    source = oiio.ImageInput.open(str(path))
    if source is None:
        raise BadFrameError(f"not a readable image ({oiio.geterror().strip()})", path=str(path))
    try:
        return oiio.ImageSpec(source.spec())
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
    for key in ("oiio:subimages", "oiio:ColorSpace", "oiio:BitsPerSample"):
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


def write_image(path: PathLike, pixels: np.ndarray, spec: oiio.ImageSpec, frame: Optional[int] = None) -> None:
    """Write atomically: no reader (or re-run) ever sees a half-written frame."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape != (spec.height, spec.width, spec.nchannels):
        raise ValueError(f"pixels {pixels.shape} do not match the header {(spec.height, spec.width, spec.nchannels)}")
    dtype = _array_dtype(str(spec.format))
    _write_atomic(path, spec, frame, lambda out: bool(out.write_image(np.ascontiguousarray(pixels, dtype=dtype))))


def write_image_rows(path: PathLike, spec: oiio.ImageSpec, rows: Callable[[int, int], np.ndarray],
                     frame: Optional[int] = None, strip: Optional[int] = None) -> None:
    """Write atomically, a strip of scanlines at a time: ``rows(y0, y1)`` gives rows ``y0..y1`` of
    the data window (0 = its first row) as ``[y1 - y0, width, nchannels]`` in the header's precision.

    The file's bytes are those ``write_image`` writes for the same pixels; the whole image is
    never held in memory, so a caller can build each strip in a small reusable buffer. OIIO
    encodes a strip without holding the GIL.
    """
    dtype = _array_dtype(str(spec.format))
    height, width, nchannels = spec.height, spec.width, spec.nchannels
    step = max(1, int(strip or strip_rows(spec)))

    def write(out: oiio.ImageOutput) -> bool:
        for y0 in range(0, height, step):
            y1 = min(height, y0 + step)
            block = rows(y0, y1)
            if block.shape != (y1 - y0, width, nchannels) or block.dtype != dtype:
                raise ValueError(f"rows {y0}-{y1}: got {block.shape} {block.dtype}, "
                                 f"expected {(y1 - y0, width, nchannels)} {np.dtype(dtype)}")
            if not out.write_scanlines(spec.y + y0, spec.y + y1, spec.z, np.ascontiguousarray(block)):
                return False
        return True

    _write_atomic(path, spec, frame, write)


def strip_rows(spec: oiio.ImageSpec, target_bytes: int = 8 << 20) -> int:
    """Scanlines per strip for ``write_image_rows``: about ``target_bytes``, whole 64-line blocks
    (a multiple of every scanline compression's chunk but DWAB's)."""
    row_bytes = max(1, spec.width * spec.nchannels * np.dtype(_array_dtype(str(spec.format))).itemsize)
    return max(64, target_bytes // row_bytes // 64 * 64)


def _write_atomic(path: PathLike, spec: oiio.ImageSpec, frame: Optional[int],
                  write: Callable[[oiio.ImageOutput], bool]) -> None:
    """Open a temporary file next to ``path`` (``atomic``'s scheme), let ``write`` fill it, close
    it and rename it over ``path``: a killed write never leaves a half frame."""
    target = Path(path)
    _check_folder(target.parent, frame)
    with atomic_path(target, frame=frame) as tmp:
        out = oiio.ImageOutput.create(str(target))
        if out is None:
            raise FaceGraftError(f"OpenImageIO cannot write this format ({oiio.geterror()})", path=str(target), frame=frame)
        if not out.open(str(tmp), spec):
            raise FaceGraftError(f"cannot open for writing ({out.geterror()})", path=str(target), frame=frame)
        try:
            ok = write(out)
        finally:
            error = out.geterror()
            closed = out.close()
        if not ok or not closed or not tmp.is_file():
            raise FaceGraftError(_write_failure(error or oiio.geterror(), target.parent), path=str(target), frame=frame)


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
        oiio.geterror()  # clear it: a missing or partial file is an expected answer here
        return False
    source.close()
    return True


def set_attributes(spec: oiio.ImageSpec, attributes: Mapping[str, object]) -> None:
    for key, value in attributes.items():
        spec.attribute(key, value if isinstance(value, (int, float)) else str(value))


def attributes(spec: oiio.ImageSpec, prefix: str = "") -> dict[str, object]:
    """Header attributes (optionally only those starting with ``prefix``)."""
    return {a.name: a.value for a in spec.extra_attribs if a.name.startswith(prefix)}
