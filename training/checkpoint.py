"""Checkpoints: everything needed to continue a run exactly where it stopped.

One file, ``RUN/checkpoint.pt``: network config and weights, optimizer state, every random
generator's state, the step, the training settings and the facesets used; with the adversarial
patch loss also its critic and the critic's optimizer (``adversarial``; absent when the loss is
off, so a run that resumes with another setting is told, not broken). Writes are atomic
and the previous checkpoint is kept as ``checkpoint.prev.pt``. Loading uses
``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch

from facegraft.inference.atomic import atomic_path
from facegraft.inference.errors import FaceGraftError

FORMAT = "facegraft-checkpoint"
VERSION = 1
NAME = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"

PathLike = Union[str, Path]


def checkpoint_path(run: PathLike) -> Path:
    """The checkpoint of a run folder (or the file itself when given one)."""
    run = Path(run)
    return run if run.suffix == ".pt" else run / NAME


def save_checkpoint(run: PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically, keeping the one before as ``checkpoint.prev.pt``."""
    path = checkpoint_path(run)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
        if path.exists():
            os.replace(path, path.with_name(PREVIOUS))
    return path


def load_checkpoint(run: PathLike) -> dict[str, Any]:
    """Load a checkpoint on the CPU; FaceGraftError when it is missing, damaged or not ours."""
    path = checkpoint_path(run)
    if not path.is_file():
        raise FaceGraftError("no checkpoint found", path=str(path),
                             hint="train first (`facegraft train ... --out RUN`), or check the run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean the same to a user
        raise FaceGraftError(f"the checkpoint cannot be read ({type(exc).__name__}: {str(exc)[:200]})", path=str(path),
                             hint=f"it is damaged or not a FaceGraft checkpoint; {PREVIOUS} in the same folder holds "
                                  "the one before, rename it to checkpoint.pt to continue from there") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise FaceGraftError("not a FaceGraft checkpoint", path=str(path),
                             hint="pass the run folder written by `facegraft train`")
    if int(state.get("version", 0)) > VERSION:
        raise FaceGraftError(f"checkpoint version {state['version']} is newer than this FaceGraft reads ({VERSION})",
                             path=str(path), hint="update FaceGraft")
    return state
