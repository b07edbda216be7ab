"""The fake ``nuke`` module for the Nuke tests (helpers live in nuke_support)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nuke_support import build_apply, build_facegraft, nuke  # noqa: E402  (nuke: the fake)


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    """A fresh fake Nuke with the plugin's callbacks installed (as init.py does), no studio config and no $OCIO."""
    from facegraft_nuke import bridge, lifecycle, model_info

    monkeypatch.delenv("OCIO", raising=False)
    studio = tmp_path / "studio" / "nuke.json"  # a test writes the studio's defaults here when it needs them
    studio.parent.mkdir()
    studio.write_text("{}")
    monkeypatch.setenv("FACEGRAFT_NUKE_CONFIG", str(studio))
    nuke.reset()
    nuke.ProgressTask.instances.clear()
    nuke.ProgressTask.next_cancel_when = None
    nuke.register_node_class("FaceGraft", build_facegraft)
    nuke.register_node_class("FaceGraftApply", build_apply)
    model_info.forget()
    lifecycle.uninstall_for_tests()
    lifecycle.install()
    yield nuke
    bridge.cancel_all(wait=30)
    nuke.reset()
