"""Before training: does the source footage cover every face of the plate?

For every plate face (the --target faceset, cut from the plate) the nearest source faces (the
--source faceset, the actor put in) in pose and expression: eye openness, mouth openness, yaw and
pitch, measured from the facesets' landmarks. A plate face is covered when a source face is within
--within (one step = 0.1 of eye or mouth openness, or 10 degrees of yaw or pitch). Writes to --out:
coverage.json (every plate face, its nearest source faces and what it lacks), worst.png (the
worst-covered plate faces beside their nearest source faces) and coverage.png (both facesets
plotted: yaw against pitch, eyes against mouth). Prints a plain verdict, e.g. "12% of plate faces
(57 of 472) have no source face within 1: eyes shut (40 faces; ...) not covered."

Examples:
  facegraft coverage --source facesets/actor --target facesets/double --out reports/coverage
  facegraft coverage --source facesets/actor_day1 --source facesets/actor_day2 --target facesets/sh010 \\
      --out reports/sh010_coverage --within 1.5
"""
from __future__ import annotations

import argparse

NAME = "coverage"
HELP = "before training: which plate faces the source footage covers (pose, eyes, mouth)"
ORDER = 51


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", required=True, metavar="FACESET",
                        help="faceset of the SOURCE identity (the face put in); repeat for several")
    parser.add_argument("--target", action="append", required=True, metavar="FACESET",
                        help="faceset cut from the PLATE (the faces to replace); repeat for several")
    parser.add_argument("--out", required=True, help="report folder (coverage.json, worst.png, coverage.png)")
    parser.add_argument("--within", type=float, default=1.0,
                        help="distance under which a plate face counts as covered (default 1.0: one step = 0.1 of "
                             "eye or mouth openness, or 10 degrees of yaw or pitch)")
    parser.add_argument("--worst", type=int, default=12, metavar="N",
                        help="plate faces shown in worst.png (default 12)")


def run(args: argparse.Namespace) -> int:
    import sys

    from facegraft.training.coverage import check_coverage

    report = check_coverage(args.source, args.target, args.out, within=args.within, worst=max(args.worst, 1))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(report.verdict)
    for key, path in report.paths.items():
        print(f"  {key:6s} {path}")
    return 0
