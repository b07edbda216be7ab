"""FaceGraft end to end on the sample footage, on a laptop's CPU in minutes.

    python -m facegraft.training.demo --out demo_out [--steps 1500] [--frames 48]

1. ingest both sample clips to scene-linear EXR plates (ACEScg, half float);
2. track the faces over each plate;
3. cut a 64 px faceset of each person (the man of single_face.mp4, the woman of
   WolfgangLanger_Pexels.mp4);
4. train a small comb model on both;
5. export the man's model for the woman's plate (ONNX) and check it against torch;
6. render the woman's plate with the man's face (EXR layers) with the production renderer,
   colour matched (``rct``) and blended ``multiband``;
7. write an sRGB contact sheet and an animated GIF of plate vs render, and a quality report.

After 1500 CPU steps (about 6.5 minutes on 2 cores) the swapped face is recognisably the other
person but soft: it shows the pipeline, not the quality a GPU and a few hours give. Use
``--steps`` and ``--width`` to trade time for quality.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from facegraft.inference import assets
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, exr
from facegraft.inference.io.sequence import SequencePattern
from facegraft.inference.progress import Progress, say

FIRST = 1001
SOURCE = ("man", "single_face.mp4")  # the face put in
PLATE = ("woman", "WolfgangLanger_Pexels.mp4")  # the plate rendered
INGEST_SPACE = "sRGB - Texture"  # how the sample clips are encoded


def _stage(number: int, text: str, json_lines: bool) -> float:
    say(f"\n[{number}/7] {text}", json_lines)
    return time.perf_counter()


def _done(start: float, json_lines: bool) -> None:
    say(f"      done in {time.perf_counter() - start:.1f} s", json_lines)


def _as_footage(rgb: np.ndarray, plate_space: str) -> np.ndarray:
    """8-bit sRGB the way the sample clips were encoded (the inverse of ingest), so the preview
    looks like the source video rather than a tone-mapped view of it."""
    shown = colour.converter(plate_space, INGEST_SPACE)(colour.sanitize(rgb))
    return (np.clip(shown, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def preview(plate: str, render: str, frames: list[int], out: Path, plate_space: str = colour.DEFAULT_PLATE_SPACE) -> tuple[Path, Path]:
    """An sRGB contact sheet (plate above render) and an animated GIF of plate | render."""
    import cv2
    from PIL import Image

    from facegraft.inference.io import contact_sheet

    plate_seq, render_seq = SequencePattern(plate), SequencePattern(render)
    pairs = []
    for frame in frames:
        before = exr.read_image(plate_seq.path(frame), frame).rgb().astype(np.float32)
        after = exr.read_image(render_seq.path(frame), frame).rgb().astype(np.float32)
        pairs.append((_as_footage(before, plate_space), _as_footage(after, plate_space)))
    picks = np.unique(np.linspace(0, len(pairs) - 1, min(6, len(pairs))).round().astype(int))
    small = [(cv2.resize(a, (320, 180), interpolation=cv2.INTER_AREA), cv2.resize(b, (320, 180), interpolation=cv2.INTER_AREA))
             for a, b in (pairs[i] for i in picks)]
    cells = [a for a, _ in small] + [b for _, b in small]
    sheet = contact_sheet.write_png(out / "contact_sheet.png",
                                    contact_sheet.sheet(cells, columns=len(small), gap=2, background=24), rgb=True)
    gif = out / "preview.gif"
    images = [Image.fromarray(np.concatenate([a, b], axis=1)) for a, b in pairs]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=1000 // 24, loop=0)
    return sheet, gif


def run_demo(out: Path, *, steps: int = 1500, frames: int = 48, res: int = 64, width: int = 16, batch: int = 8,
             json_lines: bool = False, evaluate_model: bool = True) -> dict[str, Path]:
    from facegraft.inference.io.frames import open_source
    from facegraft.inference.io.ingest import ingest
    from facegraft.inference.models.face_model import load as load_face_model
    from facegraft.inference.render.renderer import render_shot
    from facegraft.inference.render.settings import RenderSettings
    from facegraft.inference.track.tracker import track_shot
    from facegraft.inference.track.trackfile import save_track

    from .export import export_model
    from .extract import extract
    from .loop import TrainConfig, train

    out.mkdir(parents=True, exist_ok=True)
    last = FIRST + frames - 1
    plates, tracks, facesets = {}, {}, {}

    start = _stage(1, f"ingest {frames} frames of each sample clip to EXR plates", json_lines)
    for name, clip in (SOURCE, PLATE):
        plates[name] = str(out / "plates" / name / f"{name}.####.exr")
        ingest(str(assets.footage_path(clip)), plates[name], in_colorspace=INGEST_SPACE, start=FIRST,
               frames=f"{FIRST}-{last}", json_progress=json_lines)
    _done(start, json_lines)

    start = _stage(2, "track the faces", json_lines)
    for name in plates:
        source = open_source(plates[name])
        with Progress(f"track {name}", len(source.frames), json_lines=json_lines) as progress:
            shot = track_shot(source, progress=progress)
        tracks[name] = str(out / "tracks" / f"{name}.fgtrack.json")
        Path(tracks[name]).parent.mkdir(parents=True, exist_ok=True)
        save_track(shot, tracks[name])
    _done(start, json_lines)

    start = _stage(3, f"cut {res} px facesets", json_lines)
    for name in plates:
        folder = out / "facesets" / name
        report = extract(plates[name], identity=name, out=folder, res=res, track=tracks[name], json_progress=json_lines)
        facesets[name] = report.faceset.path
        say(f"      {name}: {len(report.faceset)} faces ({report.duplicates} near duplicates, "
            f"{len(report.flagged)} low-confidence left out)", json_lines)
    _done(start, json_lines)

    start = _stage(4, f"train a {res} px comb model for {steps} steps on the CPU", json_lines)
    run = out / "run"
    result = train(TrainConfig(facesets=[str(facesets[n]) for n in (SOURCE[0], PLATE[0])], out=str(run), res=res,
                               steps=steps, batch=batch, width=width, latent=128, lr=3e-4, warmup=50,
                               preview_every=max(steps // 4, 1), save_every=max(steps // 4, 1),
                               resume=(run / "checkpoint.pt").is_file(), json_progress=json_lines))
    if result.losses:
        say(f"      loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}, {result.samples_per_second:.1f} samples/s",
            json_lines)
    _done(start, json_lines)

    start = _stage(5, f"export the {SOURCE[0]}'s model for the {PLATE[0]}'s plate", json_lines)
    model = out / "models" / f"{PLATE[0]}_as_{SOURCE[0]}.onnx"
    exported = export_model(run, source=SOURCE[0], target=PLATE[0], out=model)
    say(f"      parity with torch: max abs difference {exported.max_abs_diff:.2g}", json_lines)
    _done(start, json_lines)

    start = _stage(6, "render the plate with the swapped face", json_lines)
    render = str(out / "render" / f"{PLATE[0]}_swap.####.exr")
    source = open_source(plates[PLATE[0]])
    from facegraft.inference.track.trackfile import load_track

    face_model = load_face_model(model, device="cpu", threads=2)
    with Progress("render", len(source.frames), json_lines=json_lines) as progress:
        rendered = render_shot(source, load_track(tracks[PLATE[0]]), face_model, render, RenderSettings(blend="multiband"),
                               progress=progress, overwrite=True, track_path=tracks[PLATE[0]])
    _done(start, json_lines)

    start = _stage(7, "previews and a quality report", json_lines)
    sheet, gif = preview(plates[PLATE[0]], render, list(source.frames), out)
    paths = {"plates": out / "plates", "render": Path(render).parent, "model": model, "contact_sheet": sheet,
             "preview": gif, "training_preview": run / "preview.png"}
    if evaluate_model:
        from .evaluate import evaluate

        report_dir = out / "report"
        evaluate(model, plates[PLATE[0]], tracks[PLATE[0]], report_dir, faceset=facesets[SOURCE[0]], json_progress=json_lines)
        paths["report"] = report_dir / "report.json"
    _done(start, json_lines)
    say(f"\nrendered {len(rendered.rendered)} frames ({len(rendered.no_face)} without a face)", json_lines)
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facegraft.training.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500: about 6.5 minutes on 2 cores; the face is recognisable from ~1000)")
    parser.add_argument("--frames", type=int, default=48, help="frames of each clip to use (default 48)")
    parser.add_argument("--width", type=int, default=16, help="network width (default 16)")
    parser.add_argument("--batch", type=int, default=8, help="faces per identity per step (default 8)")
    parser.add_argument("--no-eval", action="store_true", help="skip the quality report")
    parser.add_argument("--json-progress", action="store_true", help="progress as JSON lines on stdout")
    args = parser.parse_args(argv)
    if args.frames < 2 or args.frames > 72:
        parser.error("--frames must be 2 to 72 (the shorter sample clip has 72 frames)")
    started = time.perf_counter()
    try:
        paths = run_demo(Path(args.out), steps=args.steps, frames=args.frames, width=args.width, batch=args.batch,
                         json_lines=args.json_progress, evaluate_model=not args.no_eval)
    except FaceGraftError as exc:
        print(f"demo: error: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    minutes = (time.perf_counter() - started) / 60
    print(f"\nFaceGraft demo finished in {minutes:.1f} min:")
    for key, path in paths.items():
        print(f"  {key.replace('_', ' '):18s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
