"""Atomic file writes: a temporary file in the target folder, then a rename.

A reader (or a re-run) never sees a half-written file. The temporary name carries the process
and thread ids, so two processes or threads writing the same target never share one, and keeps
the target's extension, so writers that pick a format by it (OpenImageIO) write the temporary
file as they would the target; it is removed on any error. OS errors (a full disk, a read-only
folder) become a FaceGraftError naming the file. Every writer uses this scheme, EXR frames
(``io.exr``) included; ``stale_temps`` finds what a killed process left.
"""
from __future__ import annotations

import errno
import glob
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

from facegraft.inference.errors import FaceGraftError

PathLike = Union[str, Path]
HINT = "check the folder is writable and the disk has space"


def temp_name(target: Path) -> Path:
    """The temporary file for ``target``: hidden, in the same folder, unique per process and
    thread, with the target's extension: ``.NAME.PID.THREAD.tmp.EXT``."""
    return target.with_name(f".{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp{target.suffix}")


def stale_temps(target: PathLike) -> list[Path]:
    """Temporary files of ``target`` left by writers that were killed (any process or thread)."""
    target = Path(target)
    name = re.compile(rf"\.{re.escape(target.stem)}\.\d+\.\d+\.tmp{re.escape(target.suffix)}")
    found = glob.glob(glob.escape(str(target.parent)) + os.sep + f".{glob.escape(target.stem)}.*.tmp*")
    return sorted(Path(p) for p in found if name.fullmatch(Path(p).name))


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return exc.strerror or str(exc)


@contextmanager
def atomic_path(path: PathLike, hint: Optional[str] = HINT, frame: Optional[int] = None) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it replaces ``path``, on any error it is
    removed. Creates the folder. ``OSError`` becomes a FaceGraftError naming ``path`` (and ``frame``)."""
    target = Path(path)
    tmp = temp_name(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        raise FaceGraftError(f"write failed: {_reason(exc)}", path=str(target), frame=frame, hint=hint) from exc
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def atomic_write_bytes(path: PathLike, data: bytes, hint: Optional[str] = HINT) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a Path."""
    with atomic_path(path, hint) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, hint: Optional[str] = HINT) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path`` as a Path."""
    return atomic_write_bytes(path, text.encode("utf-8"), hint)
