"""Reading a FaceGraft node's knobs, its id and its folder in the cache.

Every knob is read through :func:`value`, which tolerates a missing knob: a script saved with an
older or newer gizmo still opens and renders with defaults for what it lacks.
"""
import hashlib
import os
import random
from typing import Any, List, Optional

import nuke

from . import paths
from .errors import NodeError

PLATE_WRITE = "PlateWrite"
HOLDOUT_WRITE = "HoldoutWrite"
RENDER_READ = "RenderRead"
SWAP_COLOUR = "SwapColour"
ID_KNOB = "node_id"


def value(node: nuke.Node, name: str, default: Any = None) -> Any:
    """The knob's value, or ``default`` when the node has no such knob."""
    knob = node.knob(name)
    if knob is None:
        return default
    return knob.value()


def set_value(node: nuke.Node, name: str, new: Any) -> bool:
    """Set a knob if the node has it (an expression or animation on it is removed first)."""
    knob = node.knob(name)
    if knob is None:
        return False
    if isinstance(knob, nuke.Array_Knob) and not isinstance(knob, nuke.Enumeration_Knob) and knob.isAnimated():
        knob.clearAnimated()
    knob.setValue(new)
    return True


def text(node: nuke.Node, name: str, default: str = "") -> str:
    """A string knob's value, stripped; ``default`` when missing or empty."""
    found = value(node, name, None)
    if found is None:
        return default
    found = str(found).strip()
    return found or default


def raw(node: nuke.Node, name: str) -> str:
    """A string knob's text exactly as the gizmo's TCL ``[value ...]`` sees it."""
    found = value(node, name, None)
    return "" if found is None else str(found)


def internal(node: nuke.Node, name: str) -> Optional[nuke.Node]:
    """A node inside the FaceGraft group (None when the gizmo lacks it)."""
    return node.node(name) if isinstance(node, nuke.Group) else None


def script_path() -> Optional[str]:
    """The saved script's path as Nuke's ``root.name`` holds it, or None for an unsaved script."""
    name = nuke.root().name()
    if not name or name == "Root":
        return None
    return name.replace("\\", "/")


def all_facegraft(node_class: str) -> List[nuke.Node]:
    """Every node of ``node_class`` in the script, inside groups too."""
    return [n for n in nuke.allNodes(node_class, nuke.root(), True)]


def new_id(seed: str = "") -> str:
    """A short id; from ``seed`` when given, so a copy made the same way gets the same id on every load."""
    if seed:
        return hashlib.sha1(seed.encode("utf-8")).hexdigest()[:10]
    return f"{random.getrandbits(40):010x}"


def ensure_id(node: nuke.Node, node_class: str) -> str:
    """The node's id; a new node gets one, a copy of another node in the script gets its own."""
    knob = node.knob(ID_KNOB)
    if knob is None:
        raise NodeError(f"{node.name()}: this FaceGraft node has no 'node_id' knob; re-create it from the "
                        "FaceGraft menu (the gizmo on NUKE_PATH is older than the plugin).")
    current = str(knob.value()).strip()
    others = {str(value(n, ID_KNOB, "")).strip() for n in all_facegraft(node_class) if n is not node}
    if current and current not in others:
        return current
    fresh = new_id(current + "/" + node.fullName()) if current else new_id()
    while fresh in others:
        fresh = new_id(fresh)
    knob.setValue(fresh)
    return fresh


def folder(node: nuke.Node, node_class: str) -> str:
    """The node's folder in the cache (see :mod:`paths`); NodeError for an unsaved script."""
    script = script_path()
    if script is None:
        raise NodeError(f"{node.name()}: save the script first: the render is kept with it "
                        "(CACHE/SCRIPT/NODE_ID in the cache folder).")
    return paths.node_folder(raw(node, "cache_folder"), script, ensure_id(node, node_class))


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


def absolute(path: str) -> str:
    """The path as the CLI gets it (absolute, forward slashes)."""
    return os.path.abspath(path).replace("\\", "/") if path else path
