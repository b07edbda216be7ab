"""What "done" means for a rendered frame: its file is complete and its stamp matches this render.

A re-run (``facegraft render`` without ``--overwrite``, a farm retry, ``facegraft batch``, the
Nuke node) keeps a frame on disk only when it would render the same thing again. The stamp is
the set of ``facegraft/*`` header attributes that decide a frame's bytes:

* ``format_version``: :data:`facegraft.inference.io.layers.FORMAT_VERSION`, the output layout;
* ``model_hash``: the model's content hash;
* ``occlusion_hash``: the content hash of the occlusion model (``--occlusion FILE``; only with
  one), so a retrained occlusion model renders the frames again;
* ``params``: the render settings that decide pixels (``RenderSettings.params()``), with
  ``layers`` (the FaceGraft layers asked for) and ``compression`` (``plate``: the plate's own);
  an occlusion model's file name in them is not compared (its content hash is);
* ``plate_fingerprint``: what the plate frame is (``image_fingerprint``): for an EXR, a SHA-256
  of its stored pixel data and of the structural attributes of its headers; for another image
  format, of its file; for a video, of the whole file;
* ``holdout_fingerprint``: the same of the holdout frame (only with ``--holdout``);
* ``track_fingerprint``: a digest of the frame's entry in the track file (faces, landmarks,
  transforms, flags, hands), so a re-track re-renders exactly the frames it changed.

Not stamped, because they do not change what a frame is: the device (``facegraft/device``
records it, and the comparison never reads it), ``--batch``, ``--threads``, the FaceGraft
version (``format_version`` stands for it), paths (a plate moved but unchanged is the same
plate, an occlusion model renamed the same model).

Why the plate's pixel data rather than its size and date, or a sample of it: size and
modification time survive a re-ingest or a re-delivery that changes pixels (same resolution,
same compression: often the same size), and a hash of sampled bytes misses a retouch in the
chunks it skips. Why not the whole file: a header-only change (a new ``DateTime``, a software
string, a studio's metadata; the chunk offsets move with the header's size) is the same frame.
So an EXR's fingerprint hashes every chunk as stored (compressed) after the offset tables,
plus each part's ``STRUCTURAL`` attributes (channels, windows, compression, tiling, part name,
type and view). The same pixels written again by another writer (another zlib level) count as
changed: a frame rendered again for nothing, never one kept wrongly. It reads the file once,
as a whole-file hash does, with the GIL released: measured here (2 busy CPU cores, files in the
page cache, best of 30) 16 ms for a 2K half RGBA ZIP frame (11 MB), 30 ms uncompressed (18 MB),
72 ms for a 4K ZIP frame (43 MB), against 235 / 47 / 870 ms to decode them (a whole-file hash:
12 / 26 / 68 ms).
A frame being rendered is hashed on a reader thread; of the frames already on disk, only those
whose other stamps match are hashed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
import threading
from typing import Any, BinaryIO, Callable, Iterable, Mapping, Optional, Protocol

import numpy as np

from facegraft.inference.io import layers
from facegraft.inference.io.frames import FrameSource
from facegraft.inference.render.settings import OCCLUSION_CHOICES, RenderSettings
from facegraft.inference.track.trackfile import ShotTrack

# Why a frame on disk is rendered again, in the order they are checked.
INCOMPLETE = "incomplete"
FORMAT_CHANGED = "format changed"
MODEL_CHANGED = "model changed"
OCCLUSION_CHANGED = "occlusion model changed"
SETTINGS_CHANGED = "settings changed"
TRACK_CHANGED = "track changed"
PLATE_CHANGED = "plate changed"
HOLDOUT_CHANGED = "holdout changed"
REASONS = (INCOMPLETE, FORMAT_CHANGED, MODEL_CHANGED, OCCLUSION_CHANGED, SETTINGS_CHANGED, TRACK_CHANGED, PLATE_CHANGED,
           HOLDOUT_CHANGED)

# The per-frame stamp attributes (written as ``facegraft/KEY`` through the job's note).
PLATE_KEY, HOLDOUT_KEY, TRACK_KEY = "plate_fingerprint", "holdout_fingerprint", "track_fingerprint"
OCCLUSION_KEY = "occlusion_hash"
MISSING = "missing"  # the fingerprint of a file that is not there
FILE_PREFIX, PIXELS_PREFIX = "sha256:", "pixels-sha256:"
_CHUNK = 1 << 20
# The header attributes of an EXR part that decide what its pixels are and where they sit; every
# other attribute (dates, software, comments, a studio's metadata) is left out of the fingerprint.
STRUCTURAL = ("channels", "compression", "dataWindow", "displayWindow", "lineOrder", "pixelAspectRatio",
              "screenWindowCenter", "screenWindowWidth", "tiles", "name", "type", "view", "multiView", "chunkCount")
_EXR_MAGIC = 20000630
_TILED, _DEEP, _MULTIPART = 0x200, 0x800, 0x1000
# scanlines per chunk of each OpenEXR compression (by its code in the header)
_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256, 10: 256, 11: 32}


def file_fingerprint(path: str) -> str:
    """``sha256:HEX`` of the file's bytes, or ``missing``."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)
    except FileNotFoundError:
        return MISSING
    except OSError as exc:  # unreadable: the hash of the failure, so a later fix counts as a change
        return f"unreadable:{exc.errno}"
    return FILE_PREFIX + digest.hexdigest()


