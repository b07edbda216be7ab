"""Errors a user can act on.

Every message names what was wrong, the file and frame when there is one, and what to do.
The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from typing import Optional


class FaceGraftError(Exception):
    """A problem with the user's input or environment, explained for a person."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: Optional[str] = None,
        frame: Optional[int] = None,
        hint: Optional[str] = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.frame = frame
        self.hint = hint
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.path:
            where.append(self.path)
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        text = f"{': '.join(where)}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def as_dict(self) -> dict:
        return {"message": self.message, "file": self.path, "frame": self.frame, "hint": self.hint}


class MissingAssetError(FaceGraftError):
    """A third-party model or sample clip has not been prepared yet."""

    exit_code = 3


class BadFrameError(FaceGraftError):
    """One plate frame cannot be read (corrupt, truncated, not an image)."""

    exit_code = 4


class ModelFileError(FaceGraftError):
    """A face model file is not one FaceGraft can use."""

    exit_code = 5


class DeviceError(FaceGraftError):
    """The device asked for (``--device cuda`` / ``tensorrt``) cannot run on this machine.

    Its own exit code lets a farm retry the task on another node: the job is fine, the node is not.
    """

    exit_code = 6


class StorageError(FaceGraftError):
    """A frame could not be written because the storage failed (disk full, quota, I/O error,
    stale network handle).

    Nothing partial is left (writes are atomic); its own exit code tells a farm a retry may
    succeed (later, or on a node with other storage): the job is fine, the storage is not.
    """

    exit_code = 7
