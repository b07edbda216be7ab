"""Render a FaceGraft node: cache its inputs, track when the plate or the tracking settings changed,
render what changed, and show the result -- in the background (the Render button) or in the
calling thread (``facegraft_nuke.render(node, block=True)`` for ``nuke -t`` and pipeline scripts).

The cache Writes inside the gizmo are disabled in the gizmo file, so comp renders and farm
submitters (which render every enabled Write, inside groups too) never run them; they are enabled
only while :func:`write_inputs` executes them, at full resolution (proxy mode is switched off
meanwhile: FaceGraft renders full-size frames; the node's Read scales them down in proxy mode).
"""
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import nuke

from . import bridge, colour, commands, node_settings, nodes, paths, stamps
from .errors import NodeError, RenderError

NODE_CLASS = node_settings.NODE_CLASS


class Rendered(NamedTuple):
    """What a finished render holds (``facegraft_nuke.render(node, block=True)`` returns it)."""

    out: str
    first: int
    last: int
    skipped: str = ""
    held: str = ""
    no_face: str = ""
    warnings: List[str] = []


def job_key(node: nuke.Node) -> str:
    return "FaceGraft:" + nodes.ensure_id(node, NODE_CLASS)


def status(node: nuke.Node, message: str) -> None:
    nodes.set_value(node, "status", message)


def write_inputs(node: nuke.Node, chosen: commands.Settings, holdout_frames: Optional[List[int]] = None) -> None:
    """Write the plate (unless it is read straight from disk) and the holdout into the node's ``incoming``
    folder (:func:`promote_inputs` then keeps what did not change); the holdout only on ``holdout_frames``
    when given (the keyframes Train occlusion learns from)."""
    folder = node_settings.node_folder(chosen)
    if chosen.plate == paths.in_folder(folder, paths.PLATE_NAME):
        execute_cache_write(node, nodes.PLATE_WRITE, chosen.first, chosen.last)
    if chosen.holdout and holdout_frames is None:
        execute_cache_write(node, nodes.HOLDOUT_WRITE, chosen.first, chosen.last)
    elif chosen.holdout:
        for frame in holdout_frames or []:
            execute_cache_write(node, nodes.HOLDOUT_WRITE, frame, frame)


def staged(final: str) -> str:
    """Where the node's Write writes ``final`` (see :mod:`paths`)."""
    folder, name = os.path.split(final)
    return paths.in_folder(paths.in_folder(folder, paths.INCOMING), name)


def promote_inputs(chosen: commands.Settings) -> List[int]:
    """Move the frames the Writes wrote up into the cache where their pixels changed; those frames."""
    folder = node_settings.node_folder(chosen)
    changed: List[int] = []
    for final in (paths.in_folder(folder, paths.PLATE_NAME), chosen.holdout):
        if final and (final == chosen.plate or final == chosen.holdout):
            changed += stamps.promote(staged(final), final, chosen.first, chosen.last)
    return sorted(set(changed))


def execute_cache_write(node: nuke.Node, name: str, first: int, last: int) -> None:
    """Run one internal Write over the frames: enabled only meanwhile, proxy mode off meanwhile."""
    write = nodes.internal(node, name)
    if write is None:
        raise NodeError(f"{node.name()}: the internal {name} is missing; re-create the node from the FaceGraft menu.")
    disable = write.knob("disable")
    proxy = nuke.root().knob("proxy")
    was_proxy = bool(proxy.value()) if proxy is not None else False
    try:
        if was_proxy and proxy is not None:
            proxy.setValue(False)
        if disable is not None:
            disable.setValue(False)
        nuke.execute(write, first, last, 1)
    except RuntimeError as exc:  # e.g. a missing frame upstream: Nuke's own message says which
        raise NodeError(f"{node.name()}: writing the {name.replace('Write', '').lower()} into the cache "
                        f"failed: {exc}") from None
    finally:
        if disable is not None:
            disable.setValue(True)
        if was_proxy and proxy is not None:
            proxy.setValue(True)


