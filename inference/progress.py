"""Progress reporting: a bar for people, JSON lines for programs (Nuke, the farm).

With ``json_lines=True`` each event is one JSON object on stdout, for example::

    {"event": "start", "stage": "render", "total": 100}
    {"event": "progress", "stage": "render", "done": 3, "total": 100, "frame": 1003}
    {"event": "warning", "stage": "render", "message": "...", "frame": 1004}
    {"event": "done", "stage": "render", "done": 100, "total": 100, "seconds": 12.5}
    {"event": "error", "message": "...", "file": "...", "frame": 1005, "hint": "..."}
    {"event": "info", "message": "..."}
    {"event": "result", ...}   # the command's summary: track gives tracks, target and no-face
                               # frames; render gives rendered, no_face, held, skipped, existing,
                               # timings and errors

One ``progress`` event can cover several frames (render counts frames already on disk in one
step), so readers should use ``done`` rather than count events.

Human-readable text then goes to stderr so stdout stays machine-readable.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Optional, TextIO

from tqdm import tqdm


def emit(event: str, stream: Optional[TextIO] = None, **fields: Any) -> None:
    """Write one JSON-lines event (flushed at once so a reader sees it live)."""
    out = stream or sys.stdout
    out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    out.flush()


class Progress:
    """Counts units of work for one stage; thread-safe."""

    def __init__(self, stage: str, total: int, *, json_lines: bool = False, unit: str = "frame") -> None:
        self.stage = stage
        self.total = total
        self.json_lines = json_lines
        self.done = 0
        self._lock = threading.Lock()
        self._start = time.perf_counter()
        self._bar: Optional[tqdm] = None
        if json_lines:
            emit("start", stage=stage, total=total)
        else:
            self._bar = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1, **info: Any) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                if info:
                    self._bar.set_postfix({k: v for k, v in info.items() if k != "frame"}, refresh=False)
                self._bar.update(n)
            else:
                emit("progress", stage=self.stage, done=self.done, total=self.total, **info)

    def warn(self, message: str, **info: Any) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.write(f"warning: {message}", file=sys.stderr)
            else:
                emit("warning", stage=self.stage, message=message, **info)

    def close(self) -> None:
        seconds = round(time.perf_counter() - self._start, 3)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.json_lines:
            emit("done", stage=self.stage, done=self.done, total=self.total, seconds=seconds)
            self.json_lines = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def say(message: str, json_lines: bool = False) -> None:
    """A line for the user: stderr, or an ``info`` event in JSON-lines mode."""
    if json_lines:
        emit("info", message=message)
    else:
        print(message, file=sys.stderr)
