"""Farm submission settings that more than one front end offers (the command line and the Nuke node).

Declared like the render settings (:mod:`facegraft.inference.render.settings`), with stage
``farm``; ``facegraft settings --json`` writes both for the node.
"""
from __future__ import annotations

from facegraft.inference.render.settings import Setting

from .engines import DEFAULT, ENGINES
from .job import GPU_DEVICES

ENGINE = Setting("engine", "choice", DEFAULT,
                 "the farm engine the job goes to (docs/farm.md describes each)",
                 ("farm",), choices=tuple(ENGINES))
CHUNK = Setting("chunk", "int", 10, "frames per render task", ("farm",), minimum=1, metavar="N")
# The --device a GPU render task gets when the shot sets none: a node whose GPU cannot run fails
# (exit 6) and the farm retries the task on another node, instead of rendering on its CPU.
GPU_DEVICE = Setting("gpu_device", "choice", "cuda",
                     "the --device GPU render tasks run with when no --device is given, so a node whose GPU "
                     "fails stops and the farm retries the task elsewhere", ("farm",), choices=GPU_DEVICES)
FARM_SETTINGS: tuple[Setting, ...] = (ENGINE, CHUNK, GPU_DEVICE)
