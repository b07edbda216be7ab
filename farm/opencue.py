"""OpenCue: the FarmJob as a pyoutline outline, serialised to a Cuebot job spec (XML).

Two layers: ``track`` (one frame) and ``render`` over the shot's frames with ``chunk`` set,
depending on ``track`` layer-on-layer. Cuebot cuts ``range`` into chunks exactly as the shared
chunking helper does, and replaces ``#FRAMESPEC#`` with each chunk's frames (``1001-1010``,
``1001-1019x2``). Commands run directly, without the pycuerun wrapper.

A layer's command is handed to pyoutline as a list of words, each already quoted for the shell:
pyoutline joins a list with spaces (1.37 keeps a string as it is, older releases "join" a string
one character at a time), so the spec's ``<cmd>`` is the exact shell line with either. Paths with
spaces and quotes survive; setup.py and constraints.txt pin the version tested (1.37).
"""
from __future__ import annotations

import getpass
import importlib
import os
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Optional
from xml.dom import minidom

from facegraft.inference.errors import FaceGraftError

from .job import FarmJob, Requirements, Submission

SPEC = "opencue_job.xml"
FRAMES_TOKEN = "#FRAMESPEC#"
CONFIG_VARS = ("OPENCUE_CONFIG_FILE", "OPENCUE_CONF")


def _import(name: str) -> ModuleType:
    """Import pyoutline/pycue lazily: they read the OpenCue config when imported."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise FaceGraftError(f"OpenCue's Python libraries are not installed ({exc})",
                             hint="pip install opencue-pyoutline (the facegraft 'farm' extra)") from exc
    except Exception as exc:  # a broken opencue.yaml or outline.cfg raises while importing
        raise FaceGraftError(f"OpenCue's configuration could not be read: {exc}",
                             path=config_file(),
                             hint="fix the file, or point OPENCUE_CONFIG_FILE at a valid one") from exc


def config_file() -> Optional[str]:
    """The OpenCue client config in use, if any (the env vars, then ~/.config/opencue)."""
    for var in CONFIG_VARS:
        value = os.environ.get(var)
        if value and os.path.exists(value):
            return value
    default = Path.home() / ".config" / "opencue" / "opencue.yaml"
    return str(default) if default.is_file() else None


def cuebot_configured() -> bool:
    return bool(os.environ.get("CUEBOT_HOSTS")) or config_file() is not None


def _command(argv: list[str]) -> list[str]:
    """The words of a shell line, each quoted; the frame token stays bare so Cuebot's text
    replacement sees it. Joined with spaces (as pyoutline does) they are the line itself."""
    return [a if a == FRAMES_TOKEN else shlex.quote(a) for a in argv]


def _memory(req: Requirements) -> Optional[str]:
    if not req.memory_mb:
        return None
    return f"{req.memory_mb // 1024}g" if req.memory_mb % 1024 == 0 else f"{req.memory_mb}m"


def _layer_args(req: Requirements) -> dict[str, Any]:
    args: dict[str, Any] = {}
    memory = _memory(req)
    if memory:
        args["memory"] = memory
    if req.gpu:
        args["gpus"] = 1
    if req.tags:
        args["tags"] = list(req.tags)
    return args


def build_outline(job: FarmJob) -> Any:
    """The pyoutline Outline of the job (nothing is written or sent)."""
    outline = _import("outline")
    shell = _import("outline.modules.shell")
    options = job.engine_options
    ol = outline.Outline(
        job.name, frame_range=job.shot.frames_text, serialize=False, current=False,
        show=options.get("show") or os.environ.get("SHOW") or "facegraft",
        shot=options.get("shot") or os.environ.get("SHOT") or job.shot.name,
        user=options.get("user") or getpass.getuser(),
    )
    first = str(job.shot.frames[0])
    track = shell.ShellCommand("track", command=_command(job.track_argv()), range=first,
                               **_layer_args(job.track_requirements))
    ol.add_layer(track)
    render = shell.Shell("render", command=_command(job.render_argv(FRAMES_TOKEN)),
                         range=job.shot.frames_text, chunk=job.chunk_size, **_layer_args(job.render_requirements))
    render.depend_all(track)
    ol.add_layer(render)
    return ol


def spec(job: FarmJob) -> str:
    """The Cuebot job spec XML, pretty-printed."""
    cuerun = _import("outline.cuerun")
    backend = _import("outline.backend.cue")
    launcher = cuerun.OutlineLauncher(build_outline(job), pause=False, priority=job.priority, nomail=True)
    # serialize_simple without launcher.setup(): setup would create a pyoutline session folder.
    xml = backend.serialize_simple(launcher)
    # Pretty-print the body only: minidom would rewrite the DOCTYPE that Cuebot resolves the DTD by.
    start = xml.index("<spec>")
    root = minidom.parseString(xml[start:]).documentElement
    assert root is not None
    body = root.toprettyxml(indent="  ")
    return xml[:start].replace("><!DOCTYPE", ">\n<!DOCTYPE") + "\n" + body


def files(job: FarmJob, job_dir: Path) -> dict[str, str]:
    return {SPEC: spec(job)}


def check_available() -> None:
    _import("outline.backend.cue")
    if not cuebot_configured():
        raise FaceGraftError(
            "no Cuebot is configured, so the job cannot be sent to OpenCue",
            hint="set CUEBOT_HOSTS=cuebot.example.com (or OPENCUE_CONFIG_FILE), or use --dry-run to write the spec only",
        )


def submit(job: FarmJob, job_dir: Path) -> Submission:
    """Send the spec written in ``job_dir`` to Cuebot; the Submission holds the launched jobs' ids and names."""
    api = _import("opencue.api")
    cuebot = _import("opencue.cuebot")
    hosts = os.environ.get("CUEBOT_HOSTS")
    if hosts:
        cuebot.Cuebot.setHosts(hosts.split(","))
    text = (job_dir / SPEC).read_text(encoding="utf-8")
    try:
        jobs = api.launchSpecAndWait(text)
    except Exception as exc:
        raise FaceGraftError(f"Cuebot refused or could not be reached: {exc}", path=str(job_dir / SPEC),
                             hint="check CUEBOT_HOSTS and that the show exists; the spec is kept for a retry") from exc
    names = tuple(str(launched.name()) for launched in jobs)
    for name in names:
        print(f"OpenCue job launched: {name}", file=sys.stderr)
    return Submission(0, job_ids=tuple(str(launched.id()) for launched in jobs), job_names=names)
