"""Render a shot: run a face model over a plate and write layered EXRs.

Each output frame holds R,G,B,A (the plate with the swap composited), swap.R/G/B/A (the
swapped face premultiplied by its matte), matte.face, matte.holdout and stmap.R/G; see
docs/layers.md. Pixels outside the matte are bit-identical to the plate. --layers writes fewer
FaceGraft layers (e.g. --layers none: only R,G,B,A and the plate's other channels), which
encodes faster, most of all with DWAA/DWAB.

Frames already rendered are kept (so a killed render picks up where it stopped) unless
--overwrite. On a frame that cannot be read:
  --on-error fail  stop at once, exit 4, naming the file and frame (default)
  --on-error skip  write no file for it, carry on, list it at the end and exit 4
  --on-error hold  write the plate passed through (or, when the plate frame itself is unreadable,
                   the nearest readable plate frame before it) with empty FaceGraft layers and
                   facegraft/status = held in the header; exit 0 with a warning

Example:
  facegraft render plates/sh010.####.exr --track sh010.fgtrack.json --model actor.onnx \\
      --out renders/sh010_swap.####.exr --frames 1001-1100 --feather 12 --color-match rct
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_colour, add_frames, add_json_progress

NAME = "render"
HELP = "run a face model over a plate and write layered EXRs"
ORDER = 58


def _layers(text: str) -> str:
    from facegraft.inference.io.layers import parse_groups

    try:
        parse_groups(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plate", help="plate sequence, e.g. plates/sh010.####.exr")
    parser.add_argument("--track", required=True, metavar="FILE", help="the shot track (from `facegraft track`)")
    parser.add_argument("--model", required=True, metavar="FILE", help="face model (.onnx or DeepFaceLab .dfm)")
    parser.add_argument("--out", required=True, metavar="PATTERN", help="output sequence, e.g. renders/sh010_swap.####.exr")
    add_frames(parser)
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "tensorrt", "cpu"),
                        help="where the model runs (default: auto = the GPU if there is one, else the CPU)")
    parser.add_argument("--face", type=int, default=None, metavar="TRACK_ID",
                        help="which tracked face to replace (default: the track file's target)")
    parser.add_argument("--holdout", default=None, metavar="PATTERN",
                        help="matte sequence of things the swap must not cover (hands, glasses), e.g. roto/hands.####.exr")
    parser.add_argument("--holdout-channel", default="A", metavar="CHANNEL", help="channel of the holdout matte (default: A)")
    parser.add_argument("--color-match", default="none", choices=("none", "rct", "lct", "hist"),
                        help="match the swap's colour to the plate's face, inside the matte (default: none)")
    parser.add_argument("--blend", default="alpha", choices=("alpha", "multiband"),
                        help="alpha: plain over; multiband: the plate's light and contrast carried onto the face, "
                             "blended in the model's log space (default: alpha)")
    parser.add_argument("--erode", type=float, default=0.0, metavar="PX", help="shrink the matte (plate pixels; negative grows; default: 0)")
    parser.add_argument("--feather", type=float, default=0.0, metavar="PX", help="soften the matte edge (plate pixels; default: 0)")
    parser.add_argument("--on-error", default="fail", choices=("fail", "skip", "hold"),
                        help="what to do with a frame that cannot be read (see above; default: fail)")
    parser.add_argument("--overwrite", action="store_true", help="render frames that already exist again")
    parser.add_argument("--batch", type=int, default=4, metavar="N", help="face crops per model call (default: 4)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for the model (default: 2; fixed so renders are repeatable)")
    parser.add_argument("--compression", default=None, metavar="NAME",
                        help="EXR compression: zip, zips, piz, dwaa, dwab, none… (default: the plate's)")
    parser.add_argument("--layers", default="all", metavar="LIST", type=_layers,
                        help="FaceGraft layers to write besides R,G,B,A: all (default), none, or a comma list "
                             "of swap, matte, stmap")
    parser.add_argument("--stats", action="store_true", help="print per-stage timings at the end (with --json-progress they are in the result event)")
    add_colour(parser)
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.errors import BadFrameError, FaceGraftError
    from facegraft.inference.io.frames import open_source
    from facegraft.inference.io.sequence import SequencePattern, format_frames
    from facegraft.inference.models import face_model
    from facegraft.inference.progress import Progress, emit, say
    from facegraft.inference.render import renderer
    from facegraft.inference.track.trackfile import load_track

    quiet = args.json_progress
    SequencePattern(args.out)
    if args.batch < 1:
        raise FaceGraftError("--batch must be 1 or more")
    settings = renderer.RenderSettings(
        plate_colorspace=args.plate_colorspace, ocio_config=args.ocio_config, color_match=args.color_match,
        blend=args.blend, erode=args.erode, feather=args.feather, face=args.face, holdout=args.holdout,
        holdout_channel=args.holdout_channel, compression=args.compression, layers=args.layers,
    )
    model = face_model.load(args.model, device=args.device, threads=args.threads, batch=args.batch)
    track = load_track(args.track)
    source = open_source(args.plate, args.frames, colorspace=args.plate_colorspace, config=args.ocio_config)
    say(f"rendering {len(source.frames)} frame(s) {format_frames(source.frames)} with {model.info.kind} model "
        f"{model.info.resolution}px on {model.device}", quiet)
    progress = Progress("render", len(source.frames), json_lines=quiet)
    try:
        report = renderer.render_shot(source, track, model, args.out, settings, on_error=args.on_error,
                                      overwrite=args.overwrite, progress=progress, track_path=args.track,
                                      log=lambda message: say(message, quiet))
    finally:
        progress.close()
    summary = renderer.report_json(report)
    if quiet:
        emit("result", stage="render", **summary)
    else:
        say(f"rendered {report.written} frame(s) to {args.out}"
            + (f"; {len(report.existing)} already done" if report.existing else ""), quiet)
        if args.stats:
            say("seconds per stage: " + ", ".join(f"{k} {v}" for k, v in report.timings.as_dict().items()), quiet)
    if report.held:
        say(f"warning: frame(s) {format_frames(report.held)} held (plate passed through, see facegraft/status)", quiet)
    if report.skipped:
        raise BadFrameError(f"{len(report.skipped)} frame(s) could not be rendered and were skipped: "
                            f"{format_frames(report.skipped)}", path=args.plate,
                            hint="fix or replace those plate frames and run the same command again: "
                                 "finished frames are kept")
    return 0