def image_fingerprint(path: str) -> str:
    """What a plate (or holdout) frame is, for the stamp: for an EXR, ``pixels-sha256:HEX`` of its
    stored pixel data (every chunk, as compressed) and the structural attributes of every part's
    header (``STRUCTURAL``), so a header-only change (a date, a software string, the offsets that
    move with it) is the same frame; for any other file (or an EXR this cannot take apart: deep,
    incomplete offsets, an unknown compression), ``file_fingerprint``.

    It reads the file once, as ``file_fingerprint`` does: the same cost (see the module docstring).
    """
    try:
        with open(path, "rb") as handle:
            head, layout = _exr_layout(handle)
            if layout is None:
                digest, prefix = hashlib.sha256(head), FILE_PREFIX
            else:
                structure, data_start = layout
                digest, prefix = hashlib.sha256(structure), PIXELS_PREFIX
                digest.update(memoryview(head)[data_start:])
            for block in iter(lambda: handle.read(_CHUNK), b""):  # the rest, from where ``head`` ends
                digest.update(block)
    except FileNotFoundError:
        return MISSING
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    return prefix + digest.hexdigest()


class _Short(Exception):
    """The bytes read so far end inside the headers."""


def _exr_layout(handle: BinaryIO) -> tuple[bytes, Optional[tuple[bytes, int]]]:
    """The first bytes of the file (read from the start, the handle left where they end) and, for
    an EXR file this can take apart (see ``image_fingerprint``), the structural attributes of every
    part as bytes and where the chunk data starts in the file; None otherwise."""
    size = os.fstat(handle.fileno()).st_size
    head = handle.read(_CHUNK)
    while True:
        try:
            return head, _parse_layout(head, size)
        except _Short:
            more = handle.read(len(head) * 3)  # headers larger than a MiB: rare, read on
            if not more:  # the whole file is read: it is cut short
                return head, None
            head += more
        except (struct.error, ValueError, KeyError, IndexError):
            return head, None


