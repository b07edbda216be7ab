"""The farm engines, registered once: engine name -> the module that writes and submits its jobs.

Each engine module offers ``files(job, job_dir) -> {name: text}``, ``check_available()`` and
``submit(job, job_dir) -> Submission`` (exit status, the farm's job ids and names). Modules are
imported when an engine is used, so listing the engines (``facegraft --help``, the settings
file) loads none of them.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from facegraft.inference.errors import FaceGraftError

ENGINES: dict[str, str] = {
    "openjd": f"{__package__}.openjd",  # Open Job Description: openjd run, Deadline Cloud job bundles
    "opencue": f"{__package__}.opencue",  # OpenCue: a Cuebot job spec through pyoutline
    "deadline": f"{__package__}.deadline",  # Deadline 10: CommandLine plugin job files
}
DEFAULT = "openjd"


def engine_module(engine: str) -> ModuleType:
    """The module of ``engine``; a FaceGraftError lists the engines there are."""
    if engine not in ENGINES:
        raise FaceGraftError(f"unknown farm engine '{engine}'", hint=f"choose one of: {', '.join(ENGINES)}")
    return importlib.import_module(ENGINES[engine])
