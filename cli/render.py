"""Render a shot: run a face model over a plate and write layered EXRs.

Each output frame holds R,G,B,A (the plate with the swap composited), swap.R/G/B/A (the
swapped face premultiplied by its matte), matte.face, matte.holdout and stmap.R/G; see
docs/layers.md. Pixels outside the matte are bit-identical to the plate. --layers writes fewer
FaceGraft layers (e.g. --layers none: only R,G,B,A and the plate's other channels), which
encodes faster, most of all with DWAA/DWAB.

PLATE may be a sequence pattern, one frame file of a sequence on disk (plates/sh010.1001.exr:
the whole sequence) or a still (one frame, numbered 1); the command says which it took. Every
part of a multi-part EXR plate is written back; --plate-part names the part whose RGB is
swapped (default: the first with R, G and B; give `facegraft track` the same).

Run it again without --overwrite and it renders only what is stale: a frame on disk is kept when
it is complete and stamped with this render's model, settings, track, plate frame (a hash of its
pixels and the structure of its header: a new date alone is the same frame) and output format
(docs/layers.md, "what done means for a frame"); any other frame is rendered again and the
summary says how many and why (model changed, settings changed, track changed, plate changed,
holdout changed, occlusion model changed, format changed, incomplete). A killed render picks up
where it stopped. On a frame that cannot be read:
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
from typing import TYPE_CHECKING, Optional

from facegraft.cli.options import add_frames, add_json_progress, add_settings
from facegraft.inference.render.settings import for_stage

NAME = "render"
HELP = "run a face model over a plate and write layered EXRs"
ORDER = 58

if TYPE_CHECKING:
    from facegraft.inference.io.sequence import Resolved


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plate", help="plate sequence, e.g. plates/sh010.####.exr, or one of its frame files")
    parser.add_argument("--track", required=True, metavar="FILE", help="the shot track (from `facegraft track`)")
    parser.add_argument("--model", required=True, metavar="FILE", help="face model (.onnx or DeepFaceLab .dfm)")
    parser.add_argument("--out", required=True, metavar="PATTERN", help="output sequence, e.g. renders/sh010_swap.####.exr")
    add_frames(parser)
    parser.add_argument("--face", type=int, default=None, metavar="TRACK_ID",
                        help="which tracked face to replace (default: the track file's target)")
    add_settings(parser.add_argument_group("render settings (docs/render_settings.md)"), for_stage("render"))
    parser.add_argument("--overwrite", action="store_true",
                        help="render every frame again, even those on disk that are up to date")
    parser.add_argument("--stats", action="store_true", help="print per-stage timings at the end (with --json-progress they are in the result event)")
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.errors import BadFrameError
    from facegraft.inference.io.frames import VIDEO_EXTENSIONS, open_source
    from facegraft.inference.io.sequence import SequencePattern, format_frames, resolve_input
    from facegraft.inference.models import face_model
    from facegraft.inference.models.occlusion import missing_hands_warning
    from facegraft.inference.progress import Progress, emit, say
    from facegraft.inference.render import renderer, stamp
    from facegraft.inference.track.trackfile import load_track

    quiet = args.json_progress
    SequencePattern(args.out)
    plate = resolve_input(args.plate, keep=VIDEO_EXTENSIONS)
    holdout = resolve_holdout(args.holdout)
    for resolved in (plate, holdout):
        if resolved is not None and resolved.note:
            say(resolved.note, quiet)
    options = {**vars(args), "holdout": holdout.text if holdout is not None else None}
    settings = renderer.render_settings(options, face=args.face)
    model = face_model.load(args.model, device=args.device, threads=args.threads, batch=args.batch,
                            precision=settings.precision)
    track = load_track(args.track)
    source = open_source(plate.text, args.frames, colorspace=args.plate_colorspace, config=args.ocio_config,
                         part=settings.plate_part or None)
    say(f"rendering {len(source.frames)} frame(s) {format_frames(source.frames)} with {model.info.kind} model "
        f"{model.info.resolution}px on {model.device}", quiet)
    warnings = [(w, args.model) for w in model.warnings]
    no_hands = missing_hands_warning(settings.occlusion, track)  # --occlusion wants hands the track lacks
    warnings += [(no_hands, args.track)] if no_hands else []
    for warning, path in warnings:  # a CPU fall-back (also stamped in each frame), an unpinned OCIO config
        if quiet:
            emit("warning", stage="render", message=warning, file=path)
        else:
            say(f"warning: {warning}")
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
            + (f"; {len(report.existing)} already done and up to date, kept" if report.existing else "")
            + (f"; {len(report.stale)} of them rendered again ({stamp.describe(report.stale, counts_only=True)})"
               if report.stale else ""), quiet)
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


def resolve_holdout(text: Optional[str]) -> Optional[Resolved]:
    """``--holdout``: a sequence pattern, or one frame file of it (a still is refused: the
    holdout must have a frame for every frame rendered)."""
    if not text:
        return None
    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.io.sequence import resolve_input

    resolved = resolve_input(text)
    if resolved.kind == "still":
        raise FaceGraftError("the holdout is one still image, not a sequence", path=text,
                             hint="give the matte sequence, e.g. roto/hands.####.exr (or one of its frame files)")
    return resolved
