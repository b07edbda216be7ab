"""Send a shot to a render farm: one ``track`` task, then ``render`` chunks that wait for it.

  facegraft farm submit plates/sh010.####.exr --model sh010_actor.onnx \\
      --out renders/sh010_swap.####.exr --frames 1001-1240 --chunk 10 --engine opencue

Engines: openjd (Open Job Description; runs here with `openjd run`, or on Deadline Cloud as a
job bundle), opencue (Cuebot job spec via pyoutline) and deadline (Deadline 10 CommandLine
jobs). --dry-run writes the job folder and sends nothing. Every check (frames on disk, model,
output folder) runs before anything is written. Task exit codes: 0 ok, 2 user error (retrying
will not help), 3 missing asset, 4 bad frame, 5 bad model file. See docs/farm.md.
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_frames, add_setting, add_shot_options
from facegraft.farm.settings import CHUNK, ENGINE

NAME = "farm"
HELP = "submit a shot to a render farm (Open Job Description, OpenCue, Deadline)"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="farm_command", metavar="ACTION")
    submit = sub.add_parser("submit", help="check a shot and submit it (or write the job files with --dry-run)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_argument("plate", metavar="PLATE", help="plate sequence, e.g. plates/sh010.####.exr")
    submit.add_argument("--model", required=True, help="face model (.onnx)")
    submit.add_argument("--out", required=True, help="output sequence, e.g. renders/sh010_swap.####.exr")
    add_frames(submit)
    add_setting(submit, CHUNK)
    add_setting(submit, ENGINE)
    submit.add_argument("--dry-run", action="store_true", help="write the job folder only; submit nothing")
    submit.add_argument("--job-dir", default=None,
                        help="folder for the job files (default: jobs/NAME in the output folder)")
    submit.add_argument("--track", default=None,
                        help="shot track path (default: OUTNAME.fgtrack.json beside the output)")
    submit.add_argument("--name", default=None, help="job name (default: facegraft_OUTNAME)")
    submit.add_argument("--priority", type=int, default=50, help="0-100 (default: 50)")
    submit.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=True,
                        help="render tasks need a GPU host (default: yes)")
    submit.add_argument("--memory-gb", type=float, default=16.0, help="host memory a task needs (default: 16)")
    submit.add_argument("--tags", default="", help="comma-separated host tags, e.g. gpu,facegraft")
    submit.add_argument("--facegraft-exe", default=None,
                        help="facegraft command on the workers (default: the one beside this Python)")
    engine = submit.add_argument_group("engine specific")
    engine.add_argument("--show", default=None, help="OpenCue show (default: $SHOW, else facegraft)")
    engine.add_argument("--shot", default=None, help="OpenCue shot (default: $SHOT, else the output name)")
    engine.add_argument("--pool", default=None, help="Deadline pool")
    engine.add_argument("--group", default=None, help="Deadline group")
    add_shot_options(submit)
    parser.set_defaults(_farm_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.farm_command != "submit":
        args._farm_parser.print_help()
        return 1
    import os
    from pathlib import Path

    from facegraft.farm import submit
    from facegraft.farm.job import parse_executable
    from facegraft.farm.shot_options import shot_options

    shot = submit.make_shot(args.plate, args.model, args.out, frames=args.frames, track=args.track,
                            options=shot_options(args))
    engine_options = {k: getattr(args, k) for k in ("show", "shot", "pool", "group") if getattr(args, k)}
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    job = submit.make_job(shot, chunk=args.chunk, executable=parse_executable(args.facegraft_exe), name=args.name,
                          priority=args.priority, gpu=args.gpu, memory_gb=args.memory_gb, tags=tags,
                          engine_options=engine_options)
    job_dir = Path(args.job_dir) if args.job_dir else Path(os.path.dirname(shot.out)) / "jobs" / job.name
    return submit.submit(job, args.engine, job_dir, dry_run=args.dry_run)
