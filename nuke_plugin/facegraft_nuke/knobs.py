"""Knob callbacks of the FaceGraft node: Render, Cancel, Train occlusion, Submit to farm, Load farm render,
frame range, model info.

They run in Nuke's main thread and return at once: the work runs in :mod:`facegraft_nuke.bridge`
jobs. What the compositor must fix is shown as a message, never raised into Nuke.
"""
from typing import Any, Optional

import nuke

from . import farm, model_info, nodes, occlusion, rendering
from .errors import NodeError


def _node(node: Optional[nuke.Node]) -> nuke.Node:
    return node if node is not None else nuke.thisNode()


def render(node: Optional[nuke.Node] = None) -> Optional[Any]:
    """The Render button: cache the inputs, then track and render in the background."""
    node = _node(node)
    try:
        return rendering.start(node)
    except NodeError as exc:
        nuke.message(str(exc))
        return None


def train_occlusion(node: Optional[nuke.Node] = None) -> Optional[Any]:
    """The Train occlusion button: cache the holdout's keyframes, then track if needed and train the shot's
    occlusion model in the background; the render uses it afterwards."""
    node = _node(node)
    try:
        return occlusion.start(node)
    except NodeError as exc:
        nuke.message(str(exc))
        return None


def cancel(node: Optional[nuke.Node] = None) -> bool:
    """The Cancel button: stop this node's render, training or submission (frames already written stay)."""
    return rendering.cancel(_node(node))


def use_input_range(node: Optional[nuke.Node] = None) -> None:
    """The 'from input' button: take the frame range of the plate input (the script's when none)."""
    node = _node(node)
    plate = node.input(0)
    source = plate if plate is not None else nuke.root()
    nodes.set_value(node, "first_frame", int(source.firstFrame()))
    nodes.set_value(node, "last_frame", int(source.lastFrame()))


def submit_farm(node: Optional[nuke.Node] = None) -> Optional[Any]:
    """Submit to farm: cache the inputs, submit in the background, show the job id or the bundle folder."""
    node = _node(node)
    try:
        return farm.submit(node)
    except NodeError as exc:
        nuke.message(str(exc))
        return None


def load_farm_render(node: Optional[nuke.Node] = None) -> bool:
    """Load farm render: show the farm's frames once they are all on disk."""
    node = _node(node)
    try:
        farm.load_render(node)
    except NodeError as exc:
        nuke.message(str(exc))
        return False
    return True


def knob_changed(node: Optional[nuke.Node] = None, knob: Optional[nuke.Knob] = None) -> None:
    """Registered for FaceGraft nodes: describe the model when it changes (or when the panel opens and the
    description is missing or stale: a file check, no process)."""
    node = _node(node)
    knob = knob if knob is not None else nuke.thisKnob()
    if knob is None:
        return
    if knob.name() in ("model_file", "python", "showPanel"):
        model_info.refresh(node)
