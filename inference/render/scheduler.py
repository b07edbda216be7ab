"""The shot render's pipeline: read, model and write stages overlapped across frames.

Reader threads run ``prepare`` (decode the plate, cut the crop), the calling thread runs the
model on batches of crops, writer threads run ``finish`` (composite, encode). Queues are bounded.
OpenImageIO releases the GIL while it decodes and encodes (and threads inside each file), so the
stages hide behind the slowest one.

* Batches: crops go to the model in fixed-size calls, frame ``f`` in slot ``f % size`` of the call
  for its block ``f // size`` (``SlotBatch``). Which frames share a call, and where, depends on
  frame numbers only, so a frame gets the same bytes whatever the timing, the chunking or a
  resumed render.
* Errors (``on_error``), for a frame that cannot be read or cropped: ``fail`` stops the render
  (writes not yet started are dropped; a re-run resumes); ``skip`` writes nothing for the frame;
  ``hold`` writes the plate as it is (or the nearest readable frame), marked ``held``, after the
  frames before it. Write errors always stop the render; one the storage caused (disk full,
  quota, I/O error) is a ``StorageError``, whose exit code says a retry may succeed.
* Progress: one update per frame: written frames in frame order as their writes complete, a
  skipped frame when it fails; frames already on disk count as done in one update.
* Resume (``resume``): a frame on disk is kept and counted as done only when it is complete and
  its stamp (``stamp.RenderStamp``: format, model, settings, track, plate and holdout) matches
  this render; the others are rendered again, with the reason in ``report.stale``. Temporary
  files a killed render left are removed. Each frame written carries its stamp (computed on the
  reader thread, before the plate is read).
"""
from __future__ import annotations

import errno
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional, Protocol

import numpy as np

from facegraft.inference import atomic
from facegraft.inference.errors import FaceGraftError, StorageError
from facegraft.inference.io import exr, layers
from facegraft.inference.io.frames import Plate
from facegraft.inference.io.sequence import SequencePattern, format_frames
from facegraft.inference.render import stamp as stamps
from facegraft.inference.render.frame import Job
from facegraft.inference.render.report import RenderReport
from facegraft.inference.render.settings import ON_ERROR

# OS errors of the storage rather than of the job: a retry (later, or on another node) may succeed.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ESTALE, errno.ETIMEDOUT})
_STORAGE_TEXTS = ("disk is full", *(os.strerror(e).lower() for e in STORAGE_ERRNOS))


