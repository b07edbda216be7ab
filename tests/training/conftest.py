"""Fixtures for the training tests: small facesets and a tiny trained run (32 px, a few steps)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import clip_faceset, tiny_config  # noqa: E402

from facegraft.training.loop import train  # noqa: E402


@pytest.fixture(scope="session")
def clip_facesets(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two 32 px facesets (12 faces each) cut from the sample clips at fixed boxes: 'man' and 'woman'."""
    root = tmp_path_factory.mktemp("facesets")
    return [clip_faceset(root / "man", "man"), clip_faceset(root / "woman", "woman")]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, clip_facesets: list[Path]) -> Path:
    """A run trained for 8 steps on the clip facesets."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_config(clip_facesets, out, steps=8))
    return out


@pytest.fixture(scope="session")
def man_extract(tmp_path_factory: pytest.TempPathFactory, single_face_plate: str):
    """A 64 px faceset extracted from the single-face EXR plate with the real tracker (no duplicate drop)."""
    from facegraft.training.extract import extract

    out = tmp_path_factory.mktemp("extract") / "man"
    return extract(single_face_plate, identity="man", out=out, res=64, min_motion=0.0)