def _parse_layout(head: bytes, size: int) -> Optional[tuple[bytes, int]]:
    if len(head) < 8:
        raise _Short
    magic, version = struct.unpack_from("<iI", head, 0)
    if magic != _EXR_MAGIC or version & _DEEP:
        return None
    multipart = bool(version & _MULTIPART)
    parts: list[dict[str, tuple[bytes, bytes]]] = []
    at = 8
    while True:
        attrs, at = _parse_header(head, at)
        if not attrs:  # the empty header that ends a multi-part file's list
            break
        parts.append(attrs)
        if not multipart:
            break
    if not parts:
        return None
    table = at
    at += 8 * sum(_chunk_count(a, bool(version & _TILED), multipart) for a in parts)
    if not table < at < size:  # a damaged count: no table fits the file
        return None
    if at > len(head):
        raise _Short
    offsets = struct.unpack_from(f"<{(at - table) // 8}Q", head, table)
    # OpenEXR writes the chunks right after the tables: anything else (offsets not filled in by an
    # unfinished write, a count this got wrong) is left to the whole-file hash
    if not offsets or min(offsets) != at or max(offsets) >= size:
        return None
    structure = bytearray(b"facegraft exr pixels 1\0")
    structure += struct.pack("<I", version & 0xFF)
    for index, attrs in enumerate(parts):
        structure += struct.pack("<I", index)
        for name in STRUCTURAL:
            if name in attrs:
                kind, value = attrs[name]
                structure += name.encode() + b"\0" + kind + b"\0" + struct.pack("<I", len(value)) + value
    return bytes(structure), at


def _parse_header(head: bytes, at: int) -> tuple[dict[str, tuple[bytes, bytes]], int]:
    """The attributes of the header starting at ``at`` (name -> (type, value bytes)) and where it ends."""
    attrs: dict[str, tuple[bytes, bytes]] = {}
    while True:
        end = head.find(b"\0", at)
        if end < 0:
            raise _Short
        name = head[at:end].decode("latin-1")
        at = end + 1
        if not name:
            return attrs, at
        end = head.find(b"\0", at)
        if end < 0 or end + 5 > len(head):
            raise _Short
        kind = head[at:end]
        (length,) = struct.unpack_from("<i", head, end + 1)
        at = end + 5
        if length < 0 or length > 1 << 28:
            raise ValueError("not an attribute")
        if at + length > len(head):
            raise _Short
        attrs[name] = (kind, head[at:at + length])
        at += length


