"""Render a shot: run a face model over a plate and write layered EXRs.

Each output frame holds R,G,B,A (the plate with the swap composited), swap.R/G/B/A (the
swapped face premultiplied by its matte), matte.face, matte.holdout and stmap.R/G; see
docs/layers.md. Pixels outside the matte are bit-identical to the plate. --layers writes fewer
FaceGraft layers (e.g. --layers none: only R,G,B,A and the plate's other channels), which
encodes faster, most of all with DWAA/DWAB.

Frames already rendered are kept (so a killed render picks up where it stopped) unless
--overwrite. On a frame that cannot be read:
  --on-error fail  stop at once, exit 4, naming the file and frame
  --on-error skip  write no file for it, carry on, list it at the end and exit 4
  --on-error hold  write the plate passed through (or, when the plate frame itself is unreadable,
                   the nearest readable plate frame before it) with empty FaceGraft layers and
                   facegraft/status = held in the header; exit 0 with a warning

The render settings and their defaults are listed by `facegraft settings` (docs/render_settings.md).

Example:
  facegraft render plates/sh010.####.exr --track sh010.fgtrack.json --model actor.onnx \\
      --out renders/sh010_swap.####.exr --frames 1001-1100 --feather 8 --blend multiband
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_frames, add_json_progress, add_settings
from facegraft.inference.render.settings import for_stage

NAME = "render"
HELP = "run a face model over a plate and write layered EXRs"
ORDER = 58


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plate", help="plate sequence, e.g. plates/sh010.####.exr")
    parser.add_argument("--track", required=True, metavar="FILE", help="the shot track (from `facegraft track`)")
    parser.add_argument("--model", required=True, metavar="FILE", help="face model (.onnx or DeepFaceLab .dfm)")
    parser.add_argument("--out", required=True, metavar="PATTERN", help="output sequence, e.g. renders/sh010_swap.####.exr")
    add_frames(parser)
    parser.add_argument("--face", type=int, default=None, metavar="TRACK_ID",
                        help="which tracked face to replace (default: the track file's target)")
    add_settings(parser.add_argument_group("render settings (docs/render_settings.md)"), for_stage("render"))
    parser.add_argument("--overwrite", action="store_true", help="render frames that already exist again")
    parser.add_argument("--stats", action="store_true", help="print per-stage timings at the end (with --json-progress they are in the result event)")
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.errors import BadFrameError
    from facegraft.inference.io.frames import open_source
    from facegraft.inference.io.sequence import SequencePattern, format_frames
    from facegraft.inference.models import face_model
    from facegraft.inference.progress import Progress, emit, say
    from facegraft.inference.render import renderer
    from facegraft.inference.render.settings import RenderSettings
    from facegraft.inference.track.trackfile import load_track

    quiet = args.json_progress
    SequencePattern(args.out)
    settings = RenderSettings(
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
