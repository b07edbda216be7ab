"""FaceGraft inside Nuke: menus, knob callbacks and the bridge to the FaceGraft CLI.

Runs in Nuke's own Python (3.7 in Nuke 13 to 3.11 in Nuke 16) and imports only the
standard library and ``nuke``; the heavy work runs in FaceGraft's own Python as subprocesses.

For scripts (``nuke -t``, pipeline tools)::

    import facegraft_nuke
    done = facegraft_nuke.render(nuke.toNode("FaceGraft1"), block=True)   # RenderError if it fails
    print(done.out, done.first, done.last, done.skipped)
    facegraft_nuke.submit(nuke.toNode("FaceGraft1"), block=True)           # the scheduler's answer
    trained = facegraft_nuke.train_occlusion(nuke.toNode("FaceGraft1"), block=True)  # from the holdout's keys
    print(trained.model, trained.keyframes, trained.preview)
"""
import os
from typing import Any, List, Optional

from .errors import NodeError, RenderError

__version__ = "0.2.0"
__all__ = ["NODE_CLASS", "APPLY_CLASS", "NodeError", "RenderError", "render", "submit", "train_occlusion", "cancel",
           "gizmo_dirs"]

NODE_CLASS = "FaceGraft"
APPLY_CLASS = "FaceGraftApply"


def gizmo_dirs() -> List[str]:
    """Folders that may hold FaceGraft.gizmo: ``gizmos`` beside this package or beside its parent."""
    here = os.path.dirname(os.path.abspath(__file__))
    plugin_root = os.path.dirname(here)
    candidates = [os.path.join(plugin_root, "gizmos"), os.path.join(os.path.dirname(plugin_root), "gizmos")]
    return [path for path in candidates if os.path.isfile(os.path.join(path, NODE_CLASS + ".gizmo"))]


def render(node: Optional[Any] = None, block: bool = False) -> Any:
    """Render a FaceGraft node (default: the node of the current callback).

    ``block=False``: start in the background and return the job (what the Render button does).
    ``block=True``: run here and return what was rendered (``out``, ``first``, ``last``, ``skipped``,
    ``held``, ``no_face``, ``warnings``); RenderError when the render fails or is cancelled, NodeError
    when something on the node must be fixed first. Use it in ``nuke -t`` and pipeline scripts.
    """
    import nuke

    from . import rendering

    return rendering.start(node if node is not None else nuke.thisNode(), block=block)


def submit(node: Optional[Any] = None, block: bool = False) -> Any:
    """Submit a FaceGraft node to the farm; with ``block=True`` return the scheduler's answer (job ids,
    job name or bundle folder)."""
    import nuke

    from . import farm

    return farm.submit(node if node is not None else nuke.thisNode(), block=block)


def train_occlusion(node: Optional[Any] = None, block: bool = False) -> Any:
    """Train a FaceGraft node's occlusion model from its holdout input's keyframes (the Train occlusion
    button); with ``block=True`` return what was trained (``model``, ``preview``, ``keyframes``, ``seconds``),
    RenderError when it fails. The node's 'occlusion' is then 'shot model': its renders use the model."""
    import nuke

    from . import occlusion

    return occlusion.start(node if node is not None else nuke.thisNode(), block=block)


def cancel(node: Optional[Any] = None) -> bool:
    """Cancel a FaceGraft node's render, training or submission; False when none runs."""
    import nuke

    from . import rendering

    return rendering.cancel(node if node is not None else nuke.thisNode())