def sync_colour(node: nuke.Node) -> None:
    """Point the internal conversion of the swap at the render's colour space and the script's working space.

    Gizmo internals are not saved with the script, so this runs on every script load too
    (:mod:`facegraft_nuke.lifecycle`)."""
    convert = nodes.internal(node, nodes.SWAP_COLOUR)
    if convert is None:
        return
    working = colour.working_space()
    source = nodes.text(node, "render_colorspace") or working
    for knob, space in (("in_colorspace", source), ("out_colorspace", working)):
        found = convert.knob(knob)
        if found is None:
            continue
        try:
            found.setValue(space)
        except (ValueError, RuntimeError):
            raise NodeError(f"{node.name()}: the colour space '{space}' is not in the script's OCIO config; set "
                            "'plate colour space' to one it has.") from None


def needs_track(chosen: commands.Settings, cached_plate: bool) -> Optional[Dict[str, Any]]:
    """The new track stamp when the plate or the tracking settings changed since the last track (or
    there is none); None when the shot track is current. Reads the plate's frames: call it off the UI."""
    folder = node_settings.node_folder(chosen)
    fingerprint = stamps.plate_fingerprint(chosen.plate, chosen.first, chosen.last, contents=cached_plate)
    stamp = {"track": commands.track_key(chosen), "plate": fingerprint}
    if stamps.read(paths.in_folder(folder, paths.TRACK_STAMP)) == stamp and os.path.isfile(chosen.track):
        return None
    return stamp


def track_if_needed(job: bridge.Job, chosen: commands.Settings, cached_plate: bool) -> Optional[bridge.StepResult]:
    """Track (a step of ``job`` weighing 1) when the plate or the tracking settings changed; None when the
    shot track is up to date (the step's weight is taken off the job)."""
    folder = node_settings.node_folder(chosen)
    stamp = needs_track(chosen, cached_plate)
    if stamp is None:
        job.total_weight -= 1.0
        return None
    stamps.remove(paths.in_folder(folder, paths.TRACK_STAMP))
    result = job.step(bridge.Step("track", commands.track_argv(chosen), 1.0,
                                  log=paths.in_folder(paths.in_folder(folder, paths.LOGS), "track.log")))
    if result.ok:
        stamps.write(paths.in_folder(folder, paths.TRACK_STAMP), stamp)
    return result


def _work(chosen: commands.Settings, cached_plate: bool) -> Callable[[bridge.Job], bridge.StepResult]:
    """Track when needed, then render without --overwrite: FaceGraft renders again exactly the frames whose
    model, occlusion model, settings, plate or track entry changed, and keeps the rest."""
    folder = node_settings.node_folder(chosen)
    logs = paths.in_folder(folder, paths.LOGS)

    def work(job: bridge.Job) -> bridge.StepResult:
        job.message("checking the plate")
        promote_inputs(chosen)
        tracked = track_if_needed(job, chosen, cached_plate)
        if tracked is not None and not tracked.ok:
            return tracked
        tolerate = (4,) if chosen.on_error == "skip" else ()
        return job.step(bridge.Step("render", commands.render_argv(chosen), 3.0,
                                    log=paths.in_folder(logs, "render.log"), tolerate=tolerate))

    return work


def rendered(chosen: commands.Settings, result: bridge.StepResult) -> Rendered:
    summary = result.summary or {}
    return Rendered(out=chosen.out, first=chosen.first, last=chosen.last, skipped=str(summary.get("skipped") or ""),
                    held=str(summary.get("held") or ""), no_face=str(summary.get("no_face") or ""),
                    warnings=list(result.warnings))


def describe(done: Rendered) -> str:
    """The status line after a render: what was rendered and what was not."""
    text = f"rendered {done.first}-{done.last}"
    notes = []
    if done.skipped:
        notes.append(f"frames {done.skipped} skipped (unreadable; they show an error until rendered)")
    if done.held:
        notes.append(f"frames {done.held} held (plate passed through)")
    if done.no_face:
        notes.append(f"no face on {done.no_face}")
    if notes:
        text += "; " + "; ".join(notes)
    elif done.warnings:
        text += f" with {len(done.warnings)} warning(s): {done.warnings[0]}"
    return text


