"""Send a shot to a render farm: one ``track`` task, then ``render`` chunks that wait for it.

  facegraft farm submit plates/sh010.####.exr --model sh010_actor.onnx \\
      --out renders/sh010_swap.####.exr --frames 1001-1240 --chunk 10 --engine opencue

Engines: openjd (Open Job Description; runs here with `openjd run`, or --bundle-only writes the
job bundle for Deadline Cloud and runs nothing here), opencue (Cuebot job spec via pyoutline) and
deadline (Deadline 10 jobs for the FaceGraft plugin, which shows per-frame progress, or the stock
CommandLine plugin). --dry-run writes the job folder and sends nothing. Every check (plate and
holdout frames on disk, plate part, model, output folder) runs before anything is written; PLATE
and --holdout may be one frame file of their sequence. GPU render tasks run with --device cuda
(--gpu-device) unless --device is given, so a node whose GPU fails stops and the task is retried
elsewhere.

--json-progress prints JSON lines on stdout (messages as info events) ending with a result event:
  {"event": "result", "stage": "farm", "engine": "deadline", "job_name": ..., "job_dir": ...,
   "submitted": true, "job_ids": [...], "job_names": [...], "submit_command": ..., "exit_code": 0, ...}
or an error event naming the file and what to do.

Exit codes of submit: 0 ok, 2 user error (nothing written), 5 unusable model; with openjd (run
here) the job's own exit code. Exit codes of the farm's tasks (docs/farm.md, "Exit codes"):
  0    done
  2    user error (bad path, option or range)    no retry: fix the job
  3    missing asset (facegraft setup)           on another worker, or after fixing this one
  4    a plate frame cannot be read              no, unless the storage was flaky
  5    the model file is unusable                no
  6    the node cannot run the --device asked    yes, on another node
  7    storage full or unwritable                yes: nothing partial is left
  130  interrupted                               yes
Finished frames are kept on a retry. See docs/farm.md.
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_frames, add_json_progress, add_setting, add_shot_options
from facegraft.farm.settings import CHUNK, ENGINE, GPU_DEVICE

DEADLINE_PLUGINS = ("FaceGraft", "CommandLine")

NAME = "farm"
HELP = "submit a shot to a render farm (Open Job Description, OpenCue, Deadline)"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="farm_command", metavar="ACTION")
    submit = sub.add_parser("submit", help="check a shot and submit it (or write the job files with --dry-run)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_argument("plate", metavar="PLATE", help="plate sequence, e.g. plates/sh010.####.exr, or one of its frame files")
    submit.add_argument("--model", required=True, help="face model (.onnx)")
    submit.add_argument("--out", required=True, help="output sequence, e.g. renders/sh010_swap.####.exr")
    add_frames(submit)
    add_setting(submit, CHUNK)
    add_setting(submit, ENGINE)
    submit.add_argument("--dry-run", action="store_true", help="write the job folder only; submit nothing")
    submit.add_argument("--bundle-only", action="store_true",
                        help="openjd: write the job bundle for Deadline Cloud (`deadline bundle submit DIR`) and "
                             "never run it here with `openjd run`")
    submit.add_argument("--job-dir", default=None,
                        help="folder for the job files (default: jobs/NAME in the output folder)")
    submit.add_argument("--track", default=None,
                        help="shot track path (default: OUTNAME.fgtrack.json beside the output)")
    submit.add_argument("--name", default=None,
                        help="job name (default: facegraft_OUTNAME_MODEL_YYYYMMDD-HHMMSS, unique per submission)")
    submit.add_argument("--priority", type=int, default=50, help="0-100 (default: 50)")
    submit.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=True,
                        help="render tasks need a GPU host (default: yes)")
    add_setting(submit, GPU_DEVICE)
    submit.add_argument("--memory-gb", type=float, default=16.0, help="host memory a task needs (default: 16)")
    submit.add_argument("--tags", default="", help="comma-separated host tags, e.g. gpu,facegraft")
    submit.add_argument("--facegraft-exe", default=None,
                        help="facegraft command on the workers (default: the one beside this Python)")
    engine = submit.add_argument_group("engine specific")
    engine.add_argument("--show", default=None, help="OpenCue show (default: $SHOW, else facegraft)")
    engine.add_argument("--shot", default=None, help="OpenCue shot (default: $SHOT, else the output name)")
    engine.add_argument("--pool", default=None, help="Deadline pool")
    engine.add_argument("--group", default=None, help="Deadline group")
    engine.add_argument("--deadline-plugin", default=DEADLINE_PLUGINS[0], choices=DEADLINE_PLUGINS,
                        help="Deadline plugin the tasks run with: FaceGraft shows per-frame progress (install it "
                             "once from the job folder, docs/farm.md), CommandLine needs nothing installed "
                             f"(default: {DEADLINE_PLUGINS[0]})")
    add_shot_options(submit)
    add_json_progress(submit)
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
    from facegraft.inference.progress import emit, say

    shot = submit.make_shot(args.plate, args.model, args.out, frames=args.frames, track=args.track,
                            options=shot_options(args), log=lambda message: say(message, args.json_progress))
    engine_options = {k: getattr(args, k) for k in ("show", "shot", "pool", "group", "deadline_plugin")
                      if getattr(args, k)}
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    job = submit.make_job(shot, chunk=args.chunk, executable=parse_executable(args.facegraft_exe), name=args.name,
                          priority=args.priority, gpu=args.gpu, gpu_device=args.gpu_device,
                          memory_gb=args.memory_gb, tags=tags, engine_options=engine_options)
    job_dir = Path(args.job_dir) if args.job_dir else Path(os.path.dirname(shot.out)) / "jobs" / job.name
    result = submit.submit(job, args.engine, job_dir, dry_run=args.dry_run, bundle_only=args.bundle_only)
    if args.json_progress:
        emit("result", stage="farm", **result)
    return int(result["exit_code"])
