"""Submit to farm from the node: a job the farm renders -- never a render on the artist's machine.

The node caches its inputs (the farm reads them from the cache folder, which must be on shared
storage), then runs ``facegraft farm submit --json-progress`` in the background like a render
(cancellable, no time limit, its output in ``logs/farm.log``); the dialog shows what the
command's JSON ``result`` event says:

* ``deadline``: a Deadline 10 job pair (track, then render chunks); the dialog shows the job ids;
* ``opencue``: an OpenCue job; the dialog shows its name;
* ``openjd``: an Open Job Description bundle for Deadline Cloud, written to
  ``CACHE/SCRIPT/NODE_ID/jobs/JOB_NAME`` (``--bundle-only``: never ``openjd run`` on the artist's
  machine); the dialog shows the folder and the ``deadline bundle submit`` command.

Job name, pool, group and priority come from the node's Farm tab; a new node takes the studio's
defaults from ``nuke.json`` (``{"farm": {"engine": "deadline", "pool": "gpu", ...}}``), as do the tags
and the ``facegraft`` command the workers run.
"""
import json
import os
import re
from typing import Any, Dict, List, Optional

import nuke

from . import bridge, commands, config, node_settings, nodes, paths, rendering
from .errors import NodeError, RenderError

STUDIO_KEYS = ("engine", "chunk", "pool", "group", "priority", "tags", "facegraft_exe")
KNOBS = {"engine": "farm_engine", "chunk": "farm_chunk", "pool": "farm_pool", "group": "farm_group",
         "priority": "farm_priority"}
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def studio_defaults() -> Dict[str, Any]:
    """The ``farm`` section of the studio's nuke.json (empty when there is none)."""
    found = config.setting("farm", {})
    return {k: v for k, v in found.items() if k in STUDIO_KEYS} if isinstance(found, dict) else {}


def apply_studio_defaults(node: nuke.Node) -> None:
    """Give a new node the studio's engine, frames per task, pool, group and priority."""
    studio = studio_defaults()
    for key, knob in KNOBS.items():
        if key not in studio:
            continue
        value = studio[key]
        if key == "engine" and value not in commands.choices("engine"):
            continue
        nodes.set_value(node, knob, int(value) if key in ("chunk", "priority") else str(value))


def job_name(node: nuke.Node) -> str:
    """The job's name: the knob, else SCRIPT_NODE; letters, digits, '_', '-' and '.' only."""
    typed = nodes.text(node, "farm_job_name")
    if not typed:
        script = nodes.script_path() or "untitled"
        typed = paths.script_key(script) + "_" + node.name()
    name = _NAME.sub("_", typed).strip("_.-")
    return name or "facegraft"


def options(node: nuke.Node, chosen: commands.Settings) -> commands.FarmOptions:
    studio = studio_defaults()
    engine = node_settings._enum(node, "farm_engine")
    name = job_name(node)
    return commands.FarmOptions(
        engine=engine,
        chunk=int(nodes.value(node, "farm_chunk", commands.default("chunk"))),
        name=name,
        job_dir=paths.in_folder(paths.in_folder(node_settings.node_folder(chosen), paths.JOBS), name),
        priority=min(100, max(0, int(nodes.value(node, "farm_priority", 50)))),
        pool=nodes.text(node, "farm_pool"),
        group=nodes.text(node, "farm_group"),
        tags=str(studio.get("tags", "") or ""),
        facegraft_exe=str(studio.get("facegraft_exe", "") or ""),
    )


def submit_argv(chosen: commands.Settings, farm: commands.FarmOptions) -> List[str]:
    """``facegraft farm submit`` as the node runs it: its answer as a JSON ``result`` event and, for
    openjd, the bundle alone (``--bundle-only``: nothing runs on the artist's machine)."""
    argv = commands.farm_argv(chosen, farm) + ["--json-progress"]
    if farm.engine == "openjd":
        argv.append("--bundle-only")
    return argv


def _words(value: Any) -> List[str]:
    return [str(v) for v in value if str(v)] if isinstance(value, list) else []


def answer(farm: commands.FarmOptions, result: bridge.StepResult) -> str:
    """What the farm said (the ``result`` event of ``farm submit --json-progress``), for the
    dialog: the job ids, the job's name, or the bundle folder and the command that sends it."""
    said = result.summary
    if farm.engine == "deadline":
        ids = _words(said.get("job_ids"))
        return "Deadline job id(s): " + (", ".join(ids) if ids else "(none given; see the log)")
    if farm.engine == "opencue":
        names = _words(said.get("job_names"))
        return "OpenCue job: " + (", ".join(names) if names else farm.name)
    folder = str(said.get("job_dir") or farm.job_dir)
    command = str(said.get("submit_command") or "deadline bundle submit " + folder)
    return (f"Open Job Description bundle written to {folder} (nothing runs on this machine).\n"
            f"Submit it to Deadline Cloud with: {command}")


def submit(node: nuke.Node, block: bool = False) -> Any:
    """Cache the inputs and submit the node's job; a Job (``block=False``) or the dialog text (``block=True``)."""
    key = rendering.job_key(node)
    if bridge.running(key) is not None:
        raise NodeError(f"{node.name()} is busy (rendering or submitting): wait for it or press Cancel.")
    chosen = node_settings.read(node)
    rendering.write_inputs(node, chosen)
    farm = options(node, chosen)
    folder = node_settings.node_folder(chosen)
    step = bridge.Step("farm submit", submit_argv(chosen, farm), 1.0,
                       log=paths.in_folder(paths.in_folder(folder, paths.LOGS), "farm.log"))
    name = node.name()
    said: List[str] = []

    def work(job: bridge.Job) -> bridge.StepResult:
        job.message("checking the plate")
        rendering.promote_inputs(chosen)
        job.message(f"submitting to {farm.engine}")
        return job.step(step)

    def done(result: bridge.StepResult) -> None:
        if result.ok:
            text = f"{name}: {answer(farm, result)}"
            record = {"frames": paths.frames_text(chosen.first, chosen.last), "colorspace": chosen.plate_colorspace}
            try:
                nodes.set_value(node, "farm_status", text.splitlines()[0])
                nodes.set_value(node, "farm_frames", json.dumps(record))
            except ValueError:  # the node was deleted meanwhile
                pass
        elif result.cancelled:
            text = f"{name}: farm submission cancelled."
        else:
            text = f"{name}: {result.message}\nThe log: {step.log}"
        said.append(text)
        if not block:
            nuke.message(text)

    job = bridge.Job(key, f"FaceGraft {name}: submit", work, done)
    if not block:
        job.start()
        return job
    result = job.run_here()
    if not result.ok:
        raise RenderError(said[0] if said else result.message, cancelled=result.cancelled)
    return said[0]


def submitted(node: nuke.Node) -> Optional[Dict[str, Any]]:
    """The last submission's frames and colour space (None when the node was never submitted)."""
    try:
        found = json.loads(nodes.text(node, "farm_frames") or "null")
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def load_render(node: nuke.Node) -> rendering.Rendered:
    """Show the farm's render once every frame is on disk."""
    record = submitted(node)
    frames = paths.parse_frames(str(record.get("frames", ""))) if record else None
    if record is None or frames is None:
        raise NodeError(f"{node.name()}: nothing was submitted to the farm from this node.")
    done = rendering.load(node, frames, str(record.get("colorspace") or ""))
    nodes.set_value(node, "farm_status", f"farm render {frames[0]}-{frames[-1]} loaded")
    return done


def logs_folder(node: nuke.Node) -> str:
    return os.path.join(nodes.folder(node, rendering.NODE_CLASS), paths.LOGS)
