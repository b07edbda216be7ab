"""Reading the FaceGraft node's knobs and the cache layout it shares with the gizmo.

Every knob is read through :func:`value`, which tolerates a missing knob: a script saved
with an older or newer gizmo still opens and renders with defaults for what it lacks.
"""
import os
from typing import Any, List, Optional

import nuke

# The paths the gizmo's internal Write and Read nodes use (keep in step with FaceGraft.gizmo).
PLATE_NAME = "plate.####.exr"
HOLDOUT_NAME = "holdout.####.exr"
RENDER_NAME = "render.####.exr"
TRACK_NAME = "shot.fgtrack.json"

PLATE_WRITE = "PlateWrite"
HOLDOUT_WRITE = "HoldoutWrite"
RENDER_READ = "RenderRead"


def value(node: nuke.Node, name: str, default: Any = None) -> Any:
    """The knob's value, or ``default`` when the node has no such knob."""
    knob = node.knob(name)
    if knob is None:
        return default
    return knob.value()


def set_value(node: nuke.Node, name: str, new: Any) -> bool:
    """Set a knob if the node has it; False when it does not."""
    knob = node.knob(name)
    if knob is None:
        return False
    knob.setValue(new)
    return True


def text(node: nuke.Node, name: str, default: str = "") -> str:
    """A string knob's value, stripped; ``default`` when missing or empty."""
    found = value(node, name, None)
    if found is None:
        return default
    found = str(found).strip()
    return found or default


def internal(node: nuke.Node, name: str) -> Optional[nuke.Node]:
    """A node inside the FaceGraft group (None when the gizmo lacks it)."""
    return node.node(name) if isinstance(node, nuke.Group) else None


def script_folder() -> Optional[str]:
    """The folder of the saved script, or None for an unsaved one."""
    name = nuke.root().name()
    if not name or name == "Root":
        return None
    return os.path.dirname(os.path.abspath(name))


def cache_folder(node: nuke.Node) -> Optional[str]:
    """The node's cache folder: the knob, else ``facegraft`` beside the saved script."""
    chosen = text(node, "cache_folder")
    if chosen:
        return chosen
    folder = script_folder()
    return os.path.join(folder, "facegraft").replace("\\", "/") if folder else None


def node_cache(node: nuke.Node, folder: str) -> str:
    """The per-node folder inside the cache folder (matches the gizmo's expressions)."""
    return folder.rstrip("/\\") + "/" + node.name()


def cache_path(node: nuke.Node, folder: str, file_name: str) -> str:
    return node_cache(node, folder) + "/" + file_name


def frame_range(node: nuke.Node) -> List[int]:
    """``[first, last]`` from the node's frame range knobs (the script's range when absent)."""
    root = nuke.root()
    first = int(value(node, "first_frame", root.firstFrame()))
    last = int(value(node, "last_frame", root.lastFrame()))
    return [first, last]


def enum(node: nuke.Node, name: str, choices: List[str], default: str) -> str:
    """An enumeration knob's value, constrained to what the CLI accepts."""
    found = str(value(node, name, default) or default)
    return found if found in choices else default
