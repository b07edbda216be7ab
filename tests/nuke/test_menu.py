"""init.py adds the gizmo folder (no UI); menu.py adds the toolbar entry, the menu and the knob callback."""
from __future__ import annotations

import runpy

import nuke
from nuke_support import PLUGIN, REPO


def test_init_adds_the_gizmo_folder_only(fake: object) -> None:
    runpy.run_path(str(PLUGIN / "init.py"))
    assert nuke.recorded("pluginAddPath") == [("pluginAddPath", str(REPO / "gizmos"))]
    assert not nuke.recorded("addCommand") and not nuke.recorded("addMenu")


def test_menu_creates_the_node_from_the_toolbar(fake: object) -> None:
    runpy.run_path(str(PLUGIN / "menu.py"))
    toolbar = nuke.toolbar("Nodes")
    assert toolbar is not None
    toolbar.items["FaceGraft/FaceGraft"]()
    assert ("createNode", "FaceGraft", "") in nuke.calls
    assert "FaceGraft" in nuke.menu("Nuke").items
    (registered,) = nuke.recorded("addKnobChanged")
    assert registered[2] == "FaceGraft" and registered[1].__name__ == "knob_changed"
