"""Train occlusion: the shot's occlusion model learned from the holdout input's keyframes.

The compositor rotos what passes in front of the face (glasses, a hand, a prop) on a few frames
and connects the roto to the node's ``holdout`` input. Train occlusion writes that input on the
keyframes into the node's cache (the holdout Write the render uses), tracks the plate if the shot
track is out of date, and runs, through the worker bridge with its progress::

    facegraft occlusion train PLATE --track TRACK --roto HOLDOUT.####.exr --roto-channel A \\
        --frames K1,K2,K3 --out CACHE/.../occlusion.onnx --model FACE.onnx --json-progress

The model lands in the node's cache folder (``occlusion.onnx``, with its preview sheet
``occlusion.preview.png``) and the node's 'occlusion' menu switches to 'shot model': the render
then passes ``--occlusion`` that file (FaceGraft re-renders the frames when the model's content
changes) and no longer holds out the roto itself.

The keyframes: the node's 'occlusion keyframes' knob (``1012,1040,1077``), else the keys of the
holdout's branch -- the keys of the Roto / RotoPaint shapes upstream of the holdout input, else
those of the animated knobs there; nodes upstream of the plate input are not looked at.
"""
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

import nuke

from . import bridge, commands, node_settings, nodes, paths, rendering
from .errors import NodeError

MAX_KEYFRAMES = 12  # more keys than this are a track or an expression, not rotoed keyframes
STEPS_DEFAULT = 1000  # as `facegraft occlusion train` (tests/nuke checks the two agree)
RES_DEFAULT = 128


class Trained(NamedTuple):
    """What a finished training holds (``facegraft_nuke.train_occlusion(node, block=True)`` returns it)."""

    model: str
    preview: str
    keyframes: List[int]
    seconds: float = 0.0


def upstream(start: Optional[nuke.Node]) -> List[nuke.Node]:
    """``start`` and every node above it, nearest first."""
    found: List[nuke.Node] = []
    seen: Set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop(0)
        if node is None or node.fullName() in seen:
            continue
        seen.add(node.fullName())
        found.append(node)
        todo.extend(node.input(i) for i in range(node.inputs()))
    return found


def curve_keys(element: Any, depth: int = 0) -> Set[float]:
    """The key times of every control point under a Roto / RotoPaint layer (shapes, strokes, sub-layers)."""
    found: Set[float] = set()
    if depth > 64:
        return found
    for item in element:
        point = getattr(item, "center", None) or item  # a shape's control point keys its centre
        times = getattr(point, "getControlPointKeyTimes", None)
        if callable(times):
            found.update(float(t) for t in times())
        elif hasattr(item, "__iter__"):  # a layer, a shape or a stroke
            found |= curve_keys(item, depth + 1)
    return found


def _frames(times: Iterable[float]) -> Set[int]:
    return {int(round(t)) for t in times if abs(t - round(t)) < 1e-6}


def holdout_keys(node: nuke.Node) -> Tuple[List[int], List[str]]:
    """The frames keyed in the holdout input's branch and the knobs that hold the keys: the Roto /
    RotoPaint shapes' keys when there are any, else the keys of animated knobs."""
    plate_side = {n.fullName() for n in upstream(node.input(0))}
    shapes: Dict[str, Set[int]] = {}
    animated: Dict[str, Set[int]] = {}
    for above in upstream(node.input(1)):
        if above.fullName() in plate_side:
            continue
        for knob in above.knobs().values():
            layer = getattr(knob, "rootLayer", None)
            if layer is not None:
                keys = _frames(curve_keys(layer))
                if keys:
                    shapes[f"{above.name()}.{knob.name()}"] = keys
            elif isinstance(knob, nuke.Array_Knob) and knob.isAnimated():
                keys = _frames(float(t) for t in knob.getKeyList())
                if keys:
                    animated[f"{above.name()}.{knob.name()}"] = keys
    chosen = shapes or animated
    frames: Set[int] = set()
    for keys in chosen.values():
        frames |= keys
    return sorted(frames), sorted(chosen)


