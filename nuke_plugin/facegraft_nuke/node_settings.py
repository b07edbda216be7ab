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


def occlusion_mode(node: nuke.Node) -> str:
    """The 'occlusion' menu: auto, none or shot model (auto for a node saved without the knob)."""
    return nodes.enum(node, "occlusion", list(commands.OCCLUSION_MENU), commands.default("occlusion"))


def shot_model(folder: str) -> str:
    """Where the node keeps the shot's occlusion model (Train occlusion writes it)."""
    return paths.in_folder(folder, paths.OCCLUSION_NAME)


def _occlusion(node: nuke.Node, folder: str, training: bool) -> str:
    """What ``--occlusion`` gets: auto, none, or the shot's occlusion model (which must be trained)."""
    mode = occlusion_mode(node)
    if mode != commands.SHOT_MODEL:
        return mode
    model = shot_model(folder)
    if not training and not os.path.isfile(model):
        raise NodeError(f"{node.name()}: 'occlusion' is 'shot model', but the shot's occlusion model is not trained "
                        "yet: connect the occluder's roto to the 'holdout' input and press Train occlusion (or set "
                        "'occlusion' to auto).")
    return model


def read(node: nuke.Node, training: bool = False) -> commands.Settings:
    """The node's render settings; NodeError says what to fix.

    With 'occlusion' set to 'shot model' the holdout input is what the shot's occlusion model learned
    from: the render uses the model, not the holdout (between its keyframes a roto is only an
    interpolation). ``training``: the settings of Train occlusion, which needs the holdout."""
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
    if training and node.input(1) is None:
        raise NodeError(f"{node.name()}: connect the roto of what passes in front of the face (its keyframes) to "
                        "the 'holdout' input: Train occlusion learns from it.")
    occlusion = _occlusion(node, folder, training)
    held = node.input(1) is not None and (training or occlusion_mode(node) != commands.SHOT_MODEL)
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
        holdout=paths.in_folder(folder, paths.HOLDOUT_NAME) if held else None,
        holdout_channel=commands.HOLDOUT_CHANNELS.get(str(nodes.value(node, "holdout_channel", "")),
                                                      commands.default("holdout_channel")),
        occlusion=occlusion,
    )


def node_folder(settings: commands.Settings) -> str:
    """The node's cache folder (where its render goes)."""
    return os.path.dirname(settings.out)
