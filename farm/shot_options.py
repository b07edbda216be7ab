"""The track and render settings a farm job or a batch shot passes on to its tasks.

Every setting of ``track`` and ``render`` (:data:`facegraft.inference.render.settings.SETTINGS`)
can be given; one left unset is left out of the task's command line, so the command's own
default applies. Values are checked here, by the same declarations the commands parse with.
"""
from __future__ import annotations

from typing import Any, Mapping

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.render.settings import SETTINGS, SettingError, for_stage

SHOT_SETTINGS = tuple(s for s in SETTINGS if "track" in s.stages or "render" in s.stages)
NAMES = tuple(s.name for s in SHOT_SETTINGS)
# Options each stage takes, as they are spelled in Python (the flag is ``--`` + dashes).
TRACK_OPTIONS = tuple(s.name for s in for_stage("track", SHOT_SETTINGS))
RENDER_OPTIONS = tuple(s.name for s in for_stage("render", SHOT_SETTINGS))


def shot_options(args: object) -> dict[str, object]:
    """The settings given on a parsed command line (attributes that are None were not given)."""
    return {n: getattr(args, n) for n in NAMES if getattr(args, n, None) is not None}


def check_options(raw: Mapping[Any, Any], where: str, path: str) -> dict[str, object]:
    """Options written in a file (keys with ``_`` or ``-``), checked and converted as the commands do."""
    by_name = {s.name: s for s in SHOT_SETTINGS}
    out: dict[str, object] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in by_name:
            raise FaceGraftError(f"{where}: unknown option '{key}'", path=path, hint=f"options are: {', '.join(NAMES)}")
        try:
            parsed = by_name[name].parse(value)
        except SettingError as exc:
            raise FaceGraftError(f"{where}: {exc.naming(f'option {key!r}')}", path=path) from None
        if parsed is not None:
            out[name] = parsed
    return out
