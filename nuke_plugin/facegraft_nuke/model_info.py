"""Shows a model's resolution, identities and colour space on the node (``facegraft model-info``)."""
import json
import os
import subprocess
from typing import Optional

import nuke

from . import bridge, commands, config, nodes

INFO_KNOB = "model_info"


def describe(python: str, model: str) -> str:
    """The one-line description of ``model``, or what went wrong reading it (runs the CLI: call off the UI thread)."""
    try:
        done = bridge.run_text(commands.model_info_argv(config.cli_command(python), model), timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run FaceGraft ({python}): {exc}"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return "cannot read the model: " + (lines[-1] if lines else f"exit code {done.returncode}")
    try:
        info = json.loads(done.stdout)
    except ValueError:
        return "cannot read the model: model-info printed no JSON"
    return commands.describe_model(info if isinstance(info, dict) else {})


def refresh(node: nuke.Node) -> Optional[object]:
    """Update the node's model description in the background; returns the thread (None when nothing ran)."""
    model = nodes.text(node, "model_file")
    if not model:
        nodes.set_value(node, INFO_KNOB, "no model")
        return None
    if not os.path.isfile(model):
        nodes.set_value(node, INFO_KNOB, "model file not found: " + model)
        return None
    try:
        python = config.find_python(nodes.text(node, "python"))
    except config.ConfigError as exc:
        nodes.set_value(node, INFO_KNOB, str(exc))
        return None
    nodes.set_value(node, INFO_KNOB, "reading model...")

    def work() -> None:
        text = describe(python, model)
        nuke.executeInMainThread(_show, args=(node, model, text))

    return bridge.in_background("FaceGraft model-info", work)


def _show(node: nuke.Node, model: str, text: str) -> None:
    try:
        if nodes.text(node, "model_file") == model:  # the user may have picked another since
            nodes.set_value(node, INFO_KNOB, text)
    except ValueError:  # the node was deleted meanwhile
        pass
