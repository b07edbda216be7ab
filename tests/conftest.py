"""Shared fixtures: small EXR plates made from the sample footage by the real ingest code.

The footage is prepared by `facegraft setup` (`make setup`) into $FACEGRAFT_HOME.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegraft.inference import assets
from facegraft.inference.io import exr
from facegraft.inference.io.frames import VideoSource
from facegraft.inference.io.ingest import ingest

FIRST = 1001


def _ingest(tmp_path_factory: pytest.TempPathFactory, clip: str, name: str, count: int) -> str:
    folder = tmp_path_factory.mktemp(name)
    pattern = str(folder / f"{name}.####.exr")
    ingest(str(assets.footage_path(clip)), pattern, start=FIRST, frames=f"{FIRST}-{FIRST + count - 1}")
    return pattern


@pytest.fixture(scope="session")
def single_face_plate(tmp_path_factory: pytest.TempPathFactory) -> str:
    """12 frames (1001-1012) of single_face.mp4: half-float ACEScg EXR, 640x360."""
    return _ingest(tmp_path_factory, "single_face.mp4", "single_face", 12)


@pytest.fixture(scope="session")
def wolfgang_plate(tmp_path_factory: pytest.TempPathFactory) -> str:
    """24 frames (1001-1024) of WolfgangLanger_Pexels.mp4: half-float ACEScg EXR, 640x360."""
    return _ingest(tmp_path_factory, "WolfgangLanger_Pexels.mp4", "wolfgang", 24)


@pytest.fixture(scope="session")
def two_face_plate(tmp_path_factory: pytest.TempPathFactory) -> str:
    """12 frames, 1280x360: the woman (Wolfgang clip) on the left, the man (single_face) on the right."""
    folder = tmp_path_factory.mktemp("two_face")
    pattern = str(folder / "two_face.####.exr")
    left = VideoSource(str(assets.footage_path("WolfgangLanger_Pexels.mp4")), start=FIRST)
    right = VideoSource(str(assets.footage_path("single_face.mp4")), start=FIRST)
    for frame in range(FIRST, FIRST + 12):
        rgb = np.concatenate([left.read(frame).rgb, right.read(frame).rgb], axis=1)
        spec = exr.new_spec(rgb.shape[1], rgb.shape[0], ["R", "G", "B"], np.float16)
        exr.write_image(str(Path(folder) / f"two_face.{frame:04d}.exr"), rgb.astype(np.float16), spec)
    return pattern


def _cuda_available() -> bool:
    import onnxruntime as ort

    from facegraft.inference.models.runtime import _gpu_present

    return _gpu_present() and "CUDAExecutionProvider" in ort.get_available_providers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run only where a CUDA GPU answers."""
    if any("gpu" in item.keywords for item in items) and not _cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
