"""Shared helpers of the farm tests (imported by name: a ``conftest`` is not, when several test folders have one)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))  # render_models

from facegraft.inference.io import exr  # noqa: E402

FACEGRAFT = str(Path(sys.executable).parent / "facegraft")
EXPECTED = Path(__file__).parent / "expected"


def write_plate(folder: Path, frames: Iterable[int], name: str = "sh010") -> str:
    """A tiny half-float EXR sequence (real files, written through OIIO)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = exr.new_spec(8, 8, ["R", "G", "B"], np.float16)
    for frame in frames:
        exr.write_image(folder / f"{name}.{frame:04d}.exr", np.full((8, 8, 3), frame % 7, np.float16), spec)
    return str(folder / f"{name}.####.exr")


def facegraft(*args: str, cwd: str | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `facegraft` command."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([FACEGRAFT, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)


def source_fingerprint() -> str:
    """A hash of FaceGraft's Python sources: renders compared across processes must come from the same code."""
    repo = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for path in sorted([*repo.glob("inference/**/*.py"), *repo.glob("farm/*.py")]):
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
