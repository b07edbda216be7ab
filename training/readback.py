"""Reading a training step's losses back from the GPU a batch of steps at a time.

A loss on the GPU is a number the CPU does not have yet: ``float(loss)`` makes the CPU wait until
the GPU has run every kernel queued so far, so a loop that reads (or checks) every step's loss
can never queue the next step while the GPU works on this one. ``Readback`` keeps the steps'
results as they are and reads them back together every ``every`` steps (one wait for all), or
whenever the loop needs them (a checkpoint, a preview, the end). On the CPU ``every`` is 1.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar

import torch

T = TypeVar("T")


def _tensors(value: Any, found: list[torch.Tensor]) -> None:
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _tensors(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _tensors(v, found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _tensors(getattr(value, f.name), found)


def _rebuild(value: Any, cpu: dict[int, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        return cpu[id(value)]
    if isinstance(value, dict):
        return {k: _rebuild(v, cpu) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rebuild(v, cpu) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _rebuild(getattr(value, f.name), cpu)
                                             for f in dataclasses.fields(value) if f.init})
    return value


def on_cpu(items: list[T]) -> list[T]:
    """``items`` (dataclasses, dicts, lists of tensors; small ones: losses) with every tensor
    copied to the CPU in one transfer: one wait for the device, not one per tensor."""
    found: list[torch.Tensor] = []
    _tensors(items, found)
    unique = list({id(t): t for t in found}.values())
    if not unique:
        return items
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in unique]).cpu()  # the one wait
    cpu, at = {}, 0
    for t in unique:
        cpu[id(t)] = flat[at:at + t.numel()].reshape(t.shape).to(t.dtype)
        at += t.numel()
    return [_rebuild(item, cpu) for item in items]


class Readback(Generic[T]):
    """Steps' results kept until they are read back together (see the module notes)."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.pending: list[tuple[int, T, dict[str, Any]]] = []

    def add(self, step: int, result: T, **extra: Any) -> bool:
        """Keep ``step``'s ``result`` (and CPU values ``extra``); True when ``every`` steps wait to be read."""
        self.pending.append((step, result, extra))
        return len(self.pending) >= self.every

    def read(self) -> list[tuple[int, T, dict[str, Any]]]:
        """Every kept step, in order, its tensors on the CPU (one wait for the device); then none is kept."""
        if not self.pending:
            return []
        pending, self.pending = self.pending, []
        results = on_cpu([result for _, result, _ in pending])
        return [(step, result, extra) for (step, _, extra), result in zip(pending, results)]
