"""Cut a faceset (aligned face crops in the model's colour space) from a plate or a video.

Uses the renderer's own read, colour, tracking and alignment code, so the model is trained on
exactly the crops it will see when rendering. Extracting again into an existing faceset
appends (identity, resolution, coverage and colour space must match; faces already there are
skipped) and refuses anything else.

Examples:
  facegraft extract plates/sh010.####.exr --identity double --out facesets/double --res 256
  facegraft extract actor_interview.mp4 --identity actor --out facesets/actor --frames 1-400
  facegraft extract plates/sh010.####.exr --identity double --out facesets/double --track sh010.fgtrack.json --face 2
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_colour, add_frames, add_json_progress, smooth_strength
from facegraft.inference.io.colour import DEFAULT_MODEL_SPACE

NAME = "extract"
HELP = "cut aligned face crops of one person into a faceset for training"
ORDER = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="EXR plate pattern (plates/sh010.####.exr), one of its frame files, or a video file")
    parser.add_argument("--identity", required=True, help="name of the person (the decoder of the model is named so)")
    parser.add_argument("--out", required=True, help="faceset folder (created, or appended to)")
    parser.add_argument("--res", type=int, default=256,
                        help="crop size in pixels, 16 to 2048 (default 256); extract at the size you train at: "
                             "`facegraft train` takes a power of two 64-1024 and by default the facesets' size")
    parser.add_argument("--coverage", default="whole_face", choices=("face", "whole_face", "head"),
                        help="how much around the face a crop holds (default whole_face)")
    add_frames(parser)
    parser.add_argument("--face", default="largest", help="'largest' or a track id from `facegraft track` (default largest)")
    parser.add_argument("--in-colorspace", default=None, metavar="SPACE",
                        help="colour space of a video or display-referred stills (default 'sRGB - Texture')")
    parser.add_argument("--track", default=None, metavar="FGTRACK", help="use this track file instead of tracking again")
    parser.add_argument("--smooth", type=smooth_strength, default=0.5, metavar="0..1",
                        help="landmark smoothing when tracking, 0 = off (default 0.5)")
    parser.add_argument("--min-motion", type=float, default=0.001,
                        help="drop a face whose landmarks moved less than this fraction of the crop since the last kept "
                             "one, unless an eye or the mouth opened or closed (a blink is always kept); 0 keeps every "
                             "frame (default 0.001)")
    parser.add_argument("--keep-flagged", action="store_true",
                        help="keep faces the tracker flagged low confidence (left out by default)")
    parser.add_argument("--max-occlusion", type=float, default=0.05, metavar="FRACTION",
                        help="leave out faces whose matte hands cover more than this fraction of "
                             "(the track's occlusion; default 0.05)")
    parser.add_argument("--mask-occlusion", action="store_true",
                        help="keep those faces instead, with the hands cut out of their mattes so the training "
                             "losses ignore them")
    add_colour(parser, model_space=True,
               model_space_default=f"{DEFAULT_MODEL_SPACE}; appending to a faceset needs the faceset's own")
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.io.colour import DEFAULT_MODEL_SPACE
    from facegraft.inference.io.frames import VIDEO_EXTENSIONS
    from facegraft.inference.io.sequence import resolve_input
    from facegraft.inference.progress import say
    from facegraft.training.extract import SKIPPED_FLAGS, extract

    source = resolve_input(args.source, keep=VIDEO_EXTENSIONS)
    if source.note:
        say(source.note, args.json_progress)
    report = extract(
        source.text, identity=args.identity, out=args.out, res=args.res, coverage=args.coverage, frames=args.frames,
        face=args.face, in_colorspace=args.in_colorspace, plate_colorspace=args.plate_colorspace,
        model_colorspace=args.model_colorspace or DEFAULT_MODEL_SPACE, config=args.ocio_config, track=args.track,
        smooth=args.smooth, min_motion=args.min_motion, skip_flags=() if args.keep_flagged else SKIPPED_FLAGS,
        max_occlusion=args.max_occlusion, mask_occlusion=args.mask_occlusion,
        json_progress=args.json_progress,
    )
    fs = report.faceset
    say(f"faceset '{fs.identity}': {len(fs)} faces in {fs.path} (+{report.added} new, {report.duplicates} near duplicates "
        f"dropped, {report.already_there} already there, {len(report.no_face)} frames without the face)", args.json_progress)
    say(f"contact sheet: {fs.path / 'preview.png'}; track: {report.track_path}", args.json_progress)
    return 0
