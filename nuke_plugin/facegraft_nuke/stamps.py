"""What a node's plate and track were made from, so Render re-runs exactly what changed.

A stamp is a small JSON file in the node's cache folder. The track's holds the tracking settings
and a fingerprint of the plate frames: for a plate the node cached itself (Nuke writes it again on
every Render, so its dates say nothing) the pixels as stored and the header's structure (channels,
windows, compression) -- not its metadata, which may hold the time of writing; for a plate read
straight from disk, the files' names, sizes and modification times. A changed stamp means: track again. The render always runs
without ``--overwrite``: FaceGraft's own resume renders again exactly the frames whose model,
settings, plate file or track entry changed. For that the node's cache Writes write into
``incoming/`` and :func:`promote` moves a frame up only when its pixels changed, so an unchanged
frame keeps its file (and its fingerprint) however often Nuke writes it.
"""
import hashlib
import json
import os
from typing import Any, Dict, List, Optional

from . import paths

CHUNK = 1 << 20
EXR_MAGIC = b"\x76\x2f\x31\x01"
# Header attributes that change what the pixels are; the rest (dates, hashes, camera data) does not.
EXR_STRUCTURE = {b"channels", b"compression", b"dataWindow", b"displayWindow", b"lineOrder", b"pixelAspectRatio",
                 b"screenWindowCenter", b"screenWindowWidth", b"tiles", b"type", b"name", b"view", b"chunkCount"}


def exr_content(data: bytes) -> bytes:
    """A single-part EXR's structural header attributes and its chunks (pixels as stored), or all of it
    for anything else (another format, a multi-part or deep file, a header this reader does not follow)."""
    if data[:4] != EXR_MAGIC or data[5] & 0x18:  # multi-part or deep
        return data
    found, pos = [], 8
    try:
        while data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            size = int.from_bytes(data[type_end + 1:type_end + 5], "little")
            if data[pos:name_end] in EXR_STRUCTURE:
                found.append(data[pos:type_end + 5 + size])
            pos = type_end + 5 + size
        pos += 1
        offsets: List[int] = []  # the offset table runs up to the first chunk it points at
        while pos < min(offsets, default=len(data)):
            offsets.append(int.from_bytes(data[pos:pos + 8], "little"))
            pos += 8
    except (IndexError, ValueError):
        return data
    if not offsets or pos != min(offsets) or pos > len(data):
        return data
    return b"".join(found) + data[pos:]


def plate_fingerprint(pattern: str, first: int, last: int, contents: bool) -> str:
    """A hash of the plate's frames (their bytes, or their name, size and modification time)."""
    digest = hashlib.sha1()
    for frame in range(first, last + 1):
        path = paths.frame_path(pattern, frame)
        digest.update(f"{frame}\0".encode())
        try:
            if contents:
                with open(path, "rb") as handle:
                    digest.update(exr_content(handle.read()))
            else:
                found = os.stat(path)
                digest.update(f"{os.path.basename(path)} {found.st_size} {found.st_mtime_ns}".encode())
        except OSError:
            digest.update(b"missing")
    return digest.hexdigest()


def promote(staged: str, final: str, first: int, last: int) -> List[int]:
    """Move each frame written to ``staged`` over ``final`` when its pixels differ; drop it otherwise.
    The frames that changed."""
    changed = []
    for frame in range(first, last + 1):
        source, target = paths.frame_path(staged, frame), paths.frame_path(final, frame)
        if not os.path.isfile(source):
            continue
        same = False
        if os.path.isfile(target):
            with open(source, "rb") as new, open(target, "rb") as old:
                same = exr_content(new.read()) == exr_content(old.read())
        if same:
            os.remove(source)
        else:
            os.replace(source, target)
            changed.append(frame)
    return changed


def read(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def write(path: str, stamp: Dict[str, Any]) -> None:
    """Write atomically (a temporary file beside it, then a rename), like every FaceGraft file."""
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):
        os.makedirs(folder)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(stamp, handle, indent=1, sort_keys=True)
    os.replace(temporary, path)


def remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
