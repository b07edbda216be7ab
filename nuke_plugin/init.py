"""FaceGraft for Nuke: render-safe set-up (no UI). Put this folder on NUKE_PATH -- on the farm too.

Adds the gizmo folder and the node callbacks (node ids, the swap's colour conversion, cancelling
renders when the script closes), which ``nuke -t`` and farm renders of comps need as much as the GUI.
"""
import nuke

import facegraft_nuke
from facegraft_nuke import lifecycle

for _folder in facegraft_nuke.gizmo_dirs():
    nuke.pluginAddPath(_folder)

lifecycle.install()
