"""What a shot render did: frames by outcome, errors, and seconds per stage."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from facegraft.inference.io.sequence import format_frames
from facegraft.inference.render.stamp import summarise

STAGES = ("read", "crop", "model", "paste", "write", "wall")


@dataclass
class Timings:
    """Seconds spent per stage (summed over threads) and the wall time of the render."""

    read: float = 0.0
    crop: float = 0.0
    model: float = 0.0
    paste: float = 0.0
    write: float = 0.0
    wall: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            setattr(self, stage, getattr(self, stage) + seconds)

    def as_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 3) for k in STAGES}


@dataclass
class RenderReport:
    rendered: list[int] = field(default_factory=list)
    no_face: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # failed frames with --on-error skip (no file written)
    existing: list[int] = field(default_factory=list)  # already complete and up to date, not rendered again
    stale: dict[int, str] = field(default_factory=dict)  # on disk but out of date: rendered again (frame -> reason)
    errors: dict[int, str] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)

    @property
    def written(self) -> int:
        return len(self.rendered) + len(self.no_face) + len(self.held)


def report_json(report: RenderReport) -> dict[str, Any]:
    """The report as the ``result`` event of ``facegraft render --json-progress`` carries it."""
    return {
        "rendered": format_frames(report.rendered), "no_face": format_frames(report.no_face),
        "held": format_frames(report.held), "skipped": format_frames(report.skipped),
        "existing": format_frames(report.existing),
        "rerendered": format_frames(report.stale), "rerendered_count": len(report.stale),
        "rerendered_why": {reason: format_frames(frames) for reason, frames in summarise(report.stale).items()},
        "timings": report.timings.as_dict(),
        "errors": {str(k): v for k, v in sorted(report.errors.items())},
    }
