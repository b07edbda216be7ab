"""Render many shots on this machine, one worker per GPU.

  facegraft batch shots.yaml --gpus 0,1

shots.yaml (paths relative to the file; 'defaults' apply to every shot):

  defaults:
    options: {color_match: rct, device: cuda}
  shots:
    - name: sh010
      plate: plates/sh010.####.exr
      model: models/sh010_actor.onnx
      out: renders/sh010_swap.####.exr
      frames: 1001-1240            # optional: every frame on disk
      options: {face: largest, smooth: 0.5, blend: multiband}

Each shot is tracked, then rendered. Every shot is checked before any work starts: plate and
holdout frames on disk (the missing ones listed), the model, the output folders. Re-running the
same file resumes: a shot is skipped only when every frame on disk is up to date (its stamp:
model, settings, track, plate frame, format), and a render keeps exactly the frames that are.
Settings given on the command line (e.g. --color-match lct) apply to every shot, over the
file's options; the file's options take the same names (docs/render_settings.md).
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_json_progress, add_shot_options

NAME = "batch"
HELP = "render the shots listed in a YAML file, one worker per GPU"
ORDER = 61


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shots", metavar="SHOTS.yaml", help="YAML file listing the shots")
    parser.add_argument("--gpus", default=None, metavar="IDS",
                        help="GPU indices, one worker each, e.g. 0,1 (default: one worker on the default device)")
    parser.add_argument("--dry-run", action="store_true", help="check the shots and print what would run")
    parser.add_argument("--facegraft-exe", default=None,
                        help="facegraft command the workers run (default: the one beside this Python)")
    add_json_progress(parser)
    add_shot_options(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from facegraft.farm.batch import Batch, load_shots, parse_gpus, plan
    from facegraft.farm.job import parse_executable
    from facegraft.farm.shot_options import shot_options

    gpus = parse_gpus(args.gpus)
    executable = parse_executable(args.facegraft_exe)
    shots = load_shots(args.shots, overrides=shot_options(args), log=lambda message: print(message, file=sys.stderr))
    if args.dry_run:
        print(plan(shots, gpus, executable))
        return 0
    return Batch(shots, gpus, executable, json_lines=args.json_progress).run()
