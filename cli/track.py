"""Track every face over a shot and write the shot track file.

Examples:
  facegraft track plates/sh010.####.exr --out sh010.fgtrack.json
  facegraft track plates/sh010.####.exr --out sh010.fgtrack.json --frames 1001-1100 --face 2 --smooth 0.3
  facegraft track clip.mp4 --out clip.fgtrack.json

Faces are detected, followed frame to frame with 478 landmarks, linked into tracks (ids from
1, left to right as they appear), short gaps bridged, and smoothed over the whole shot with
zero phase (no lag). --face picks the target the render uses: the largest face over the shot,
or a track id from the printed list. Frames where the target is missing are flagged no_face.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from facegraft.cli.options import add_frames, add_json_progress, add_settings
from facegraft.inference.render.settings import for_stage

NAME = "track"
HELP = "detect and track faces over a shot; write the shot track (.fgtrack.json)"
ORDER = 20

if TYPE_CHECKING:
    from facegraft.inference.track.trackfile import ShotTrack


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plate", metavar="PLATE", help="plate sequence (plate.####.exr) or a video file")
    parser.add_argument("--out", required=True, metavar="TRACK", help="track file to write (e.g. sh010.fgtrack.json)")
    add_frames(parser)
    parser.add_argument("--redetect", type=int, default=12, metavar="N",
                        help="search the whole frame for new faces every N frames (default: 12)")
    parser.add_argument("--tiled-every", type=int, default=4, metavar="K",
                        help="on frames over ~960 px, also search tiles for small faces on every K-th of those "
                             "searches while faces are followed, and always while none is (default: 4)")
    parser.add_argument("--max-gap", type=int, default=3, metavar="N",
                        help="bridge gaps of up to N frames by interpolation (default: 3)")
    parser.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                        help="an unreadable frame stops tracking (fail) or is flagged and skipped (skip)")
    add_settings(parser.add_argument_group("track settings (docs/render_settings.md)"), for_stage("track"))
    add_json_progress(parser)


def summary_lines(track: ShotTrack) -> list[str]:
    """The human summary printed after tracking."""
    from facegraft.inference.io.sequence import format_frames

    frames = track.frame_numbers
    faces = sum(len(track.frames[n].faces) for n in frames)
    no_face = [n for n in frames if "no_face" in track.frames[n].flags]
    target = track.target if track.target is not None else "none"
    lines = [f"{len(frames)} frame(s), {faces} face(s) in {len(track.tracks)} track(s); target track: {target}"]
    for t in track.tracks:
        mark = "*" if t["id"] == track.target else " "
        lines.append(f" {mark}track {t['id']}: frames {t['first']}-{t['last']} ({t['frames']} seen, {t['bridged']} bridged), "
                     f"mean size {t['mean_size']:.0f} px, centre x={t['centre'][0]:.0f} y={t['centre'][1]:.0f}")
    lines.append(f"no-face frames: {format_frames(no_face) if no_face else 'none'}")
    return lines


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.io.frames import open_source
    from facegraft.inference.progress import Progress, emit, say
    from facegraft.inference.track import trackfile
    from facegraft.inference.track.tracker import FrameTracker, TrackerOptions, track_shot

    if not args.out.endswith(".json"):
        raise FaceGraftError("the track file name should end in .fgtrack.json", path=args.out,
                             hint="e.g. --out sh010.fgtrack.json")
    source = open_source(args.plate, args.frames, colorspace=args.plate_colorspace, config=args.ocio_config)
    options = TrackerOptions(device=args.device, redetect=max(1, args.redetect), tiled_every=max(1, args.tiled_every),
                             max_gap=max(0, args.max_gap), on_error=args.on_error)
    tracker = FrameTracker(options)
    with Progress("track", len(source.frames), json_lines=args.json_progress) as progress:
        track = track_shot(source, face=args.face, smooth=args.smooth, progress=progress, tracker=tracker,
                           plate_space=args.plate_colorspace, config=args.ocio_config)
    trackfile.save_track(track, args.out)
    for line in summary_lines(track):
        say(line, args.json_progress)
    if args.json_progress:
        no_face = [n for n in track.frame_numbers if "no_face" in track.frames[n].flags]
        emit("result", track_file=args.out, frames=len(track.frame_numbers), tracks=track.tracks,
             target=track.target, no_face=no_face)
    say(f"wrote {args.out}", args.json_progress)
    return 0
