"""Track every face over a shot and write the shot track file.

Examples:
  facegraft track plates/sh010.####.exr --out sh010.fgtrack.json
  facegraft track plates/sh010.####.exr --out sh010.fgtrack.json --frames 1001-1100 --face 2 --smooth 0.3
  facegraft track clip.mp4 --out clip.fgtrack.json
  facegraft track plates/sh010.####.exr --out sh010.fgtrack.json --plate-part beauty

A multi-part EXR plate is tracked on the part holding its RGB: the first with R, G and B, or
the part --plate-part names (give the render the same). A still is tracked as frame 1.

Faces are detected, followed frame to frame with 478 landmarks, linked into tracks (ids from
1, left to right as they appear), short gaps bridged, and smoothed over the whole shot with
zero phase (no lag). --face picks the target the render uses: the largest face over the shot,
or a track id from the printed list. Frames where the target is missing are flagged no_face.
Hands in front of a face are found too (--no-hands skips them): frames where one covers the
target face are flagged occluded and listed.
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
    parser.add_argument("plate", metavar="PLATE",
                        help="plate sequence (plate.####.exr), one of its frame files, a still or a video file")
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
    parser.add_argument("--hands", action=argparse.BooleanOptionalAction, default=True,
                        help="look for hands in front of the faces: a face a hand covers is flagged occluded, with "
                             "the fraction covered, and the render keeps the hand in front (--occlusion auto); "
                             "--no-hands skips the search (default: on)")
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
    if track.hands_searched:
        occluded = occluded_frames(track)
        lines.append(f"frames with a hand over the target face (occluded): {format_frames(occluded) if occluded else 'none'}")
    return lines


def occluded_frames(track: ShotTrack) -> list[int]:
    """Frames whose target face is flagged occluded."""
    return [n for n in track.frame_numbers
            if (face := track.face(n)) is not None and "occluded" in face.flags]


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.io.frames import VIDEO_EXTENSIONS, open_source
    from facegraft.inference.io.sequence import resolve_input
    from facegraft.inference.progress import Progress, emit, say
    from facegraft.inference.track import trackfile
    from facegraft.inference.track.tracker import FrameTracker, TrackerOptions, track_shot

    if not args.out.endswith(".json"):
        raise FaceGraftError("the track file name should end in .fgtrack.json", path=args.out,
                             hint="e.g. --out sh010.fgtrack.json")
    plate = resolve_input(args.plate, keep=VIDEO_EXTENSIONS)
    if plate.note:
        say(plate.note, args.json_progress)
    source = open_source(plate.text, args.frames, colorspace=args.plate_colorspace, config=args.ocio_config,
                         part=args.plate_part or None)
    options = TrackerOptions(device=args.device, redetect=max(1, args.redetect), tiled_every=max(1, args.tiled_every),
                             max_gap=max(0, args.max_gap), on_error=args.on_error, hands=args.hands)
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
             target=track.target, no_face=no_face, occluded=occluded_frames(track) if track.hands_searched else None)
    say(f"wrote {args.out}", args.json_progress)
    return 0
