"""FaceGraftApply: comp a delivered FaceGraft render onto the live plate (no CLI, no model).

The gizmo does the work in Nuke nodes; the Python here only fills in the frame range from the
files, and points the internal colour conversion of the swap at the render's colour space
(gizmo internals are not saved with the script, so this runs on every load too).
"""
import os
import re
from typing import List, Optional

import nuke

from . import colour, nodes
from .errors import NodeError

APPLY_CLASS = "FaceGraftApply"
_TRAILING_RANGE = re.compile(r"^(.*\S)\s+(-?\d+)-(-?\d+)$")


def _node(node: Optional[nuke.Node]) -> nuke.Node:
    return node if node is not None else nuke.thisNode()


def frames_on_disk(pattern: str) -> List[int]:
    """The frame numbers of ``pattern``'s files (``render.####.exr``, ``render.%04d.exr``)."""
    folder, name = os.path.split(pattern)
    match = re.search(r"#+|%0?\d*d", name)
    if match is None:
        return []
    head, tail = name[:match.start()], name[match.end():]
    numbered = re.compile("^" + re.escape(head) + r"(-?\d+)" + re.escape(tail) + "$")
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    found = [numbered.match(n) for n in names]
    return sorted(int(m.group(1)) for m in found if m is not None)


def detect_range(node: Optional[nuke.Node] = None) -> List[int]:
    """The 'from files' button: the render's first and last frame on disk."""
    node = _node(node)
    pattern = nodes.text(node, "file")
    frames = frames_on_disk(pattern)
    if not frames:
        message = f"{node.name()}: no frames of {pattern or '(no file)'} on disk."
        nodes.set_value(node, "status", message)
        raise NodeError(message)
    nodes.set_value(node, "first_frame", frames[0])
    nodes.set_value(node, "last_frame", frames[-1])
    gaps = frames[-1] - frames[0] + 1 - len(frames)
    nodes.set_value(node, "status", f"frames {frames[0]}-{frames[-1]}" + (f" ({gaps} missing)" if gaps else ""))
    return [frames[0], frames[-1]]


def sync_colour(node: nuke.Node) -> None:
    """The swap is converted from the render's colour space (empty: the working space) to the working space."""
    convert = nodes.internal(node, "SwapColour")
    if convert is None:
        return
    working = colour.working_space()
    for knob, space in (("in_colorspace", nodes.text(node, "render_colorspace") or working),
                        ("out_colorspace", working)):
        found = convert.knob(knob)
        if found is not None:
            try:
                found.setValue(space)
            except (ValueError, RuntimeError):
                raise NodeError(f"{node.name()}: the colour space '{space}' is not in the script's OCIO config.") \
                    from None


def knob_changed(node: Optional[nuke.Node] = None, knob: Optional[nuke.Knob] = None) -> None:
    """A new render file: take a range typed or browsed with it (``path 1001-1100``), else read it from disk."""
    node = _node(node)
    knob = knob if knob is not None else nuke.thisKnob()
    if knob is None:
        return
    try:
        if knob.name() == "file":
            typed = _TRAILING_RANGE.match(nodes.text(node, "file"))
            if typed:
                nodes.set_value(node, "file", typed.group(1))
                nodes.set_value(node, "first_frame", int(typed.group(2)))
                nodes.set_value(node, "last_frame", int(typed.group(3)))
            elif nodes.text(node, "file"):
                detect_range(node)
        elif knob.name() == "render_colorspace":
            sync_colour(node)
    except NodeError as exc:
        nodes.set_value(node, "status", str(exc))
