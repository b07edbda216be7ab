"""Fixtures for the farm tests: small real plates and tiny real models on disk."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from farm_support import write_plate  # noqa: E402  (puts tests/inference on sys.path)
from render_models import build_identity_model  # noqa: E402


@pytest.fixture
def shot_files(tmp_path: Path) -> dict[str, str]:
    """Plate 1001-1024, an identity model, and an output pattern inside ``tmp_path``."""
    plate = write_plate(tmp_path / "plates", range(1001, 1025))
    model = str(tmp_path / "models" / "sh010_actor.onnx")
    Path(model).parent.mkdir()
    build_identity_model(model, res=64)
    return {"root": str(tmp_path), "plate": plate, "model": model,
            "out": str(tmp_path / "renders" / "sh010_swap.####.exr")}
