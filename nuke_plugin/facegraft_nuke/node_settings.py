"""A FaceGraft node read into the settings of one render (:class:`commands.Settings`).

Everything the compositor must fix first is a :class:`NodeError` naming the node and saying what
to do: no plate, no model, an unsaved script, a knob animated over the range (the CLI takes one
value per shot), a colour config that cannot be found.
"""
import os
from typing import Optional

import nuke

from . import colour, commands, config, nodes, paths
from .errors import NodeError

NODE_CLASS = "FaceGraft"


def plate_source(node: nuke.Node) -> Optional[nuke.Node]:
    """The upstream Read when input 0 is a plain EXR Read (through Dots), else None (the plate is cached)."""
    upstream = node.input(0)
    while upstream is not None and upstream.Class() == "Dot":
        upstream = upstream.input(0)
    if upstream is None or upstream.Class() != "Read":
        return None
    if nodes.value(upstream, "disable", False) or nodes.value(upstream, "raw", False):
        return None
    path = nuke.filename(upstream)
    if not path or not path.lower().endswith(".exr") or "[" in path:
        return None
    return upstream


def constant(node: nuke.Node, name: str, label: str, first: int, last: int, default: float) -> float:
    """A numeric knob's one value over the frames; NodeError when it is animated to different values."""
    knob = node.knob(name)
    if knob is None:
        return float(default)
    if isinstance(knob, nuke.Array_Knob) and knob.isAnimated():
        values = [float(knob.getValueAt(float(frame))) for frame in range(first, last + 1)]
        low, high = min(values), max(values)
        if high - low > 1e-6:
            changes = [first + i for i in range(1, len(values)) if abs(values[i] - values[i - 1]) > 1e-6]
            raise NodeError(
                f"{node.name()}: '{label}' is animated ({low:g} to {high:g} over frames {first}-{last}, changing "
                f"at frame {changes[0]}). FaceGraft renders one {label} per shot: remove the animation, or "
                f"render the frame ranges that share a value separately, or shape the edge in the comp with "
                f"FaceGraftApply.")
        return values[0]
    return float(knob.value())


def _enum(node: nuke.Node, knob: str) -> str:
    """A menu knob's value, or the CLI's default when the node lacks the knob or holds a retired entry."""
    name = commands.KNOB_SETTINGS[knob]
    return nodes.enum(node, knob, commands.choices(name), commands.default(name))


def read(node: nuke.Node) -> commands.Settings:
    """The node's render settings; NodeError says what to fix."""
    if node.input(0) is None:
        raise NodeError(f"{node.name()}: connect a plate to the 'plate' input.")
    model = nodes.text(node, "model_file")
    if not model:
        raise NodeError(f"{node.name()}: choose a face model (.onnx) in 'model file'.")
    if not os.path.isfile(model):
        raise NodeError(f"{node.name()}: the model file {model} does not exist.")
    first, last = nodes.frame_range(node)
    if last < first:
        raise NodeError(f"{node.name()}: the frame range {first}-{last} ends before it starts.")
    folder = nodes.folder(node, NODE_CLASS)
    try:
        python = config.find_python(nodes.text(node, "python"))
    except config.ConfigError as exc:
        raise NodeError(f"{node.name()}: {exc}") from None
    source = plate_source(node)
    plate = nuke.filename(source) if source is not None else None
    ocio_config = nodes.text(node, "ocio_config") or colour.check_config(colour.script_config())
    return commands.Settings(
        cli=config.cli_command(python),
        plate=nodes.absolute(plate) if plate else paths.in_folder(folder, paths.PLATE_NAME),
        model=nodes.absolute(model),
        track=paths.in_folder(folder, paths.TRACK_NAME),
        out=paths.in_folder(folder, paths.RENDER_NAME),
        first=first,
        last=last,
        face=nodes.text(node, "face", commands.default("face")),
        smoothing=constant(node, "smoothing", "smoothing", first, last, commands.default("smooth")),
        plate_colorspace=colour.plate_space(nodes.text(node, "plate_colorspace"), source),
        ocio_config=ocio_config,
        erode=constant(node, "erode", "erode", first, last, commands.default("erode")),
        feather=constant(node, "feather", "feather", first, last, commands.default("feather")),
        color_match=_enum(node, "color_match"),
        blend=_enum(node, "blend"),
        device=_enum(node, "device"),
        on_error=_enum(node, "on_error"),
        holdout=paths.in_folder(folder, paths.HOLDOUT_NAME) if node.input(1) is not None else None,
        holdout_channel=commands.HOLDOUT_CHANNELS.get(str(nodes.value(node, "holdout_channel", "")),
                                                      commands.default("holdout_channel")),
    )


def node_folder(settings: commands.Settings) -> str:
    """The node's cache folder (where its render goes)."""
    return os.path.dirname(settings.out)
