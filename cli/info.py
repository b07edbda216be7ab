"""Describe an image sequence: frame range, missing frames, size, windows, channels, compression.

Examples:
  facegraft info plates/sh010.####.exr
  facegraft info plates/sh010.####.exr --json
"""
from __future__ import annotations

import argparse
import json

NAME = "info"
HELP = "frame range, missing frames, windows and channels of a plate"
ORDER = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plate", help="image sequence pattern, e.g. plates/sh010.####.exr")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(pattern: str) -> dict:
    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.io import exr
    from facegraft.inference.io.sequence import SequencePattern, format_frames

    seq = SequencePattern(pattern)
    frames = seq.on_disk()
    if not frames:
        raise FaceGraftError("no frames found", path=pattern, hint="check the path and the padding (#### is four digits)")
    missing = sorted(set(range(frames[0], frames[-1] + 1)) - set(frames))
    spec = exr.read_header(seq.path(frames[0]))
    formats = sorted({str(f) for f in spec.channelformats} or {str(spec.format)})
    return {
        "pattern": pattern,
        "first": frames[0],
        "last": frames[-1],
        "count": len(frames),
        "missing": missing,
        "missing_text": format_frames(missing),
        "data_window": [spec.x, spec.y, spec.width, spec.height],
        "display_window": [spec.full_x, spec.full_y, spec.full_width, spec.full_height],
        "pixel_aspect": float(spec.get_float_attribute("PixelAspectRatio", 1.0)),
        "channels": list(spec.channelnames),
        "format": formats,
        "compression": spec.get_string_attribute("compression", ""),
    }


def run(args: argparse.Namespace) -> int:
    info = describe(args.plate)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    dx, dy, dw, dh = info["data_window"]
    fx, fy, fw, fh = info["display_window"]
    print(f"{info['pattern']}")
    print(f"  frames      {info['first']}-{info['last']} ({info['count']} on disk)")
    print(f"  missing     {info['missing_text'] or 'none'}")
    print(f"  display     {fw}x{fh} at ({fx},{fy}), pixel aspect {info['pixel_aspect']:g}")
    print(f"  data window {dw}x{dh} at ({dx},{dy})")
    print(f"  channels    {', '.join(info['channels'])} ({'/'.join(info['format'])})")
    print(f"  compression {info['compression'] or 'none'}")
    return 0
