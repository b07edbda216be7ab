"""Fixtures for the farm tests: small real plates and tiny real models on disk."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

from render_models import build_identity_model  # noqa: E402

from facegraft.inference import exr_io  # noqa: E402

FACEGRAFT = str(Path(sys.executable).parent / "facegraft")
EXPECTED = Path(__file__).parent / "expected"


def write_plate(folder: Path, frames: range, name: str = "sh010") -> str:
    """A tiny half-float EXR sequence (real files, written through OIIO)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = exr_io.new_spec(8, 8, ["R", "G", "B"], np.float16)
    for frame in frames:
        exr_io.write_image(folder / f"{name}.{frame:04d}.exr", np.full((8, 8, 3), frame % 7, np.float16), spec)
    return str(folder / f"{name}.####.exr")


@pytest.fixture
def shot_files(tmp_path: Path) -> dict[str, str]:
    """Plate 1001-1024, an identity model, and an output pattern inside ``tmp_path``."""
    plate = write_plate(tmp_path / "plates", range(1001, 1025))
    model = str(tmp_path / "models" / "sh010_actor.onnx")
    Path(model).parent.mkdir()
    build_identity_model(model, res=64)
    return {"root": str(tmp_path), "plate": plate, "model": model,
            "out": str(tmp_path / "renders" / "sh010_swap.####.exr")}


def facegraft(*args: str, cwd: str | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `facegraft` command."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([FACEGRAFT, *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)
