"""Knob callbacks of the FaceGraft node: Render, Cancel, Submit to farm, frame range, model info.

They run in Nuke's main thread and return at once: the work itself runs in
:mod:`facegraft_nuke.bridge` jobs. Every knob is read through ``nodes.value`` so a script
saved with another version of the gizmo still works.
"""
import json
import os
from typing import List, Optional

import nuke

from . import bridge, commands, config, model_info, nodes


class NodeError(Exception):
    """Something on the node must be fixed before rendering; the message says what."""


def _node(node: Optional[nuke.Node]) -> nuke.Node:
    return node if node is not None else nuke.thisNode()


def _status(node: nuke.Node, message: str) -> None:
    nodes.set_value(node, "status", message)


def plate_source(node: nuke.Node) -> Optional[str]:
    """The plate's own EXR sequence when input 0 is a plain EXR Read (through Dots), else None."""
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
    return path


def settings(node: nuke.Node) -> commands.Settings:
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
    folder = nodes.cache_folder(node)
    if not folder:
        raise NodeError(f"{node.name()}: save the script first, or set a 'cache folder'.")
    try:
        python = config.find_python(nodes.text(node, "python"))
    except config.ConfigError as exc:
        raise NodeError(str(exc)) from None
    plate = plate_source(node) or nodes.cache_path(node, folder, nodes.PLATE_NAME)
    holdout = nodes.cache_path(node, folder, nodes.HOLDOUT_NAME) if node.input(1) is not None else None
    return commands.Settings(
        cli=config.cli_command(python),
        plate=plate,
        model=model,
        track=nodes.cache_path(node, folder, nodes.TRACK_NAME),
        out=nodes.cache_path(node, folder, nodes.RENDER_NAME),
        first=first,
        last=last,
        face=nodes.text(node, "face", commands.default("face")),
        smoothing=float(nodes.value(node, "smoothing", commands.default("smooth"))),
        plate_colorspace=nodes.text(node, "plate_colorspace"),
        ocio_config=nodes.text(node, "ocio_config"),
        erode=float(nodes.value(node, "erode", commands.default("erode"))),
        feather=float(nodes.value(node, "feather", commands.default("feather"))),
        color_match=_enum(node, "color_match"),
        blend=_enum(node, "blend"),
        device=_enum(node, "device"),
        on_error=_enum(node, "on_error"),
        holdout=holdout,
        holdout_channel=commands.HOLDOUT_CHANNELS.get(str(nodes.value(node, "holdout_channel", "")),
                                                      commands.default("holdout_channel")),
    )


def _enum(node: nuke.Node, knob: str) -> str:
    """A menu knob's value, or the CLI's default when the node lacks the knob or holds a retired entry."""
    name = commands.KNOB_SETTINGS[knob]
    return nodes.enum(node, knob, commands.choices(name), commands.default(name))


def write_inputs(node: nuke.Node, chosen: commands.Settings) -> None:
    """Write the plate (unless it is read straight from disk) and the holdout into the cache."""
    if chosen.plate.endswith(nodes.PLATE_NAME):
        _execute(node, nodes.PLATE_WRITE, chosen)
    if chosen.holdout:
        _execute(node, nodes.HOLDOUT_WRITE, chosen)


def _execute(node: nuke.Node, name: str, chosen: commands.Settings) -> None:
    write = nodes.internal(node, name)
    if write is None:
        raise NodeError(f"{node.name()}: the internal {name} is missing; re-create the node from the FaceGraft menu.")
    nuke.execute(write, chosen.first, chosen.last, 1)


def _stamp_path(chosen: commands.Settings, step: str) -> str:
    return os.path.join(os.path.dirname(chosen.out), step + ".args.json")


def _changed(chosen: commands.Settings, step: str, argv: List[str]) -> bool:
    """True when ``step`` last ran with other arguments (or never ran)."""
    try:
        with open(_stamp_path(chosen, step)) as handle:
            return json.load(handle) != argv
    except (OSError, ValueError):
        return True


def _remember(chosen: commands.Settings, step: str, argv: List[str]) -> None:
    try:
        folder = os.path.dirname(chosen.out)
        if not os.path.isdir(folder):
            os.makedirs(folder)
        with open(_stamp_path(chosen, step), "w") as handle:
            json.dump(argv, handle)
    except OSError:
        pass