def show_render(node: nuke.Node, colorspace: str, done: Rendered) -> None:
    """After a render (main thread): merge the render into the stream over the rendered frames, reload it."""
    nodes.set_value(node, "render_colorspace", colorspace)
    nodes.set_value(node, "rendered_first", done.first)
    nodes.set_value(node, "rendered_last", done.last)
    sync_colour(node)
    nodes.set_value(node, "rendered", True)
    read = nodes.internal(node, nodes.RENDER_READ)
    if read is not None and read.knob("reload") is not None:
        read["reload"].execute()  # type: ignore[attr-defined]
    status(node, describe(done))


def start(node: nuke.Node, block: bool = False) -> Any:
    """Render ``node``: a background Job (``block=False``), or a :class:`Rendered` once done (``block=True``,
    RenderError on failure). Errors to fix first raise NodeError in both modes."""
    key = job_key(node)
    if bridge.running(key) is not None:
        raise NodeError(f"{node.name()} is busy (rendering or training): wait for it or press Cancel.")
    chosen = node_settings.read(node)
    cached_plate = node_settings.plate_source(node) is None
    write_inputs(node, chosen)
    name = node.name()
    outcome: List[Rendered] = []

    def done(result: bridge.StepResult) -> None:
        try:
            if result.ok:
                finished = rendered(chosen, result)
                outcome.append(finished)
                show_render(node, chosen.plate_colorspace, finished)
                if finished.skipped and not block:
                    nuke.message(f"{name}: {describe(finished)}.\nThe log: {os.path.dirname(chosen.out)}/logs/render.log")
                return
            status(node, "cancelled" if result.cancelled else result.message.splitlines()[0])
        except (ValueError, NodeError):  # the node was deleted while it rendered, or its colour cannot be set
            return
        if not result.cancelled and not block:
            nuke.message(result.message)

    job = bridge.Job(key, "FaceGraft " + name, _work(chosen, cached_plate), done, total_weight=4.0)
    status(node, f"rendering {chosen.first}-{chosen.last}...")
    return start_or_run(job, block, lambda result: outcome[0] if outcome else rendered(chosen, result))


def start_or_run(job: bridge.Job, block: bool, finish: Callable[[bridge.StepResult], Any]) -> Any:
    """Start ``job`` in the background and return it, or (``block``) run it here and return
    ``finish(result)``, raising RenderError when it failed or was cancelled."""
    if not block:
        job.start()
        return job
    result = job.run_here()
    if not result.ok:
        raise RenderError(result.message, cancelled=result.cancelled)
    return finish(result)


def cancel(node: nuke.Node) -> bool:
    """Stop this node's render or submission (frames already written stay); False when none runs."""
    job = bridge.running(job_key(node))
    if job is None:
        return False
    job.cancel()
    status(node, "cancelling...")
    return True


def missing_frames(pattern: str, first: int, last: int) -> List[int]:
    return [f for f in range(first, last + 1) if not os.path.isfile(paths.frame_path(pattern, f))]


def load(node: nuke.Node, frames: range, colorspace: str) -> Rendered:
    """Show a render made elsewhere (the farm) once every frame is on disk; NodeError lists what is missing."""
    out = paths.in_folder(nodes.folder(node, NODE_CLASS), paths.RENDER_NAME)
    first, last = frames[0], frames[-1]
    missing = missing_frames(out, first, last)
    if missing:
        shown = ", ".join(str(f) for f in missing[:12]) + (" ..." if len(missing) > 12 else "")
        raise NodeError(f"{node.name()}: {len(missing)} of {last - first + 1} frames are not rendered yet "
                        f"({shown}) in {os.path.dirname(out)}. Load the render when the farm job is done.")
    done = Rendered(out=out, first=first, last=last)
    show_render(node, colorspace, done)
    return done
