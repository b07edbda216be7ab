"""An engine-neutral farm job: one ``track`` task, then ``render`` chunks that depend on it.

The engines (Open Job Description, OpenCue, Deadline) only translate this description;
the facegraft command lines, the chunks and the requirements are decided here once.
"""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import fileseq

from facegraft.inference.io.sequence import format_frames

from .chunking import chunk_frames
from .shot_options import RENDER_OPTIONS, TRACK_OPTIONS

GPU_DEVICES = ("cuda", "tensorrt")


def default_executable() -> tuple[str, ...]:
    """The ``facegraft`` entry point beside the running interpreter (a venv's ``bin``)."""
    folder = Path(sys.executable).parent
    for name in ("facegraft", "facegraft.exe"):
        if (folder / name).is_file():
            return (str(folder / name),)
    return (sys.executable, "-m", "facegraft.cli.main")


def parse_executable(text: Optional[str]) -> tuple[str, ...]:
    """``--facegraft-exe`` may be a path or a short command (``/opt/fg/bin/python -m ...``)."""
    if not text:
        return default_executable()
    return tuple(shlex.split(text))


def _flags(options: Mapping[str, object], allowed: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for name in allowed:
        value = options.get(name)
        if value is None or value == "":  # unset, or empty (e.g. --plate-part ""): the stage's default
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # --erode 4, not 4.0
        args += ["--" + name.replace("_", "-"), str(value)]
    return args


@dataclass(frozen=True)
class Shot:
    """What to render: absolute paths, the frames, and the options of each stage."""

    name: str
    plate: str
    model: str
    out: str
    track: str
    frames: tuple[int, ...]
    options: Mapping[str, object] = field(default_factory=dict)

    @property
    def frames_text(self) -> str:
        return format_frames(self.frames)

    def track_args(self) -> list[str]:
        """Arguments of ``facegraft track`` for the whole shot."""
        return ["track", self.plate, "--out", self.track, "--frames", self.frames_text,
                *_flags(self.options, TRACK_OPTIONS), "--json-progress"]

    def render_args(self, frames: str, device: Optional[str] = None) -> list[str]:
        """Arguments of ``facegraft render`` for ``frames`` (a range, or an engine's frame token);
        ``device``: the ``--device`` when the shot's options set none."""
        options = {**({"device": device} if device else {}), **self.options}
        return ["render", self.plate, "--track", self.track, "--model", self.model, "--out", self.out,
                "--frames", frames, *_flags(options, RENDER_OPTIONS), "--json-progress"]


@dataclass(frozen=True)
class Requirements:
    """What a host needs to run a task; each engine writes these its own way."""

    gpu: bool = False
    memory_gb: float = 0.0
    tags: tuple[str, ...] = ()

    @property
    def memory_mb(self) -> int:
        return int(round(self.memory_gb * 1024))


@dataclass(frozen=True)
class Task:
    """One unit of farm work: its frames and its exact command line."""

    step: str
    frames: fileseq.FrameSet
    argv: tuple[str, ...]
    depends_on: Optional[str] = None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class FarmJob:
    """A shot as farm work: ``track`` (one task) then ``render`` chunks depending on it."""

    name: str
    shot: Shot
    chunk_size: int
    executable: tuple[str, ...]
    priority: int = 50
    gpu: bool = True
    gpu_device: str = "cuda"  # --device of GPU render tasks when the shot sets none
    memory_gb: float = 16.0
    tags: tuple[str, ...] = ()
    engine_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def frames(self) -> fileseq.FrameSet:
        return fileseq.FrameSet(list(self.shot.frames))

    @property
    def chunks(self) -> list[fileseq.FrameSet]:
        return chunk_frames(self.shot.frames, self.chunk_size)

    @property
    def render_requirements(self) -> Requirements:
        return Requirements(gpu=self.gpu, memory_gb=self.memory_gb, tags=self.tags)

    @property
    def track_requirements(self) -> Requirements:
        """Tracking runs its small detector on the CPU unless a GPU device was asked for."""
        device = str(self.shot.options.get("device") or "")
        return Requirements(gpu=self.gpu and device in GPU_DEVICES, memory_gb=self.memory_gb, tags=self.tags)

    def track_argv(self) -> list[str]:
        return [*self.executable, *self.shot.track_args()]

    def render_argv(self, frames: str) -> list[str]:
        """A GPU render task names its device: on a node whose GPU fails it stops (exit 6) and is
        retried elsewhere, rather than falling back to the CPU."""
        return [*self.executable, *self.shot.render_args(frames, self.gpu_device if self.gpu else None)]

    def tasks(self) -> list[Task]:
        """Every task with its literal command line, in the order a single box would run them."""
        first = fileseq.FrameSet(list(self.shot.frames))
        tasks = [Task("track", first, tuple(self.track_argv()))]
        for chunk in self.chunks:
            tasks.append(Task("render", chunk, tuple(self.render_argv(str(chunk))), depends_on="track"))
        return tasks

    def describe(self) -> str:
        """A short summary for people: frames, chunks and the commands."""
        chunks = self.chunks
        lines = [
            f"job {self.name}: {len(self.shot.frames)} frames ({self.shot.frames_text}), "
            f"{len(chunks)} render chunk(s) of up to {self.chunk_size}",
            f"  track : {shlex.join(self.track_argv())}",
            f"  render: {shlex.join(self.render_argv('CHUNK'))}",
            f"  chunks: {', '.join(str(c) for c in chunks)}",
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class Submission:
    """What handing a job to an engine gave: the exit status (``openjd run`` runs the job here)
    and the farm's ids and names of the jobs it made (none for a bundle or a local run)."""

    exit_code: int = 0
    job_ids: tuple[str, ...] = ()
    job_names: tuple[str, ...] = ()


def absolute(path: str) -> str:
    """An absolute path as the user sees it (symlinked mounts are kept, not resolved)."""
    return os.path.abspath(os.path.expanduser(str(path)))
