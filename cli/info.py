"""Describe an image sequence: frame range, missing frames, size, and every part of its first
frame (name, channels and their precision, data window, compression, tiling, view), with the part
FaceGraft tracks and swaps (the first with R, G and B; --plate-part on track and render picks another).

The sequence may be given as a pattern, as one of its frame files (what Nuke's Read and file
browsers show: the whole sequence is described) or as a still (a one-frame sequence); the
command says which it took.

Examples:
  facegraft info plates/sh010.####.exr
  facegraft info plates/sh010.1001.exr
  facegraft info plates/sh010.####.exr --json
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Optional

NAME = "info"
HELP = "frame range, missing frames and every part (channels, windows, compression) of a plate"
ORDER = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plate", help="image sequence pattern (plates/sh010.####.exr), one of its frame files, or a still")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(pattern: str) -> dict:
    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.io import exr
    from facegraft.inference.io.sequence import SequencePattern, format_frames, resolve_input

    resolved = resolve_input(pattern)
    seq = resolved.sequence or SequencePattern(resolved.text)
    pattern = resolved.text
    frames = seq.on_disk()
    if not frames:
        raise FaceGraftError("no frames found", path=pattern, hint="check the path and the padding (#### is four digits)")
    missing = sorted(set(range(frames[0], frames[-1] + 1)) - set(frames))
    path = seq.path(frames[0])
    specs = exr.read_headers(path, frames[0])
    try:
        rgb: Optional[int] = exr.rgb_part(specs, path, frames[0])
        rgb_problem = ""
    except FaceGraftError as exc:  # stereo, deep, no RGB: described, with why FaceGraft refuses it
        rgb, rgb_problem = None, exc.message
    spec = specs[rgb if rgb is not None else 0]  # the part FaceGraft tracks and swaps, else the first
    return {
        "pattern": pattern,
        "given_as": resolved.kind,  # pattern, frame (a frame file of the sequence) or still
        "note": resolved.note,
        "first": frames[0],
        "last": frames[-1],
        "count": len(frames),
        "missing": missing,
        "missing_text": format_frames(missing),
        "data_window": [spec.x, spec.y, spec.width, spec.height],
        "display_window": [spec.full_x, spec.full_y, spec.full_width, spec.full_height],
        "pixel_aspect": float(spec.get_float_attribute("PixelAspectRatio", 1.0)),
        "channels": list(spec.channelnames),
        "format": sorted(set(_formats(spec))),
        "compression": spec.get_string_attribute("compression", ""),
        "parts": [_part(i, s) for i, s in enumerate(specs)],  # every part of the first frame, in file order
        "parts_text": exr.describe_parts(specs),
        "rgb_part": rgb,  # the index of the part holding the RGB (--plate-part picks another); None: see rgb_problem
        "rgb_problem": rgb_problem,
        "views": exr.views(specs),
    }


def _formats(spec: Any) -> list[str]:
    return [str(f) for f in spec.channelformats] or [str(spec.format)] * spec.nchannels


def _part(index: int, spec: Any) -> dict:
    from facegraft.inference.io import exr

    return {
        "index": index,
        "name": exr.part_name(spec),
        "channels": list(spec.channelnames),
        "formats": _formats(spec),
        "data_window": [spec.x, spec.y, spec.width, spec.height],
        "display_window": [spec.full_x, spec.full_y, spec.full_width, spec.full_height],
        "compression": spec.get_string_attribute("compression", ""),
        "tiles": [spec.tile_width, spec.tile_height] if spec.tile_width else None,
        "view": exr.views([spec])[0] if exr.views([spec]) else "",
        "deep": bool(spec.deep),
    }


def _channels_text(channels: list[str], formats: list[str]) -> str:
    """``R, G, B, A (half), Z (float)``: channels grouped by their precision."""
    groups: list[tuple[str, list[str]]] = []
    for channel, fmt in zip(channels, formats):
        if groups and groups[-1][0] == fmt:
            groups[-1][1].append(channel)
        else:
            groups.append((fmt, [channel]))
    return ", ".join(f"{', '.join(names)} ({fmt})" for fmt, names in groups)


def _window_text(window: list[int]) -> str:
    x, y, w, h = window
    return f"{w}x{h} at ({x},{y})"


def run(args: argparse.Namespace) -> int:
    import sys

    info = describe(args.plate)
    if info["note"] and not args.json:
        print(info["note"], file=sys.stderr)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    fx, fy, fw, fh = info["display_window"]
    print(f"{info['pattern']}")
    print(f"  frames      {info['first']}-{info['last']} ({info['count']} on disk)")
    print(f"  missing     {info['missing_text'] or 'none'}")
    print(f"  display     {fw}x{fh} at ({fx},{fy}), pixel aspect {info['pixel_aspect']:g}")
    parts = info["parts"]
    if len(parts) == 1:
        print(f"  data window {_window_text(info['data_window'])}")
        print(f"  channels    {', '.join(info['channels'])} ({'/'.join(info['format'])})")
        print(f"  compression {info['compression'] or 'none'}")
    else:
        print(f"  parts       {len(parts)} (of frame {info['first']})")
        for part in parts:
            name = f"'{part['name']}'" if part["name"] else "(unnamed)"
            role = " (the RGB tracked and swapped)" if part["index"] == info["rgb_part"] else ""
            extras = [f"tiled {part['tiles'][0]}x{part['tiles'][1]}" if part["tiles"] else "",
                      f"view {part['view']}" if part["view"] else "", "deep" if part["deep"] else ""]
            print(f"    {part['index']} {name}{role}: {_channels_text(part['channels'], part['formats'])}")
            print(f"      data window {_window_text(part['data_window'])}, {part['compression'] or 'no'} compression"
                  + "".join(f", {e}" for e in extras if e))
    if info["rgb_problem"]:
        print(f"  FaceGraft cannot swap this plate: {info['rgb_problem']}")
    return 0
