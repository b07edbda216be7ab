"""init.py adds the gizmo folder and the render-safe callbacks (no UI); menu.py adds the toolbar entries, the menu
and the knob callbacks."""
from __future__ import annotations

import runpy

import nuke
from facegraft_nuke import lifecycle
from nuke_support import PLUGIN, REPO


def test_init_adds_the_gizmo_folder_and_the_callbacks_only(fake: object) -> None:
    lifecycle.uninstall_for_tests()
    runpy.run_path(str(PLUGIN / "init.py"))
    assert nuke.recorded("pluginAddPath") == [("pluginAddPath", str(REPO / "gizmos"))]
    assert not nuke.recorded("addCommand") and not nuke.recorded("addMenu")
    registered = {(c[0], c[2]) for c in nuke.calls if c[0].startswith("addOn")}
    assert registered == {("addOnCreate", "FaceGraft"), ("addOnCreate", "FaceGraftApply"),
                          ("addOnUserCreate", "FaceGraft"), ("addOnDestroy", "FaceGraft"), ("addOnScriptClose", "*")}


def test_menu_creates_both_nodes_from_the_toolbar_with_their_icons(fake: object) -> None:
    runpy.run_path(str(PLUGIN / "menu.py"))
    toolbar = nuke.toolbar("Nodes")
    assert toolbar is not None
    toolbar.items["FaceGraft/FaceGraft"]()
    toolbar.items["FaceGraft/FaceGraftApply"]()
    assert ("createNode", "FaceGraft", "") in nuke.calls and ("createNode", "FaceGraftApply", "") in nuke.calls
    icons = {c[2]: c[3] for c in nuke.recorded("addCommand") if c[1] == "Nodes"}
    assert icons == {"FaceGraft/FaceGraft": "FaceGraft.png", "FaceGraft/FaceGraftApply": "FaceGraftApply.png"}
    assert all((REPO / "gizmos" / icon).is_file() for icon in icons.values())
    assert {"FaceGraft node", "Render selected FaceGraft", "Train occlusion on selected FaceGraft",
            "Cancel all FaceGraft renders"} <= set(
        nuke.menu("Nuke").items["FaceGraft"].items)
    knob_changed = {c[2]: c[1].__name__ for c in nuke.recorded("addKnobChanged")}
    assert knob_changed == {"FaceGraft": "knob_changed", "FaceGraftApply": "knob_changed"}
