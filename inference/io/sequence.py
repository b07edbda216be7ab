"""Image sequences and frame ranges (fileseq, Nuke-style padding: one ``#`` per digit).

Patterns: ``plate.####.exr``, ``plate.%04d.exr``, ``plate.@@@@.exr``.
Ranges: ``1001-1100``, ``1001-1100x2``, ``1001,1005,1010-1020``.
Missing frames are reported by number, never skipped silently.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

import fileseq

from facegraft.inference.errors import FaceGraftError

_TOKEN = re.compile(r"#+|@+|%0?(\d*)d")


@dataclass(frozen=True)
class SequencePattern:
    """A frame-numbered file path pattern, e.g. ``plates/sh010.####.exr``."""

    pattern: str

    def __post_init__(self) -> None:
        name = os.path.basename(self.pattern)
        if len(_TOKEN.findall(name)) != 1:
            raise FaceGraftError(
                "not an image sequence pattern",
                path=self.pattern,
                hint="put exactly one frame token in the file name: #### (4 digits), %04d or @@@@",
            )

    @property
    def _seq(self) -> fileseq.FileSequence:
        return fileseq.FileSequence(self.pattern, pad_style=fileseq.PAD_STYLE_HASH1)

    @property
    def folder(self) -> Path:
        return Path(self._seq.dirname() or ".")

    @property
    def padding(self) -> int:
        return int(self._seq.zfill())

    def path(self, frame: int) -> str:
        """The file name of ``frame`` (numbers longer than the padding are written in full)."""
        seq = self._seq
        number = f"{frame:0{self.padding}d}" if frame >= 0 else f"-{abs(frame):0{self.padding}d}"
        return f"{seq.dirname()}{seq.basename()}{number}{seq.extension()}"

    def on_disk(self) -> list[int]:
        """Frame numbers whose files exist, sorted."""
        seq = self._seq
        folder = self.folder
        if not folder.is_dir():
            return []
        digits = rf"-?\d{{{self.padding},}}" if self.padding > 1 else r"-?\d+"
        match = re.compile(rf"^{re.escape(seq.basename())}({digits}){re.escape(seq.extension())}$")
        frames = []
        for name in os.listdir(folder):
            found = match.match(name)
            if found and self.path(int(found.group(1))).endswith(name):
                frames.append(int(found.group(1)))
        return sorted(frames)

    def __str__(self) -> str:
        return self.pattern


def parse_frames(spec: str) -> list[int]:
    """Frame numbers of a range spec, sorted and unique."""
    try:
        frames = sorted(set(int(f) for f in fileseq.FrameSet(spec.replace(" ", ""))))
    except Exception as exc:
        raise FaceGraftError(
            f"'{spec}' is not a frame range", hint="write it like 1001-1100, 1001-1100x2 or 1001,1005,1010-1020"
        ) from exc
    if not frames:
        raise FaceGraftError(f"the frame range '{spec}' is empty")
    return frames


def format_frames(frames: Iterable[int]) -> str:
    """Compact range text for messages and job files, e.g. ``1001-1004,1010``."""
    values = sorted(set(frames))
    return str(fileseq.FrameSet(values)) if values else ""


def resolve_frames(seq: SequencePattern, spec: Union[str, Iterable[int], None] = None) -> list[int]:
    """The frames to process: ``spec`` (range text, or frame numbers already parsed) if given,
    else all on disk; every one must exist.

    Raises a FaceGraftError listing the missing frame numbers, or saying that nothing matched.
    """
    existing = seq.on_disk()
    if spec is None:
        if not existing:
            where = seq.folder
            reason = "the folder does not exist" if not where.is_dir() else "no file in the folder matches it"
            raise FaceGraftError(f"no frames found: {reason}", path=seq.pattern,
                                 hint="check the path and the padding (#### is four digits, # one digit)")
        frames = list(range(existing[0], existing[-1] + 1))
    elif isinstance(spec, str):
        frames = parse_frames(spec)
    else:
        frames = sorted(set(int(f) for f in spec))
        if not frames:
            raise FaceGraftError("the frame range is empty", path=seq.pattern)
    have = set(existing)
    missing = [f for f in frames if f not in have]
    if missing:
        raise FaceGraftError(
            f"{len(missing)} missing frame(s): {format_frames(missing)}",
            path=seq.pattern,
            hint="render or copy the missing frames, or pass --frames to choose the range",
        )
    return frames
