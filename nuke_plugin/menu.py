"""FaceGraft for Nuke: the Nodes toolbar entries, the FaceGraft menu and the knob callbacks."""
import nuke

import facegraft_nuke
from facegraft_nuke import apply, bridge, knobs


def _create() -> nuke.Node:
    return nuke.createNode(facegraft_nuke.NODE_CLASS)


def _create_apply() -> nuke.Node:
    return nuke.createNode(facegraft_nuke.APPLY_CLASS)


_toolbar = nuke.toolbar("Nodes")
if _toolbar is not None:
    _toolbar.addCommand("FaceGraft/FaceGraft", _create, icon="FaceGraft.png")
    _toolbar.addCommand("FaceGraft/FaceGraftApply", _create_apply, icon="FaceGraftApply.png")

_menu = nuke.menu("Nuke").addMenu("FaceGraft")
_menu.addCommand("FaceGraft node", _create, icon="FaceGraft.png")
_menu.addCommand("FaceGraftApply node", _create_apply, icon="FaceGraftApply.png")
_menu.addCommand("Render selected FaceGraft", lambda: knobs.render(nuke.selectedNode()))
_menu.addCommand("Train occlusion on selected FaceGraft", lambda: knobs.train_occlusion(nuke.selectedNode()))
_menu.addCommand("Cancel selected FaceGraft", lambda: knobs.cancel(nuke.selectedNode()))
_menu.addCommand("Submit selected FaceGraft to farm", lambda: knobs.submit_farm(nuke.selectedNode()))
_menu.addCommand("Cancel all FaceGraft renders", lambda: bridge.cancel_all())

nuke.addKnobChanged(knobs.knob_changed, nodeClass=facegraft_nuke.NODE_CLASS)
nuke.addKnobChanged(apply.knob_changed, nodeClass=facegraft_nuke.APPLY_CLASS)