def keyframes(node: nuke.Node, first: int, last: int) -> List[int]:
    """The keyframes to learn from: the 'occlusion keyframes' knob, else the holdout's keys; NodeError
    says what is wrong (none, outside the frame range, too many)."""
    typed = nodes.text(node, "occlusion_keys")
    if typed:
        try:
            frames = commands.parse_keyframes(typed)
        except ValueError as exc:
            raise NodeError(f"{node.name()}: 'occlusion keyframes': {exc}.") from None
        where = "'occlusion keyframes'"
    else:
        frames, knobs = holdout_keys(node)
        if not frames:
            raise NodeError(f"{node.name()}: the holdout input has no keyframes to learn from (no keyed Roto shape "
                            "or animated knob above it): type the frames you rotoed into 'occlusion keyframes', "
                            "e.g. 1012,1040,1077.")
        where = "the keys of " + ", ".join(knobs)
    outside = [f for f in frames if not first <= f <= last]
    if outside:
        raise NodeError(f"{node.name()}: keyframe(s) {', '.join(map(str, outside))} from {where} are outside the "
                        f"frame range {first}-{last}: the shot is tracked over that range only. Widen the range or "
                        "list keyframes inside it in 'occlusion keyframes'.")
    if len(frames) > MAX_KEYFRAMES:
        raise NodeError(f"{node.name()}: {where} give {len(frames)} keyframes ({frames[0]}-{frames[-1]}): more than "
                        f"{MAX_KEYFRAMES} is a track or an expression, not rotoed keyframes. List the frames you "
                        "rotoed in 'occlusion keyframes' (3 to 5 that show the occluder differently).")
    return frames


def training(node: nuke.Node, chosen: commands.Settings, frames: List[int]) -> commands.Training:
    """How the node trains: its keyframes, its cached holdout, the model file in its cache, steps and size."""
    assert chosen.holdout is not None
    return commands.Training(
        roto=chosen.holdout, keyframes=frames, out=node_settings.shot_model(node_settings.node_folder(chosen)),
        steps=max(1, int(nodes.value(node, "occlusion_steps", STEPS_DEFAULT))),
        res=int(nodes.value(node, "occlusion_res", RES_DEFAULT)),
    )


def describe(trained: Trained) -> str:
    """The node's 'occlusion' status line after a training."""
    keys = ", ".join(str(f) for f in trained.keyframes)
    return f"trained on keyframes {keys} in {trained.seconds:.0f} s; preview: {trained.preview}"


def _trained(plan: commands.Training, result: bridge.StepResult) -> Trained:
    said = result.summary or {}
    keys = said.get("keyframes")
    return Trained(model=str(said.get("model") or plan.out),
                   preview=str(said.get("preview") or plan.out[:-len(".onnx")] + ".preview.png"),
                   keyframes=[int(k) for k in keys] if isinstance(keys, list) else list(plan.keyframes),
                   seconds=float(said.get("seconds") or 0.0))


def start(node: nuke.Node, block: bool = False) -> Any:
    """Train the node's occlusion model: a background Job (``block=False``), or a :class:`Trained` once
    done (``block=True``, RenderError on failure). Errors to fix first raise NodeError in both modes."""
    key = rendering.job_key(node)
    if bridge.running(key) is not None:
        raise NodeError(f"{node.name()} is busy (rendering or training): wait for it or press Cancel.")
    chosen = node_settings.read(node, training=True)
    plan = training(node, chosen, keyframes(node, chosen.first, chosen.last))
    cached_plate = node_settings.plate_source(node) is None
    rendering.write_inputs(node, chosen, holdout_frames=plan.keyframes)
    logs = paths.in_folder(node_settings.node_folder(chosen), paths.LOGS)
    name = node.name()
    outcome: List[Trained] = []

    def work(job: bridge.Job) -> bridge.StepResult:
        job.message("checking the plate")
        rendering.promote_inputs(chosen)
        tracked = rendering.track_if_needed(job, chosen, cached_plate)
        if tracked is not None and not tracked.ok:
            return tracked
        return job.step(bridge.Step("occlusion", commands.occlusion_argv(chosen, plan), 3.0,
                                    log=paths.in_folder(logs, "occlusion.log")))

    def done(result: bridge.StepResult) -> None:
        try:
            if result.ok:
                trained = _trained(plan, result)
                outcome.append(trained)
                nodes.set_value(node, "occlusion", commands.SHOT_MODEL)
                nodes.set_value(node, "occlusion_status", describe(trained))
                return
            nodes.set_value(node, "occlusion_status",
                            "training cancelled" if result.cancelled else result.message.splitlines()[0])
        except ValueError:  # the node was deleted while it trained
            return
        if not result.cancelled and not block:
            nuke.message(result.message)

    job = bridge.Job(key, f"FaceGraft {name}: occlusion", work, done, total_weight=4.0)
    nodes.set_value(node, "occlusion_status", "training on keyframes " + ", ".join(map(str, plan.keyframes)) + "...")
    return rendering.start_or_run(job, block, lambda result: outcome[0] if outcome else _trained(plan, result))
