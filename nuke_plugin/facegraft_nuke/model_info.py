"""Shows a model's resolution, identities and colour space on the node (``facegraft model-info``).

The description is asked for once per model file: the node keeps it with the file's size and date
(``model_info_key``), so opening the panel again -- or reopening the script -- runs nothing unless
the model file, or the FaceGraft Python, changed. Descriptions are also remembered for the session,
so ten nodes with one model ask once.
"""
import json
import os
import subprocess
import threading
from typing import Dict, Optional, Set, Tuple

import nuke

from . import bridge, commands, config, nodes

INFO_KNOB = "model_info"
KEY_KNOB = "model_info_key"
_known: Dict[str, str] = {}
_pending: Set[str] = set()
_lock = threading.Lock()


def describe(python: str, model: str) -> Tuple[bool, str]:
    """``(ok, line)``: the one-line description of ``model``, or what went wrong reading it (runs the CLI:
    call off the UI thread)."""
    try:
        done = bridge.run_text(commands.model_info_argv(config.cli_command(python), model), timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"cannot run FaceGraft ({python}): {exc}"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return False, "cannot read the model: " + (lines[-1] if lines else f"exit code {done.returncode}")
    try:
        info = json.loads(done.stdout)
    except ValueError:
        return False, "cannot read the model: model-info printed no JSON"
    return True, commands.describe_model(info if isinstance(info, dict) else {})


def model_key(python: str, model: str) -> str:
    """What the description depends on: the file (name, size, date) and the FaceGraft that read it."""
    found = os.stat(model)
    return f"{model}|{found.st_size}|{found.st_mtime_ns}|{python}"


def refresh(node: nuke.Node) -> Optional[threading.Thread]:
    """Describe the node's model if the description is missing or stale; the thread when one runs."""
    model = nodes.text(node, "model_file")
    if not model:
        nodes.set_value(node, INFO_KNOB, "no model")
        nodes.set_value(node, KEY_KNOB, "")
        return None
    if not os.path.isfile(model):
        nodes.set_value(node, INFO_KNOB, "model file not found: " + model)
        nodes.set_value(node, KEY_KNOB, "")
        return None
    try:
        python = config.find_python(nodes.text(node, "python"))
    except config.ConfigError as exc:
        nodes.set_value(node, INFO_KNOB, str(exc))
        return None
    key = model_key(python, model)
    if nodes.text(node, KEY_KNOB) == key:
        return None
    with _lock:
        known = _known.get(key)
        busy = key in _pending
        if known is None and not busy:
            _pending.add(key)
    if known is not None:
        _show(node, model, key, True, known)
        return None
    if busy:
        return None
    nodes.set_value(node, INFO_KNOB, "reading model...")

    def work() -> None:
        try:
            ok, text = describe(python, model)
        finally:
            with _lock:
                _pending.discard(key)
        nuke.executeInMainThread(_show, args=(node, model, key, ok, text))

    return bridge.in_background("FaceGraft model-info", work)


def _show(node: nuke.Node, model: str, key: str, ok: bool, text: str) -> None:
    if ok:
        with _lock:
            _known[key] = text
    try:
        if nodes.text(node, "model_file") == model:  # the user may have picked another since
            nodes.set_value(node, INFO_KNOB, text)
            nodes.set_value(node, KEY_KNOB, key if ok else "")  # a failure is asked again next time
    except ValueError:  # the node was deleted meanwhile
        pass


def forget() -> None:
    """Forget the session's descriptions (tests; a reinstalled FaceGraft)."""
    with _lock:
        _known.clear()
        _pending.clear()
