"""The callbacks Nuke runs for FaceGraft nodes; ``init.py`` installs them, so they run in the GUI, in
``nuke -t`` and in farm renders of comps alike.

* a node is created, pasted or loaded: it gets its id (a copy gets its own, derived from the
  original's id and its name, so reopening an unsaved copy gives it the same one) and its internal
  colour conversion is set from its knobs and the script's working space;
* a node is created by the user: it takes the studio's farm defaults (``nuke.json``);
* a node is deleted: its render or submission is cancelled;
* the script closes or Nuke quits: every render and submission is cancelled and its processes
  stopped (``atexit`` covers a Python that exits without closing the script).

A callback never raises into Nuke: what it cannot do is said with ``nuke.warning``.
"""
import atexit
from typing import Callable

import nuke

from . import apply, bridge, farm, nodes, rendering
from .errors import NodeError

_installed: list = []


def _quietly(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except (NodeError, ValueError, RuntimeError) as exc:
        nuke.warning(f"FaceGraft ({what}): {exc}")


def on_create() -> None:
    node = nuke.thisNode()
    if node.Class() == apply.APPLY_CLASS:
        _quietly("colour", lambda: apply.sync_colour(node))
        return
    if node.knob(nodes.ID_KNOB) is not None:
        _quietly("node id", lambda: _ensure_id(node))
    _quietly("colour", lambda: rendering.sync_colour(node))


def _ensure_id(node: nuke.Node) -> None:
    nodes.ensure_id(node, rendering.NODE_CLASS)


def on_user_create() -> None:
    node = nuke.thisNode()
    _quietly("studio defaults", lambda: farm.apply_studio_defaults(node))


def on_destroy() -> None:
    node = nuke.thisNode()
    if node.knob(nodes.ID_KNOB) is None or not nodes.text(node, nodes.ID_KNOB):
        return
    job = bridge.running("FaceGraft:" + nodes.text(node, nodes.ID_KNOB))
    if job is not None:
        job.cancel()


def on_script_close() -> None:
    bridge.cancel_all()


def install() -> None:
    """Register the callbacks (once per session)."""
    if _installed:
        return
    _installed.append(True)
    for node_class in (rendering.NODE_CLASS, apply.APPLY_CLASS):
        nuke.addOnCreate(on_create, nodeClass=node_class)
    nuke.addOnUserCreate(on_user_create, nodeClass=rendering.NODE_CLASS)
    nuke.addOnDestroy(on_destroy, nodeClass=rendering.NODE_CLASS)
    nuke.addOnScriptClose(on_script_close)
    atexit.register(bridge.cancel_all)


def uninstall_for_tests() -> None:
    """Let a test install the callbacks into a fresh fake ``nuke``."""
    del _installed[:]