class Stages(Protocol):
    """The per-frame work (``frame.FrameRenderer``)."""

    def prepare(self, frame: int) -> Job: ...

    def finish(self, job: Job, swap: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> None: ...

    def fallback(self, frame: int) -> Optional[Plate]: ...


class BatchModel(Protocol):
    """What the scheduler needs of a face model: fixed-size calls on ``[N, *shape]`` crops."""

    @property
    def batch(self) -> int: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    def run(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class ProgressSink(Protocol):
    def update(self, n: int = 1, **info: Any) -> None: ...

    def warn(self, message: str, **info: Any) -> None: ...


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise FaceGraftError(f"unknown --on-error '{on_error}'", hint=f"one of {', '.join(ON_ERROR)}")


class SlotBatch:
    """The frames waiting for one model call, in order; those with a crop each own a slot."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.jobs: list[Job] = []

    def slot(self, frame: int) -> int:
        return frame % self.size

    def _faced(self) -> list[Job]:
        return [j for j in self.jobs if j.crop is not None]

    def accepts(self, job: Job) -> bool:
        """False when ``job``'s crop belongs in another call: another block, or its slot is taken."""
        faced = self._faced()
        if job.crop is None or not faced:
            return True
        same_block = job.frame // self.size == faced[0].frame // self.size
        return same_block and all(self.slot(j.frame) != self.slot(job.frame) for j in faced)

    def add(self, job: Job) -> None:
        self.jobs.append(job)

    def full(self) -> bool:
        """Every slot taken, or enough frames without a face waiting that they should be written."""
        return len(self._faced()) == self.size or len(self.jobs) >= 2 * self.size

    def faces(self, shape: tuple[int, ...]) -> Optional[np.ndarray]:
        """The model's input: each crop in its slot, zeros elsewhere; None when no job has a crop."""
        faced = self._faced()
        if not faced:
            return None
        faces = np.zeros((self.size, *shape), np.float32)
        for job in faced:
            faces[self.slot(job.frame)] = job.crop
        return faces

    def take(self) -> list[Job]:
        jobs, self.jobs = self.jobs, []
        return jobs


class Scheduler:
    """Runs frames through ``stages`` and ``model`` (see the module docstring), filling ``report``;
    one ``run`` per scheduler."""

    def __init__(self, stages: Stages, model: BatchModel, report: RenderReport, *, on_error: str = "fail",
                 readers: int = 2, writers: int = 2, progress: Optional[ProgressSink] = None,
                 stamp: Optional[stamps.FrameStamp] = None) -> None:
        check_on_error(on_error)
        self.stages = stages
        self.model = model
        self.report = report
        self.on_error = on_error
        self.readers = max(1, readers)
        self.writers = max(1, writers)
        self.progress = progress
        self.stamp = stamp
        self._out: Optional[SequencePattern] = None
        self.batch = SlotBatch(model.batch)
        self.read_ahead = model.batch + self.readers * 2
        self.write_ahead = self.writers * 2
        self._queue: deque[int] = deque()
        self._reads: deque[Future[Job]] = deque()
        self._writes: deque[tuple[int, str, Future[None]]] = deque()
        # threads start on the first submit
        self._read_pool = ThreadPoolExecutor(self.readers, thread_name_prefix="facegraft-read")
        self._write_pool = ThreadPoolExecutor(self.writers, thread_name_prefix="facegraft-write")

    def resume(self, out: SequencePattern, frames: list[int], overwrite: bool = False,
               log: Callable[[str], None] = lambda message: None) -> list[int]:
        """The frames of ``frames`` still to render. Unless ``overwrite``, a frame on disk that is
        complete and stamped as this render would stamp it is kept (``report.existing``, counted
        as done); one that is not is rendered again (``report.stale``: frame -> reason). Without
        a stamp, a complete file counts as done. Stale temporaries go."""
        self._out = out
        if not overwrite:
            stamp = self.stamp if self.stamp is not None else _Complete()
            done, self.report.stale = stamps.stale_frames(stamp, out.path, frames, workers=self.readers)
            self.report.existing = done
        kept = set(self.report.existing)
        todo = [f for f in frames if f not in kept]
        removed = remove_stale_temps(out, todo)
        if removed:
            log(f"removed {removed} temporary file(s) left by an interrupted render")
        existing = self.report.existing
        if existing:
            log(f"{len(existing)} frame(s) already rendered and up to date, kept: {format_frames(existing)} "
                "(--overwrite renders them again)")
            if self.progress is not None:
                self.progress.update(len(existing))
        if self.report.stale:
            log(f"{len(self.report.stale)} frame(s) on disk are out of date and are rendered again: "
                + stamps.describe(self.report.stale))
        return todo

    def run(self, frames: list[int]) -> RenderReport:
        """Render ``frames`` in order; returns the report (a failure raises, after pending work stops)."""
        wall = time.perf_counter()
        self._queue = deque(frames)
        try:
            self._read()
            while self._reads:
                job = self._reads.popleft().result()
                self._read()
                if job.error is not None:
                    self._model()  # frames before the bad one are written first
                    self._fail(job)
                    continue
                if not self.batch.accepts(job):
                    self._model()
                self.batch.add(job)
                if self.batch.full():
                    self._model()
            self._model()
            self._collect(0)
        except BaseException:
            for future in self._reads:
                future.cancel()
            for _, _, pending in self._writes:
                pending.cancel()
            raise
        finally:
            self._read_pool.shutdown(wait=True, cancel_futures=True)
            self._write_pool.shutdown(wait=True, cancel_futures=True)
            self.report.timings.wall += time.perf_counter() - wall
        return self.report

    # -- read stage ----------------------------------------------------------------------------
    def _read(self) -> None:
        """Keep ``read_ahead`` frames being read and cropped."""
        while self._queue and len(self._reads) < self.read_ahead:
            self._reads.append(self._read_pool.submit(self._prepare, self._queue.popleft()))

    def _prepare(self, frame: int) -> Job:
        """The frame's stamp first (so a plate replaced while it is read stamps as changed), then
        ``prepare``."""
        attrs = self.stamp.frame_attributes(frame) if self.stamp is not None else {}
        job = self.stages.prepare(frame)
        job.note.update(attrs)
        return job

    # -- model stage ---------------------------------------------------------------------------
    def _model(self) -> None:
        """Run the model on the waiting batch (if any job has a crop) and send every job to be written."""
        faces = self.batch.faces(self.model.shape)
        swaps = masks = np.zeros((0,), np.float32)
        if faces is not None:
            start = time.perf_counter()
            swaps, masks = self.model.run(faces)
            self.report.timings.add("model", time.perf_counter() - start)
        for job in self.batch.take():
            if job.crop is not None:
                slot = self.batch.slot(job.frame)
                self._write(job, swaps[slot], masks[slot])
            else:
                self._write(job)

    # -- write stage ---------------------------------------------------------------------------
    def _write(self, job: Job, swap: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> None:
        self._writes.append((job.frame, job.status, self._write_pool.submit(self.stages.finish, job, swap, mask)))
        self._collect(self.write_ahead)

    def _collect(self, limit: int) -> None:
        """Wait for the oldest writes until at most ``limit`` are pending; report each frame."""
        while len(self._writes) > limit:
            frame, status, future = self._writes.popleft()
            try:
                future.result()  # write errors (disk full, permissions) stop the render
            except FaceGraftError as exc:
                converted = storage_error(exc, frame)
                if converted is exc:
                    raise
                raise converted from exc
            {layers.RENDERED: self.report.rendered, layers.NO_FACE: self.report.no_face,
             layers.HELD: self.report.held}[status].append(frame)
            if self.progress is not None:
                self.progress.update(1, frame=frame, status=status)

    # -- error policy --------------------------------------------------------------------------
    def _fail(self, job: Job) -> None:
        """A frame that could not be read or cropped, by ``on_error``."""
        assert job.error is not None
        error = job.error
        if error.frame is None:
            error.frame = job.frame
        if self.on_error == "fail":
            raise error
        self.report.errors[job.frame] = error.describe()
        if self.progress is not None:
            self.progress.warn(f"frame {job.frame}: {error.message}", frame=job.frame, file=error.path)
        held: Optional[Plate] = None
        if self.on_error == "hold":
            held = job.plate if job.plate is not None else self.stages.fallback(job.frame)
        if held is None:  # skip, or no readable plate frame to hold: nothing is written
            self._drop_stale(job.frame)
            self.report.skipped.append(job.frame)
            if self.progress is not None:
                self.progress.update(1, frame=job.frame, status="skipped")
            return
        note: dict[str, Any] = {**job.note, "hold_reason": error.message}  # the frame's stamp, and why
        if job.plate is None:
            note["held_from"] = held.frame
        self._write(Job(job.frame, plate=held, status=layers.HELD, note=note))

    def _drop_stale(self, frame: int) -> None:
        """A frame left unwritten must not keep an out-of-date render from before: remove it."""
        if frame not in self.report.stale or self._out is None:
            return
        try:
            os.remove(self._out.path(frame))
        except FileNotFoundError:
            pass
        if self.progress is not None:
            self.progress.warn(f"frame {frame}: its earlier render ({self.report.stale[frame]}) was removed",
                               frame=frame, file=self._out.path(frame))


def storage_error(error: FaceGraftError, frame: int) -> FaceGraftError:
    """``error`` as a ``StorageError`` when the storage caused it: an OS error in ``STORAGE_ERRNOS``
    behind it, or a write failure whose message is one (OpenImageIO reports the system's text,
    e.g. "No space left on device"); else ``error`` itself."""
    if isinstance(error, StorageError):
        return error
    cause: Optional[BaseException] = error
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno in STORAGE_ERRNOS:
            break
        seen.add(id(cause))
        cause = cause.__cause__
    else:
        cause = None
    said = error.message.lower()
    if cause is None and not any(text in said for text in _STORAGE_TEXTS):
        return error
    return StorageError(error.message, path=error.path, frame=error.frame if error.frame is not None else frame,
                        hint="nothing partial was written; free space (or wait for the storage) and run the same "
                             "command again: finished frames are kept")


class _Complete:
    """The check without a stamp: a complete file is done."""

    def frame_attributes(self, frame: int) -> dict[str, str]:
        return {}

    def check(self, path: str, frame: int) -> Optional[str]:
        return None if exr.is_complete(path) else stamps.INCOMPLETE


def remove_stale_temps(out: SequencePattern, frames: list[int]) -> int:
    """Delete the temporary files a killed render left for ``frames``; returns how many."""
    removed = 0
    for frame in frames:
        for tmp in atomic.stale_temps(out.path(frame)):
            try:
                tmp.unlink()
                removed += 1
            except OSError:
                pass
    return removed
