"""The fake ``nuke`` module for the Nuke tests (helpers live in nuke_support)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nuke_support import build_facegraft, nuke  # noqa: E402  (nuke: the fake)


@pytest.fixture()
def fake() -> Iterator[object]:
    nuke.reset()
    nuke.ProgressTask.instances.clear()
    nuke.ProgressTask.next_cancel_when = None
    nuke.register_node_class("FaceGraft", build_facegraft)
    yield nuke
    nuke.reset()
