"""Training batches drawn ahead of the GPU, so a step never waits for faces.

``train_step`` asks ``draw(name)`` for each identity's faces, once per identity per step. Drawn
in the loop's own thread, a step's faces are read from the facesets (float16 memmaps cast to
float32, resized when the faceset is larger than the run) while the GPU sits idle. ``Feeder``
draws them ahead instead:

* one planner thread picks every step's faces, in step order, from its own seeded generator
  (``positions``: the same draw as ``IdentityData.sample``);
* ``workers`` threads read the picked faces (numpy and torch release the GIL while they copy
  and resize), into page-locked (pinned) memory on a CUDA run;
* each step's tensors are copied to the GPU on a side stream (``non_blocking``), so the copy of
  step k+1 overlaps the compute of step k; ``draw`` makes the compute stream wait for it;
* ``depth`` steps are kept ready (or being read); ``waited`` adds up the seconds ``draw`` blocked,
  which is zero when the GPU is fed.

Faces arrive on the run's device, so ``augment`` (which draws its random numbers from the
loop's generator on the CPU, whatever the device) warps them there. Measures stay on the CPU.

The batches do not depend on ``workers`` or ``depth`` (``workers=0`` reads in the loop's thread),
and ``state()`` is the generator's state before the first step not yet handed out: a checkpoint
that saves it and a ``Feeder(..., state=...)`` that resumes from it draw the same faces as a run
that never stopped, however far ahead the planner had got.

``tune(device)`` sets what a CUDA run wants once: cuDNN's autotuner (a run's shapes never change)
and TF32 matrix products for what runs outside bf16 autocast.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Protocol, Sequence

import numpy as np
import torch

from .data import Batch

DEFAULT_WORKERS = 4
DEFAULT_DEPTH = 3
#: Added to the run's seed for the feeder's generator, so picks and augmentation draw apart.
SEED_OFFSET = 0x5EED


class FaceSource(Protocol):
    """What the feeder draws from: ``data.IdentityData`` (or a synthetic stand-in in benchmarks)."""

    weights: Optional[np.ndarray]

    def __len__(self) -> int: ...

    def batch(self, positions: Sequence[int], res: int) -> Batch: ...


def positions(source: FaceSource, g: torch.Generator, count: int) -> list[int]:
    """``count`` faces drawn with replacement: by ``weights`` when set, else uniformly (``IdentityData.sample``)."""
    if source.weights is None:
        return torch.randint(len(source), (count,), generator=g).tolist()
    return torch.multinomial(torch.from_numpy(source.weights), count, replacement=True, generator=g).tolist()


def tune(device: torch.device) -> None:
    """cuDNN autotuning and TF32 matrix products on a CUDA run (nothing elsewhere)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


@dataclass
class _Step:
    batches: dict[str, Batch]
    ready: Optional[Any] = None  # a torch.cuda.Event recorded after the copy to the device


class Feeder:
    """``draw(name)`` for ``train_step``, from steps read ahead (see the module notes)."""

    def __init__(self, sources: Mapping[str, FaceSource], batch: int, res: int, device: torch.device, *,
                 seed: int = 0, workers: int = DEFAULT_WORKERS, depth: int = DEFAULT_DEPTH,
                 state: Optional[torch.Tensor] = None) -> None:
        self.sources, self.names = dict(sources), list(sources)
        self.count, self.res, self.device = batch, res, device
        self.g = torch.Generator().manual_seed(seed)
        if state is not None:
            self.g.set_state(state)
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.waited = 0.0  # seconds draw() spent reading or waiting for a step (reading inline: all of it)
        self.steps = 0  # steps handed out
        self._current: Optional[dict[str, Batch]] = None
        self._taken: set[str] = set()
        self._after = self.g.get_state()  # the state after the picks of the last step handed out
        self._ahead: queue.Queue[tuple[torch.Tensor, Future[_Step]]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="facegraft-feed") if workers > 0 else None
        self._planner: Optional[threading.Thread] = None
        if self._pool is not None:
            self._planner = threading.Thread(target=self._plan, name="facegraft-feed-plan", daemon=True)
            self._planner.start()

    # -- reading ------------------------------------------------------------------------------------------
    def _pick(self) -> dict[str, list[int]]:
        return {name: positions(self.sources[name], self.g, self.count) for name in self.names}

    def _read(self, picks: dict[str, list[int]]) -> _Step:
        """Read one step's faces; on CUDA pin them and copy them to the device on the side stream."""
        batches = {name: self.sources[name].batch(picks[name], self.res) for name in self.names}
        if not self.cuda:
            return _Step(batches)
        assert self.stream is not None
        with torch.cuda.stream(self.stream):
            moved = {name: Batch(b.faces.pin_memory().to(self.device, non_blocking=True),
                                 b.mattes.pin_memory().to(self.device, non_blocking=True), b.measures)
                     for name, b in batches.items()}
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return _Step(moved, ready)

    def _plan(self) -> None:
        """Pick steps in order and hand their reading to the workers, ``depth`` steps ahead."""
        assert self._pool is not None
        while not self._stop.is_set():
            try:
                future = self._pool.submit(self._read, self._pick())
            except Exception as exc:  # handed to draw(), which would otherwise wait for ever
                failed: Future[_Step] = Future()
                failed.set_exception(exc)
                self._ahead.put((self.g.get_state(), failed))  # close() drains the queue, so this returns
                return
            after = self.g.get_state()
            while not self._stop.is_set():
                try:
                    self._ahead.put((after, future), timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _next(self) -> dict[str, Batch]:
        started = time.perf_counter()
        if self._pool is None:
            picks = self._pick()
            self._after = self.g.get_state()
            step = self._read(picks)
            self.waited += time.perf_counter() - started
        else:
            self._after, future = self._ahead.get()
            step = future.result()
            self.waited += time.perf_counter() - started
        if step.ready is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(step.ready)
            for b in step.batches.values():  # the side stream's memory is now used on the compute stream
                b.faces.record_stream(current)
                b.mattes.record_stream(current)
        self.steps += 1
        return step.batches

    # -- what the loop calls ----------------------------------------------------------------------------------
    def draw(self, name: str) -> Batch:
        """The faces of ``name`` for the current step; the first identity asked twice starts the next step."""
        if self._current is None or name in self._taken:
            self._current, self._taken = self._next(), set()
        self._taken.add(name)
        return self._current[name]

    def state(self) -> torch.Tensor:
        """The generator state that picks the step after the last one handed out (checkpoint it
        between steps; a ``Feeder(..., state=...)`` continues from there)."""
        return self._after.clone()

    def close(self) -> None:
        """Stop reading ahead (the steps read ahead are dropped)."""
        self._stop.set()
        if self._planner is not None:
            while self._planner.is_alive():
                try:
                    self._ahead.get_nowait()
                except queue.Empty:
                    pass
                self._planner.join(timeout=0.05)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Feeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def feeder_for(data: Mapping[str, FaceSource], batch: int, res: int, device: torch.device,
               seed: int, state: Optional[torch.Tensor] = None, workers: Optional[int] = None) -> Feeder:
    """The loop's feeder for a run seeded ``seed`` (resumed from ``state``, a checkpoint's): read
    ahead with ``DEFAULT_WORKERS`` threads on a GPU, in the loop's thread on the CPU (where readers
    would take the cores the step itself needs)."""
    if workers is None:
        workers = DEFAULT_WORKERS if device.type == "cuda" else 0
    return Feeder(data, batch, res, device, seed=seed + SEED_OFFSET, workers=workers, state=state)

