"""Farm submission settings that more than one front end offers (the command line and the Nuke node).

Declared like the render settings (:mod:`facegraft.inference.render.settings`), with stage
``farm``; ``facegraft settings --json`` writes both for the node.
"""
from __future__ import annotations

from facegraft.inference.render.settings import Setting

from .engines import DEFAULT, ENGINES

ENGINE = Setting("engine", "choice", DEFAULT,
                 "the farm engine the job goes to (docs/farm.md describes each)",
                 ("farm",), choices=tuple(ENGINES))
CHUNK = Setting("chunk", "int", 10, "frames per render task", ("farm",), minimum=1, metavar="N")
FARM_SETTINGS: tuple[Setting, ...] = (ENGINE, CHUNK)
