"""FaceGraft for Nuke: the Nodes toolbar entry, the FaceGraft menu and the node's knob callback."""
import nuke

import facegraft_nuke
from facegraft_nuke import knobs


def _create() -> nuke.Node:
    return nuke.createNode(facegraft_nuke.NODE_CLASS)


_toolbar = nuke.toolbar("Nodes")
if _toolbar is not None:
    _toolbar.addCommand("FaceGraft/FaceGraft", _create, icon="FaceGraft.png")

_menu = nuke.menu("Nuke").addMenu("FaceGraft")
_menu.addCommand("FaceGraft node", _create)
_menu.addCommand("Render selected FaceGraft", lambda: knobs.render(nuke.selectedNode()))
_menu.addCommand("Cancel selected FaceGraft", lambda: knobs.cancel(nuke.selectedNode()))

nuke.addKnobChanged(knobs.knob_changed, nodeClass=facegraft_nuke.NODE_CLASS)
