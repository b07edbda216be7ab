"""FaceGraft for Nuke: render-safe set-up (no UI). Put this folder on NUKE_PATH."""
import nuke

import facegraft_nuke

for _folder in facegraft_nuke.gizmo_dirs():
    nuke.pluginAddPath(_folder)
