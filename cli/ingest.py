"""Turn a video file or display-referred stills into a scene-linear EXR plate.

Examples:
  facegraft ingest clip.mp4 plates/clip.####.exr
  facegraft ingest clip.mov plates/clip.####.exr --in-colorspace "Rec.1886 Rec.709 - Display" --start 1001
  facegraft ingest scans/shot.%04d.png plates/shot.####.exr --in-colorspace "sRGB - Texture"

Frames are written as half-float EXR (ZIP) in --plate-colorspace; frames already on disk are kept.
A video is numbered from --start; an image sequence keeps its own frame numbers.
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_colour, add_json_progress

NAME = "ingest"
HELP = "video or stills -> scene-linear EXR plate"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, still image, or image sequence pattern")
    parser.add_argument("out", help="output EXR pattern, e.g. plates/clip.####.exr")
    parser.add_argument("--in-colorspace", default="sRGB - Texture",
                        help="colour space of the source pixels (default: 'sRGB - Texture')")
    parser.add_argument("--start", type=int, default=1001,
                        help="videos and stills only: frame number of the first frame (default 1001); "
                             "an image sequence keeps its own frame numbers")
    parser.add_argument("--frames", default=None,
                        help="output frames to write, e.g. 1001-1024 (default: all); every one must be in the source")
    parser.add_argument("--compression", default="zip", help="EXR compression: zip, piz, dwaa, none… (default zip)")
    parser.add_argument("--overwrite", action="store_true", help="rewrite frames that already exist")
    add_colour(parser)
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.io.frames import VIDEO_EXTENSIONS
    from facegraft.inference.io.ingest import ingest
    from facegraft.inference.io.sequence import resolve_input
    from facegraft.inference.progress import say

    source = resolve_input(args.source, keep=VIDEO_EXTENSIONS)
    if source.kind == "frame":  # a frame file of an image sequence: the sequence (a still stays one image)
        say(source.note, args.json_progress)
    written = ingest(source.text if source.kind == "frame" else args.source, args.out, in_colorspace=args.in_colorspace, colorspace=args.plate_colorspace,
                     config=args.ocio_config, start=args.start, frames=args.frames, compression=args.compression,
                     overwrite=args.overwrite, json_progress=args.json_progress)
    say(f"wrote {len(written)} frame(s) to {args.out}", args.json_progress)
    return 0
