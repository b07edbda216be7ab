"""Image sequences and frame ranges (fileseq, Nuke-style padding: one ``#`` per digit).

Patterns: ``plate.####.exr``, ``plate.%04d.exr``, ``plate.@@@@.exr``.
Ranges: ``1001-1100``, ``1001-1100x2``, ``1001,1005,1010-1020``.
Missing frames are reported by number, never skipped silently.

Paths as users have them (``resolve_input``): a pattern is taken as it is; a frame file of a
sequence on disk (``plates/sh010.1001.exr``, what Nuke's Read and file browsers show) means
that sequence; a still (``ref/still.exr``: no frame number in its name) means a one-frame
sequence, frame ``STILL_FRAME``; each says in one line which it chose.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable, Optional, Union

import fileseq

from facegraft.inference.errors import FaceGraftError

_TOKEN = re.compile(r"#+|@+|%0?(\d*)d")
# A frame file: the last run of digits before the extension, after a separator or letters.
_FRAME_FILE = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\.[A-Za-z0-9]+)$")
STILL_FRAME = 1  # the frame number of a still (as videos and stills are numbered by default)


@dataclass(frozen=True)
class SequencePattern:
    """A frame-numbered file path pattern, e.g. ``plates/sh010.####.exr``; with ``still`` (a
    frame number), one file without a frame token standing for that frame alone."""

    pattern: str
    still: Optional[int] = None

    def __post_init__(self) -> None:
        name = os.path.basename(self.pattern)
        if self.still is not None:
            if _TOKEN.search(name):
                raise FaceGraftError("a still has no frame token in its name", path=self.pattern)
            return
        if len(_TOKEN.findall(name)) != 1:
            guess = frame_file_pattern(self.pattern)
            raise FaceGraftError(
                "not an image sequence pattern",
                path=self.pattern,
                hint=(f"write the sequence as {guess}" if guess else
                      "put exactly one frame token in the file name: #### (4 digits), %04d or @@@@"),
            )

    @property
    def _seq(self) -> fileseq.FileSequence:
        return fileseq.FileSequence(self.pattern, pad_style=fileseq.PAD_STYLE_HASH1)

    @property
    def folder(self) -> Path:
        if self.still is not None:
            return Path(os.path.dirname(self.pattern) or ".")
        return Path(self._seq.dirname() or ".")

    @property
    def padding(self) -> int:
        return 0 if self.still is not None else int(self._seq.zfill())

    def path(self, frame: int) -> str:
        """The file name of ``frame`` (numbers longer than the padding are written in full)."""
        if self.still is not None:
            return self.pattern
        seq = self._seq
        number = f"{frame:0{self.padding}d}" if frame >= 0 else f"-{abs(frame):0{self.padding}d}"
        return f"{seq.dirname()}{seq.basename()}{number}{seq.extension()}"

    def on_disk(self) -> list[int]:
        """Frame numbers whose files exist, sorted."""
        if self.still is not None:
            return [self.still] if os.path.isfile(self.pattern) else []
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


def frame_file_pattern(path: str) -> Optional[str]:
    """``plates/sh010.1001.exr`` -> ``plates/sh010.####.exr`` (the padding from the name); None
    when the name has no frame number before its extension."""
    folder, name = os.path.split(path)
    found = _FRAME_FILE.match(name)
    if not found:
        return None
    return os.path.join(folder, found["head"] + "#" * len(found["digits"]) + found["tail"])


@dataclass(frozen=True)
class Resolved:
    """What a path a user gave names: ``text`` to pass on (a pattern, or the file itself for a
    still or a video), its ``sequence``, ``kind`` (pattern, frame, still, other) and ``note``,
    one line saying what was chosen (empty for a pattern)."""

    text: str
    sequence: Optional[SequencePattern]
    kind: str
    note: str = ""


def _sibling_pattern(path: str) -> Optional[SequencePattern]:
    """The sequence a frame file belongs to, with the padding its siblings on disk use."""
    folder, name = os.path.split(path)
    found = _FRAME_FILE.match(name)
    if not found:
        return None
    head, tail = found["head"], found["tail"]
    sibling = re.compile(rf"^{re.escape(head)}(\d+){re.escape(tail)}$")
    try:
        names = os.listdir(folder or ".")
    except OSError:
        names = [name]
    numbers = [m.group(1) for m in map(sibling.match, names) if m] or [found["digits"]]
    padded = [n for n in numbers if len(n) > 1 and n.startswith("0")]
    padding = len(padded[0]) if padded else min(len(n) for n in numbers)
    if len(found["digits"]) < padding:  # e.g. plate.101.exr beside plate.0102.exr: not that sequence
        padding = len(found["digits"])
    return SequencePattern(os.path.join(folder, head + "#" * padding + tail))


def resolve_input(path: Union[str, Path], keep: Collection[str] = ()) -> Resolved:
    """The sequence a path a user gave means (see the module docstring).

    ``keep``: file extensions (``.mp4``, ...) that are passed on as they are (kind ``other``).
    A frame file must exist; a name that is neither a pattern nor a file is refused, naming it.
    """
    text = str(path)
    name = os.path.basename(text)
    if _TOKEN.search(name):
        return Resolved(text, SequencePattern(text), "pattern")
    if Path(name).suffix.lower() in {e.lower() for e in keep}:
        return Resolved(text, None, "other")
    if not os.path.isfile(text):
        guess = frame_file_pattern(text)
        raise FaceGraftError("no such file, and not an image sequence pattern", path=text,
                             hint=(f"for the sequence, write {guess}" if guess else
                                   "give a sequence (plates/sh010.####.exr), one of its frame files, or a still"))
    sequence = _sibling_pattern(text)
    if sequence is not None:
        frames = sequence.on_disk()
        count = f"{len(frames)} frame(s) on disk, {format_frames(frames)}"
        return Resolved(sequence.pattern, sequence, "frame",
                        f"{name} is a frame of the sequence {sequence.pattern} ({count}): using the sequence")
    return Resolved(text, SequencePattern(text, still=STILL_FRAME), "still",
                    f"{name} is a still: read as a one-frame sequence (frame {STILL_FRAME})")
