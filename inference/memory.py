"""Frame-sized buffers reused by the process instead of handed back to the system every frame.

A render or a track allocates and frees the same large arrays every frame (a UHD half RGBA frame
is 66 MB; decoded plates, strips, the face's layers). glibc serves blocks over its mmap threshold
(at most 32 MB by default) with fresh pages from the system and returns them on free, so every
frame pays the kernel to zero and map the same memory again: on two cores about 0.1 s of CPU a
UHD frame, a tenth of the EXR encoding's cost (``bench/RESULTS.md``). ``reuse_freed_memory``
raises the threshold and the heap's trim threshold, so freed blocks stay in the process and the
next frame reuses them. The price is that the process keeps its peak memory until it exits, which
a render or tracking process does anyway.

Only glibc has these knobs (Linux render nodes); elsewhere nothing changes and nothing is lost
but that speed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Optional

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 1 << 30  # blocks under 1 GiB come from the heap: every frame-sized buffer
TRIM_THRESHOLD = (1 << 31) - 1  # free memory at the heap's top is kept up to 2 GiB

_lock = threading.Lock()
_done: Optional[bool] = None


def reuse_freed_memory() -> bool:
    """Keep freed frame-sized buffers in the process for reuse (glibc's ``mallopt``); True when it
    took effect (once per process; later calls return the first answer)."""
    global _done
    with _lock:
        if _done is None:
            _done = _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        return _done


def _mallopt(parameter: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl without it, Windows)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(parameter, value))