def plan(chosen: commands.Settings) -> List[bridge.Step]:
    """Track when the plate or tracking settings changed, then render (over old frames if settings changed)."""
    steps = []
    track = commands.track_argv(chosen)
    if _changed(chosen, "track", track) or not os.path.isfile(chosen.track):
        steps.append(bridge.Step("track", track, 1.0))
    render_key = commands.render_argv(chosen)
    overwrite = bool(steps) or _changed(chosen, "render", render_key)
    steps.append(bridge.Step("render", commands.render_argv(chosen, overwrite=overwrite), 3.0))
    return steps


def render(node: Optional[nuke.Node] = None) -> Optional[bridge.Job]:
    """The Render button: cache the inputs, then track and render in the background."""
    node = _node(node)
    key = node.fullName()
    if bridge.running(key) is not None:
        nuke.message(f"{node.name()} is already rendering: wait for it or press Cancel.")
        return None
    try:
        chosen = settings(node)
        write_inputs(node, chosen)
    except NodeError as exc:
        nuke.message(str(exc))
        return None
    except RuntimeError as exc:  # nuke.execute of the cache Write (e.g. a missing plate frame)
        nuke.message(f"{node.name()}: writing the plate to the cache failed: {exc}")
        return None
    steps = plan(chosen)

    def succeeded(warnings: List[str]) -> None:
        for step in steps:
            _remember(chosen, step.label, commands.track_argv(chosen) if step.label == "track"
                      else commands.render_argv(chosen))
        try:
            show_render(node, chosen, warnings)
        except ValueError:  # the node was deleted while it rendered
            pass

    def failed(message: str, cancelled: bool) -> None:
        try:
            _status(node, "cancelled" if cancelled else message.splitlines()[0])
        except ValueError:
            pass

    job = bridge.Job(key, "FaceGraft " + node.name(), steps, succeeded, failed)
    _status(node, f"rendering {chosen.first}-{chosen.last}...")
    job.start()
    return job


def show_render(node: nuke.Node, chosen: commands.Settings, warnings: List[str]) -> None:
    """After a render (main thread): switch the output to the render and reload it."""
    nodes.set_value(node, "rendered", True)
    read = nodes.internal(node, nodes.RENDER_READ)
    if read is not None and read.knob("reload") is not None:
        read["reload"].execute()  # type: ignore[attr-defined]
    text = f"rendered {chosen.first}-{chosen.last}"
    if warnings:
        text += f" with {len(warnings)} warning(s): {warnings[0]}"
    _status(node, text)


def cancel(node: Optional[nuke.Node] = None) -> bool:
    """The Cancel button: stop this node's render (frames already written stay)."""
    node = _node(node)
    job = bridge.running(node.fullName())
    if job is None:
        return False
    job.cancel()
    _status(node, "cancelling...")
    return True


def use_input_range(node: Optional[nuke.Node] = None) -> None:
    """The 'from input' button: take the frame range of the plate input."""
    node = _node(node)
    plate = node.input(0)
    source = plate if plate is not None else nuke.root()
    nodes.set_value(node, "first_frame", int(source.firstFrame()))
    nodes.set_value(node, "last_frame", int(source.lastFrame()))


def submit_farm(node: Optional[nuke.Node] = None) -> None:
    """Submit to farm: cache the inputs, run ``facegraft farm submit`` and show what it said."""
    node = _node(node)
    try:
        chosen = settings(node)
        write_inputs(node, chosen)
    except NodeError as exc:
        nuke.message(str(exc))
        return
    except RuntimeError as exc:
        nuke.message(f"{node.name()}: writing the plate to the cache failed: {exc}")
        return
    engine = _enum(node, "farm_engine")
    argv = commands.farm_argv(chosen, engine, int(nodes.value(node, "farm_chunk", commands.default("chunk"))))
    name = node.name()

    def work() -> None:
        try:
            done = bridge.run_text(argv)
        except (OSError, ValueError) as exc:
            nuke.executeInMainThread(nuke.message, args=(f"{name}: farm submit could not start: {exc}",))
            return
        said = (done.stdout.strip() + "\n" + done.stderr.strip()).strip()
        if done.returncode == 0:
            text = f"{name}: submitted to {engine}.\n{said}"
        else:
            text = f"{name}: farm submit failed (exit {done.returncode}).\n{said}"
        nuke.executeInMainThread(nuke.message, args=(text,))

    bridge.in_background("FaceGraft farm submit", work)


def knob_changed(node: Optional[nuke.Node] = None, knob: Optional[nuke.Knob] = None) -> None:
    """Registered for FaceGraft nodes: refresh the model description when the model changes."""
    node = _node(node)
    knob = knob if knob is not None else nuke.thisKnob()
    if knob is None or knob.name() not in ("model_file", "python", "showPanel"):
        return
    model_info.refresh(node)
