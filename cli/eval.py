"""Quality report of a face model on a shot: eyes, mouth, gaze, head pose, identity, expression, flicker.

The model's swap is composited onto the full-resolution plate as the renderer does (or a finished
render is read with --render), and FaceMesh with the iris model's eyelids is run on plate and
composite alike. Writes report.json and PNG plots per frame to --out: eyes.png (eye openness of
plate and swap, per eye), mouth.png, gaze.png, pose.png, identity.png, expression.png,
flicker.png, and the contact sheets swaps.png and blinks.png (the plate's most-shut frames, plate
eyes above the swap's). Identity uses dlib's face-recognition ResNet (pip install
'facegraft[eval]'); without it that part is reported as skipped. docs/training.md explains
every figure.

Example:
  facegraft eval --model models/sh010_actor.onnx --plate plates/sh010.####.exr \\
      --track sh010.fgtrack.json --faceset facesets/actor_heldout --out reports/sh010 \\
      --source-plate plates/actor.####.exr --source-track actor.fgtrack.json
"""
from __future__ import annotations

import argparse
import json

from facegraft.cli.options import add_colour, add_frames, add_json_progress, add_settings
from facegraft.inference.render.settings import setting

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
    parser.add_argument("--source-plate", default=None, metavar="PATTERN",
                        help="the SOURCE identity's footage (with --source-track): its identity is taken from "
                             "full-resolution chips of it rather than from the faceset's model-size crops")
    parser.add_argument("--source-track", default=None, metavar="FILE", help="the track file of --source-plate")
    parser.add_argument("--render", default=None, metavar="PATTERN",
                        help="a finished render of this plate with this model (`facegraft render`) to measure "
                             "(default: composite here with --blend and --color-match)")
    parser.add_argument("--face", type=int, default=None, help="track id (default: the track file's target)")
    parser.add_argument("--identity-frames", type=int, default=32, metavar="N",
                        help="frames spread over the shot whose identity is measured (dlib takes ~0.1 s a face on a "
                             "CPU; default 32)")
    parser.add_argument("--no-identity", action="store_true", help="skip the dlib identity distances")
    parser.add_argument("--no-expression", action="store_true",
                        help="skip the landmark measures (eyes, mouth, gaze, head pose, expression NME)")
    add_settings(parser, (setting("blend"), setting("color_match")))
    add_frames(parser)
    add_colour(parser)
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.render.settings import RenderSettings
    from facegraft.training.evaluate import evaluate, summary

    if args.identity_frames < 1:
        raise FaceGraftError(f"--identity-frames {args.identity_frames} is below 1", hint="use --no-identity to skip it")
    settings = RenderSettings(plate_colorspace=args.plate_colorspace, ocio_config=args.ocio_config,
                              blend=args.blend, color_match=args.color_match)
    report = evaluate(args.model, args.plate, args.track, args.out, faceset=args.faceset, frames=args.frames,
                      face=args.face, plate_colorspace=args.plate_colorspace, config=args.ocio_config,
                      identity=not args.no_identity, expression=not args.no_expression, render=args.render,
                      settings=settings, source_plate=args.source_plate, source_track=args.source_track,
                      identity_frames=args.identity_frames, json_progress=args.json_progress)
    print(json.dumps(report.as_dict()["metrics"], indent=1))
    for line in summary(report):
        print(line)
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {args.out}/report.json")
    return 0
