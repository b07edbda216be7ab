"""Learn what passes in front of the face in one shot, from a few roto keyframes.

  facegraft occlusion train plates/sh010.####.exr --track sh010.fgtrack.json \\
      --roto roto/sh010_glasses.####.exr --frames 1012,1040,1077 --out sh010_occ.onnx

Roto the occluder (glasses, a hand, a prop: whatever must stay in front of the swap) on three to
five frames that show it differently: arriving, in place, turned, lit differently; a frame
without it (or with the roto empty) teaches what is not an occluder. Any channel of an EXR
sequence at the plate's format works (--roto-channel, default A): a Roto or RotoPaint rendered
from Nuke, the FaceGraft node's holdout input. A small network learns the occluder in the
aligned face crop (default 128 px, a few minutes on a CPU) and is written as an occlusion model;
`facegraft render --occlusion sh010_occ.onnx` applies it to every frame (with the hands the
track found). A preview sheet (NAME.preview.png) shows its mattes on frames that were not
keyframes: check it before rendering, and add a keyframe where it is wrong. See docs/occlusion.md.
"""
from __future__ import annotations

import argparse
from typing import Optional

from facegraft.cli.options import add_colour, add_json_progress

NAME = "occlusion"
HELP = "learn the shot's occluders from roto keyframes (occlusion train)"
ORDER = 56
DEFAULT_COVERAGE = "whole_face"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="train an occlusion model from roto keyframes",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("plate", metavar="PLATE",
                       help="plate sequence, e.g. plates/sh010.####.exr, one of its frame files, or a video file")
    train.add_argument("--track", required=True, metavar="FILE", help="the shot track (from `facegraft track`)")
    train.add_argument("--roto", required=True, metavar="PATTERN",
                       help="roto sequence at the plate's format, e.g. roto/sh010_glasses.####.exr")
    train.add_argument("--roto-channel", default="A", metavar="CHANNEL", help="the roto's matte channel (default: A)")
    train.add_argument("--frames", required=True, metavar="LIST",
                       help="the rotoed keyframes, e.g. 1012,1040,1077 (3 to 5 work best)")
    train.add_argument("--out", required=True, metavar="FILE", help="occlusion model to write (e.g. sh010_occ.onnx)")
    train.add_argument("--preview", default=None, metavar="PNG",
                       help="preview sheet to write (default: next to --out, NAME.preview.png)")
    train.add_argument("--res", type=int, default=128, help="crop size the network sees (default: 128)")
    train.add_argument("--coverage", default=None, choices=("face", "whole_face", "head"),
                       help="how much around the face the crop holds: at least the face model's (default: whole_face, "
                            "or the --model's coverage when it is larger)")
    train.add_argument("--model", default=None, metavar="FILE",
                       help="the face model the occlusion model will render with: its crop must hold the face "
                            "model's, so --coverage defaults to it when larger, and a smaller --coverage is refused")
    train.add_argument("--steps", type=int, default=1000, help="training steps (default: 1000)")
    train.add_argument("--threads", type=int, default=1,
                       help="CPU threads (default: 1; a second thread helps only on an idle machine, and only with "
                            "OMP_WAIT_POLICY=PASSIVE set: on a busy one it is many times slower)")
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    add_colour(train)
    add_json_progress(train)


def coverage_for(asked: Optional[str], face_model: Optional[str]) -> str:
    """The crop's coverage: ``asked``, else ``whole_face`` or the face model's when it is larger;
    a coverage that does not hold the face model's crop is refused (the render would refuse it)."""
    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.models import occlusion
    from facegraft.inference.models.formats import read_info

    if face_model is None:
        return asked or DEFAULT_COVERAGE
    info = read_info(face_model)
    if info.kind == occlusion.KIND:
        raise FaceGraftError("--model takes the face model the occlusion model renders with, not an occlusion model",
                             path=face_model, hint="pass the shot's face model (.onnx or .dfm)")
    if asked is None:
        return DEFAULT_COVERAGE if occlusion.covers(DEFAULT_COVERAGE, info.coverage) else info.coverage
    if not occlusion.covers(asked, info.coverage):
        raise FaceGraftError(f"--coverage {asked} does not hold the '{info.coverage}' crops of the face model: the "
                             "render would refuse the occlusion model", path=face_model,
                             hint=f"leave --coverage out, or pass --coverage {info.coverage}")
    return asked


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.io.frames import VIDEO_EXTENSIONS, open_source
    from facegraft.inference.io.sequence import resolve_input
    from facegraft.inference.progress import emit, say
    from facegraft.inference.track.trackfile import load_track
    from facegraft.training.occlusion import OcclusionConfig, train_occlusion

    quiet = args.json_progress
    if not args.out.endswith(".onnx"):
        from facegraft.inference.errors import FaceGraftError

        raise FaceGraftError("the occlusion model file name should end in .onnx", path=args.out,
                             hint="e.g. --out sh010_occ.onnx")
    plate = resolve_input(args.plate, keep=VIDEO_EXTENSIONS)
    if plate.note:
        say(plate.note, quiet)
    source = open_source(plate.text, colorspace=args.plate_colorspace, config=args.ocio_config)
    track = load_track(args.track)
    cfg = OcclusionConfig(res=args.res, coverage=coverage_for(args.coverage, args.model), steps=args.steps, threads=args.threads, seed=args.seed)
    report = train_occlusion(source, track, args.roto, frames=args.frames, out=args.out, channel=args.roto_channel,
                             cfg=cfg, plate_path=plate.text, preview=args.preview, config=args.ocio_config,
                             plate_space=args.plate_colorspace, json_progress=quiet)
    say(f"trained on keyframes {', '.join(map(str, report.keyframes))} in {report.seconds:.0f} s "
        f"(loss {report.final_loss:.3f}); wrote {report.path}", quiet)
    say(f"preview of its mattes on other frames: {report.preview}", quiet)
    if quiet:
        emit("result", stage="occlusion", model=str(report.path), preview=str(report.preview),
             keyframes=report.keyframes, seconds=round(report.seconds, 1), loss=round(report.final_loss, 4))
    return 0