def _chunk_count(attrs: Mapping[str, tuple[bytes, bytes]], tiled_file: bool, multipart: bool) -> int:
    """The entries of a part's offset table (``chunkCount``, mandatory in a multi-part file, else
    computed from the data window and the compression or the tiling, as OpenEXR does)."""
    if "chunkCount" in attrs:
        return int(struct.unpack("<i", attrs["chunkCount"][1][:4])[0])
    if multipart:
        raise ValueError("a multi-part file without chunkCount")
    x0, y0, x1, y1 = struct.unpack("<4i", attrs["dataWindow"][1][:16])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    if not tiled_file:
        return -(-height // _LINES[attrs["compression"][1][0]])
    tile_x, tile_y, mode = struct.unpack("<IIB", attrs["tiles"][1][:9])
    level_mode, round_up = mode & 0xF, bool(mode >> 4)

    def levels(n: int) -> int:
        return ((n - 1).bit_length() if round_up else n.bit_length() - 1) + 1

    def tiles(n: int, level: int, tile: int) -> int:
        side = max((n + (1 << level) - 1) >> level if round_up else n >> level, 1)
        return -(-side // tile)

    if level_mode == 0:
        return tiles(width, 0, tile_x) * tiles(height, 0, tile_y)
    if level_mode == 1:
        return sum(tiles(width, lv, tile_x) * tiles(height, lv, tile_y) for lv in range(levels(max(width, height))))
    if level_mode == 2:
        return sum(tiles(width, lx, tile_x) for lx in range(levels(width))) * sum(
            tiles(height, ly, tile_y) for ly in range(levels(height)))
    raise ValueError("unknown level mode")


def _canonical(value: Any) -> Any:
    """``value`` as plain JSON, numbers rounded (1e-4 px), whatever fields the track records."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return np.round(np.asarray(value, np.float64), 4).tolist()
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def track_fingerprint(track: ShotTrack, frame: int, face: Optional[int] = None) -> str:
    """A digest of what the track file says about ``frame`` (and which face is replaced)."""
    record = track.frames.get(frame)
    body = {"face": track.target if face is None else face, "frame": _canonical(record)}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _params_json(params: Mapping[str, Any]) -> Any:
    """``params`` as read back from the header (so ``4`` and ``4.0``, tuples and lists compare equal)."""
    return json.loads(json.dumps(dict(params), sort_keys=True, default=str))


def stamped_params(settings: RenderSettings) -> dict[str, Any]:
    """``facegraft/params`` as this render must find it in a frame it keeps (``comparable``)."""
    return comparable(settings.params())


def comparable(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as the stamp compares them: an occlusion model's file name (``params`` records
    it for the reader) stands as ``model``; its content is compared by ``OCCLUSION_KEY``."""
    out = dict(params)
    if out.get("occlusion") not in (None, *OCCLUSION_CHOICES):
        out["occlusion"] = "model"
    return out


def output_settings(settings: RenderSettings) -> dict[str, str]:
    """The stamp of the file-level settings: which layers, which compression."""
    return {"layers": ",".join(settings.groups) or "none", "compression": settings.compression or "plate"}


def read_stamp(path: str) -> Optional[dict[str, object]]:
    """The ``facegraft/*`` attributes of every part of ``path`` (first part first), or None when
    the file cannot be opened (missing, partial, not an image)."""
    import OpenImageIO as oiio

    if not os.path.isfile(path):
        return None
    source = oiio.ImageInput.open(path)
    if source is None:
        oiio.geterror()  # clear it: a partial file is an expected answer here
        return None
    found: dict[str, object] = {}
    try:
        subimage = 0
        while True:
            for attr in source.spec().extra_attribs:
                if attr.name.startswith(layers.PREFIX):
                    found.setdefault(attr.name[len(layers.PREFIX):], attr.value)
            subimage += 1
            if not source.seek_subimage(subimage, 0):
                break
    finally:
        source.close()
        oiio.geterror()
    return found


class FrameStamp(Protocol):
    """What the scheduler needs of a stamp (``RenderStamp``)."""

    def frame_attributes(self, frame: int) -> dict[str, str]: ...

    def check(self, path: str, frame: int) -> Optional[str]: ...


class RenderStamp:
    """The stamp of one render: what each frame it writes carries, and whether a frame on disk
    already is what it would write (``check``)."""

    def __init__(self, model_hash: str, settings: RenderSettings, source: FrameSource, track: ShotTrack,
                 holdout_path: Optional[Callable[[int], str]] = None, occlusion_hash: Optional[str] = None) -> None:
        self.model_hash = model_hash
        self.occlusion_hash = occlusion_hash  # the occlusion model's content hash (None: auto or none)
        self.settings = settings
        self.params = _params_json(stamped_params(settings))
        self.output = output_settings(settings)
        self.source = source
        self.track = track
        self.holdout_path = holdout_path
        self._video: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- what a frame carries -------------------------------------------------------------------
    def plate_fingerprint(self, frame: int) -> str:
        path = getattr(self.source, "path", None)
        if callable(path):  # an image sequence: the frame's own file
            return image_fingerprint(path(frame))
        name = str(getattr(self.source, "name", ""))
        with self._lock:  # a video: the whole file, hashed once
            if name not in self._video:
                self._video[name] = file_fingerprint(name) if name else MISSING
            return self._video[name]

    def frame_attributes(self, frame: int) -> dict[str, str]:
        """The per-frame stamp attributes (``facegraft/KEY``) and the output settings."""
        attrs = {**self.output, PLATE_KEY: self.plate_fingerprint(frame),
                 TRACK_KEY: track_fingerprint(self.track, frame, self.settings.face)}
        if self.holdout_path is not None:
            attrs[HOLDOUT_KEY] = image_fingerprint(self.holdout_path(frame))
        if self.occlusion_hash is not None:
            attrs[OCCLUSION_KEY] = self.occlusion_hash
        return attrs

    # -- whether a frame on disk is done --------------------------------------------------------
    def check(self, path: str, frame: int) -> Optional[str]:
        """None when ``path`` is complete and stamped as this render would stamp ``frame``; else
        the reason (one of ``REASONS``) it must be rendered again."""
        found = read_stamp(path)
        if found is None:
            return INCOMPLETE
        return self.compare(found, frame)

    def compare(self, found: Mapping[str, object], frame: int) -> Optional[str]:
        """The first part of the stamp ``found`` (a frame's ``facegraft/*`` attributes, without
        the prefix) that differs from this render's, as a reason; None when none does. The
        fingerprints are computed last, and only when everything else matches."""
        if str(found.get("format_version", "")) != str(layers.FORMAT_VERSION):
            return FORMAT_CHANGED
        if str(found.get("model_hash", "")) != self.model_hash:
            return MODEL_CHANGED
        if str(found.get(OCCLUSION_KEY, "")) != (self.occlusion_hash or ""):
            return OCCLUSION_CHANGED
        try:
            params = json.loads(str(found.get("params", "")))
        except ValueError:
            params = None
        if isinstance(params, dict):
            params = comparable(params)
        if params != self.params or any(str(found.get(k, "")) != v for k, v in self.output.items()):
            return SETTINGS_CHANGED
        if str(found.get(TRACK_KEY, "")) != track_fingerprint(self.track, frame, self.settings.face):
            return TRACK_CHANGED
        if str(found.get(PLATE_KEY, "")) != self.plate_fingerprint(frame):
            return PLATE_CHANGED
        if self.holdout_path is not None and str(found.get(HOLDOUT_KEY, "")) != image_fingerprint(self.holdout_path(frame)):
            return HOLDOUT_CHANGED
        return None


def summarise(reasons: Mapping[int, str]) -> dict[str, list[int]]:
    """Frames by reason, in ``REASONS`` order."""
    out: dict[str, list[int]] = {}
    for reason in REASONS:
        frames = sorted(f for f, r in reasons.items() if r == reason)
        if frames:
            out[reason] = frames
    return out


def describe(reasons: Mapping[int, str], counts_only: bool = False) -> str:
    """``3 model changed, 1 plate changed`` (or with the frames: ``model changed: 1001-1003``)."""
    from facegraft.inference.io.sequence import format_frames

    parts = []
    for reason, frames in summarise(reasons).items():
        parts.append(f"{len(frames)} {reason}" if counts_only else f"{reason}: {format_frames(frames)}")
    return ", ".join(parts)


def stale_frames(stamp: FrameStamp, path: Callable[[int], str], frames: Iterable[int], *, workers: int = 2,
                 first_only: bool = False) -> tuple[list[int], dict[int, str]]:
    """Of ``frames`` whose output file exists: those done (kept) and those to render again with
    the reason. Files are checked on ``workers`` threads (hashing releases the GIL);
    ``first_only`` stops at the first stale frame (enough to know a shot is not done)."""
    from concurrent.futures import ThreadPoolExecutor

    present = [f for f in frames if os.path.lexists(path(f))]
    done: list[int] = []
    stale: dict[int, str] = {}
    if first_only:
        for frame in present:
            reason = stamp.check(path(frame), frame)
            if reason is not None:
                return done, {frame: reason}
            done.append(frame)
        return done, stale
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="facegraft-stamp") as pool:
        results = list(pool.map(lambda f: stamp.check(path(f), f), present))
    for frame, reason in zip(present, results):
        if reason is None:
            done.append(frame)
        else:
            stale[frame] = reason
    return done, stale
