"""Frame ranges and chunks: the one chunking rule every engine shares.

A chunk is ``size`` consecutive frames of the frame set, in order; the last chunk holds
what is left. Cuebot (``range`` + ``chunk``) and Deadline (``Frames`` + ``ChunkSize``) cut a
frame list the same way, so the chunks written into an OpenCue or Deadline job are exactly
the ones listed in an Open Job Description template.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import fileseq

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.sequence import format_frames, parse_frames

RANGE_HINT = "write it like 1001-1240, 1001-1240x2 or 1001-1100,1150-1240"


def parse_range(spec: str) -> list[int]:
    """A frame range for a job, sorted: not empty, and no frame listed twice.

    Each comma-separated part is read by :func:`facegraft.inference.io.sequence.parse_frames`.
    ``1001-1010,1005-1020`` is refused rather than merged: an overlap in a hand-written
    range is usually a typo, and on a farm it would render the same frames twice.
    """
    text = str(spec).replace(" ", "")
    if not text:
        raise FaceGraftError("the frame range is empty", hint=RANGE_HINT)
    parts: list[tuple[str, set[int]]] = []
    for part in text.split(","):
        if not part:
            raise FaceGraftError(f"the frame range '{spec}' has an empty part", hint=RANGE_HINT)
        try:
            frames = parse_frames(part)
        except FaceGraftError as exc:
            if exc.__cause__ is None:  # read, but no frame in it
                raise FaceGraftError(f"the frame range '{part}' in '{spec}' holds no frame", hint=RANGE_HINT) from None
            raise FaceGraftError(f"'{spec}' is not a frame range ('{part}' cannot be read)", hint=RANGE_HINT) from exc
        parts.append((part, set(frames)))
    for i, (part_a, frames_a) in enumerate(parts):
        for part_b, frames_b in parts[i + 1:]:
            both = frames_a & frames_b
            if both:
                raise FaceGraftError(
                    f"the frame ranges '{part_a}' and '{part_b}' overlap (frames {format_frames(both)})",
                    hint="list each frame once: " + RANGE_HINT,
                )
    return sorted(f for _, frames in parts for f in frames)


def chunk_frames(frames: Iterable[int], size: int) -> list[fileseq.FrameSet]:
    """Split ``frames`` into chunks of ``size`` consecutive frames of the set, in order."""
    if int(size) < 1:
        raise FaceGraftError(f"the chunk size must be 1 or more, not {size}", hint="pass --chunk 10 for ten frames a task")
    values = sorted(set(int(f) for f in frames))
    if not values:
        raise FaceGraftError("the frame range is empty", hint=RANGE_HINT)
    return [fileseq.FrameSet(values[i:i + size]) for i in range(0, len(values), size)]


def uniform_step(frames: Sequence[int]) -> Optional[int]:
    """The step when ``frames`` are ``first-last x step`` (1 for a plain range), else None."""
    values = sorted(set(int(f) for f in frames))
    if len(values) < 2:
        return 1
    step = values[1] - values[0]
    if all(b - a == step for a, b in zip(values, values[1:])):
        return step
    return None
