"""Where a FaceGraft node's files live (pure: no ``nuke``).

``CACHE/SCRIPT/NODE_ID/`` holds the cached plate and holdout, the shot track, the shot's
occlusion model and its preview sheet, the render, the stamps that say what they were made
from, the logs and the farm job folders. The node's Writes
write into ``incoming/``; a frame moves up to the cache only when its pixels changed, so FaceGraft's
resume sees unchanged frames as unchanged:

* CACHE: the node's ``cache folder`` knob as typed, or ``facegraft`` beside the saved script;
* SCRIPT: the script's file name without extension and version (``sh010_comp_v003.nk`` ->
  ``sh010_comp``): two scripts in one folder never share a render, versioning up keeps it;
* NODE_ID: the node's ``node_id`` knob, which survives renaming; a copy gets its own.

The gizmo's internal Write and Read nodes compute the same paths in TCL; ``tests/nuke`` evaluates
that TCL and checks the two agree. Keep them in step.
"""
import re
from typing import Optional

PLATE_NAME = "plate.####.exr"
HOLDOUT_NAME = "holdout.####.exr"
RENDER_NAME = "render.####.exr"
TRACK_NAME = "shot.fgtrack.json"
TRACK_STAMP = "track.stamp.json"
OCCLUSION_NAME = "occlusion.onnx"  # the shot's occlusion model (Train occlusion); its sheet: occlusion.preview.png
INCOMING = "incoming"
LOGS = "logs"
JOBS = "jobs"

# Like the gizmo's [regsub -nocase {[._-]v[0-9]+$} ...]
_VERSION = re.compile(r"[._-]v[0-9]+$", re.IGNORECASE)


def tcl_dirname(path: str) -> str:
    """TCL's ``file dirname`` (``sh.nk`` -> ``.``, ``/a`` -> ``/``), which the gizmo uses."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    if "/" not in stripped:
        return "."
    return stripped.rsplit("/", 1)[0].rstrip("/") or "/"


def script_key(script: str) -> str:
    """The script's part of the cache path: its file name without extension and version."""
    tail = script.rstrip("/").rsplit("/", 1)[-1]  # [file tail ...]
    dot = tail.rfind(".")
    stem = tail[:dot] if dot >= 0 else tail  # [file rootname ...]
    return _VERSION.sub("", stem, count=1)


def cache_root(cache_folder: str, script: str) -> str:
    """The cache folder: the knob's text when set, else ``facegraft`` beside the script."""
    if cache_folder != "":
        return cache_folder
    return tcl_dirname(script) + "/facegraft"


def node_folder(cache_folder: str, script: str, node_id: str) -> str:
    return cache_root(cache_folder, script) + "/" + script_key(script) + "/" + node_id


def in_folder(folder: str, name: str) -> str:
    return folder + "/" + name


def frame_path(pattern: str, frame: int) -> str:
    """One frame's file of a ``####`` / ``%04d`` pattern."""
    path = re.sub(r"#+", lambda m: str(frame).zfill(len(m.group(0))), pattern)
    return re.sub(r"%0?(\d*)d", lambda m: str(frame).zfill(int(m.group(1) or 1)), path)


def frames_text(first: int, last: int) -> str:
    return f"{first}-{last}"


def parse_frames(text: str) -> Optional[range]:
    """``1001-1100`` -> the frames; None for anything else."""
    match = re.match(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$", text or "")
    if not match:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return range(first, last + 1) if last >= first else None
