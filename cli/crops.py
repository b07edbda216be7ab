"""Write aligned face crops and a contact sheet from a shot track, to check the track by eye.

Examples:
  facegraft crops sh010.fgtrack.json plates/sh010.####.exr --out crops/
  facegraft crops sh010.fgtrack.json plates/sh010.####.exr --out crops/ --res 512 --coverage head --face 2

Crops are EXR (half float, the plate's colour space) named crops/crop.####.exr: R, G, B the
aligned face exactly as models see it before their colour conversion, A the face matte.
Without --frames, every frame the track covers is cropped. crops/contact_sheet.png shows
the frames with landmarks, boxes and track ids drawn (target green, other faces yellow,
flagged frames framed red).
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_frames, add_json_progress

NAME = "crops"
HELP = "write aligned face crops (EXR) and a contact sheet (PNG) from a shot track"
ORDER = 25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("track", metavar="TRACK", help="shot track file from `facegraft track`")
    parser.add_argument("plate", metavar="PLATE",
                        help="the plate the track was made from (sequence, one of its frame files, or video)")
    parser.add_argument("--out", required=True, metavar="FOLDER", help="folder for crop.####.exr and contact_sheet.png")
    parser.add_argument("--res", type=int, default=256, help="crop size in pixels (default: 256)")
    parser.add_argument("--coverage", default="whole_face", choices=("face", "whole_face", "head"),
                        help="how much around the face the crop takes (default: whole_face)")
    parser.add_argument("--face", default=None, metavar="ID", help="track id to crop (default: the track file's target)")
    parser.add_argument("--name", default="crop", help="file name stem of the crops (default: crop)")
    parser.add_argument("--sheet-frames", type=int, default=36, metavar="N",
                        help="at most N frames on the contact sheet, spread over the shot (default: 36)")
    parser.add_argument("--no-sheet", action="store_true", help="skip the contact sheet")
    parser.add_argument("--plate-colorspace", default=None, metavar="SPACE",
                        help="colour space of the plate (default: the one recorded in the track file)")
    parser.add_argument("--ocio-config", default=None, metavar="CONFIG",
                        help="OCIO config (default: the one recorded in the track file)")
    add_frames(parser)
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from facegraft.inference.errors import FaceGraftError
    from facegraft.inference.io import colour, contact_sheet, exr
    from facegraft.inference.io.frames import VIDEO_EXTENSIONS, open_source
    from facegraft.inference.io.sequence import format_frames, resolve_input
    from facegraft.inference.progress import Progress, say
    from facegraft.inference.track import align, mattes, trackfile

    if not 16 <= args.res <= 4096:
        raise FaceGraftError(f"--res {args.res} is out of range", hint="use 16 to 4096 pixels, e.g. 256")
    track = trackfile.load_track(args.track)
    space = args.plate_colorspace or track.plate.get("colorspace") or colour.DEFAULT_PLATE_SPACE
    config = args.ocio_config or track.plate.get("ocio_config") or colour.DEFAULT_CONFIG
    wanted = int(args.face) if args.face is not None and args.face.isdigit() else track.target
    if args.face is not None and wanted not in {int(t["id"]) for t in track.tracks}:
        ids = ", ".join(str(t["id"]) for t in track.tracks) or "none"
        raise FaceGraftError(f"the track file has no track {args.face}", path=args.track, hint=f"tracks: {ids}")
    frames = args.frames or format_frames(track.frame_numbers)  # default: the frames the track covers
    given = resolve_input(args.plate, keep=VIDEO_EXTENSIONS)
    if given.note:
        say(given.note, args.json_progress)
    source = open_source(given.text, frames, colorspace=space, config=config,
                         start=int(track.plate.get("video_start") or 1))
    track.require_frames(source.frames, args.track)
    sheet_frames = set(contact_sheet.pick_frames(source.frames, max(1, args.sheet_frames)))
    cells = []
    missing = []
    written = 0
    with Progress("crops", len(source.frames), json_lines=args.json_progress) as progress:
        for frame in source.frames:
            plate = source.read(frame)
            face = track.face(frame, wanted)
            if face is None:
                missing.append(frame)
            else:
                rgb = align.crop(plate.rgb, face.transform, args.res, args.coverage, origin=plate.origin)
                matte = mattes.crop_mattes(face.landmarks, face.transform, args.res, args.coverage)["face"]
                pixels = np.concatenate([rgb, matte[..., None]], axis=-1).astype(np.float16)
                spec = exr.new_spec(args.res, args.res, ["R", "G", "B", "A"], np.float16)
                exr.set_attributes(spec, {
                    "compression": "zip", "facegraft/frame": int(frame), "facegraft/track": int(face.track),
                    "facegraft/coverage": args.coverage, "facegraft/template": align.TEMPLATE_NAME,
                    "facegraft/colorspace": space, "facegraft/transform": " ".join(f"{v:.9g}" for v in face.transform.ravel()),
                    "facegraft/flags": ",".join(face.flags),
                })
                exr.write_image(os.path.join(args.out, f"{args.name}.{frame:04d}.exr"), pixels, spec, frame)
                written += 1
            if frame in sheet_frames and not args.no_sheet:
                thumb, scale = contact_sheet.thumbnail(plate.rgb, 320, space, config)
                record = track.frames[frame]
                drawn = contact_sheet.draw_frame(thumb, scale, plate.origin, record, wanted)
                flags = list(record.flags) + sorted({f for x in record.faces if x.track == wanted for f in x.flags})
                cells.append(contact_sheet.cell(drawn, frame, flags, 320))
            progress.update(frame=frame)
    if cells:
        sheet_path = os.path.join(args.out, "contact_sheet.png")
        contact_sheet.write_png(sheet_path, contact_sheet.sheet(cells))
        say(f"wrote {sheet_path}", args.json_progress)
    say(f"wrote {written} crop(s) to {os.path.join(args.out, args.name + '.####.exr')}", args.json_progress)
    if missing:
        say(f"no face of track {wanted} on frame(s) {format_frames(missing)}: no crop written there", args.json_progress)
    return 0
