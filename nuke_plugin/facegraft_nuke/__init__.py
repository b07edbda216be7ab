"""FaceGraft inside Nuke: menus, knob callbacks and the bridge to the FaceGraft CLI.

Runs in Nuke's own Python (3.7 in Nuke 13 to 3.11 in Nuke 16) and imports only the
standard library and ``nuke``; the heavy work runs in FaceGraft's own Python as subprocesses.
"""
import os
from typing import List

__version__ = "0.1.0"

NODE_CLASS = "FaceGraft"


def gizmo_dirs() -> List[str]:
    """Folders that may hold FaceGraft.gizmo: ``gizmos`` beside this package or beside its parent."""
    here = os.path.dirname(os.path.abspath(__file__))
    plugin_root = os.path.dirname(here)
    candidates = [os.path.join(plugin_root, "gizmos"), os.path.join(os.path.dirname(plugin_root), "gizmos")]
    return [path for path in candidates if os.path.isfile(os.path.join(path, NODE_CLASS + ".gizmo"))]
