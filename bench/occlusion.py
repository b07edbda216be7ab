"""Occlusion, measured: the per-shot occlusion model on occluders of known alpha, and hands on the
woman's sample clip.

1. Per-shot model. Occluders of known alpha are composited over real face plates (the woman's
   clip, video frames 241-336, where her hands are down): sunglasses sliding on mid-shot, and a
   hand-shaped cut-out moving across the face (``tests/training/occluders.py``). The composited
   plate is tracked as a user would (`facegraft track`), the model is trained with the defaults
   from 3 roto keyframes (the true alpha on those frames), and on every other frame its matte is
   compared with the truth inside its crop: IoU at 0.5 (pooled over the frames, and the mean over
   frames where the occluder is there) and the area it finds on frames without the occluder; the
   same pooled IoU of the matte a render applies (grown by ``occlusion.GROW`` of its pixels).
   Then the shot is rendered with a model that tints the face, with ``--occlusion none`` and
   with the occlusion model: the share of the occluder (alpha-weighted) the swap covers, where
   the swap would be without it.
2. Hands. The whole clip is tracked with hands; the frames flagged ``occluded`` are compared with
   the frames where her hand is over her face (video frames 59-230); frames 60-230 every 10th are
   rendered with the tinting model with ``--occlusion none`` and ``auto``, and the share of her
   hand (the hand matte at 1, where the swap would go) the swap covers is printed. A before /
   after contact sheet is written.

    .venv/bin/python bench/occlusion.py [--out bench/out/occlusion] [--steps 600] [--quick]

Prints figures (timings with the load average); asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "inference"))
sys.path.insert(0, str(HERE.parent / "tests" / "training"))

import occluders  # noqa: E402
from render_models import build_identity_model  # noqa: E402

from facegraft.inference import assets  # noqa: E402
from facegraft.inference.io import colour, exr  # noqa: E402
from facegraft.inference.io.frames import open_source  # noqa: E402
from facegraft.inference.io.sequence import format_frames  # noqa: E402
from facegraft.inference.models import face_model  # noqa: E402
from facegraft.inference.models import occlusion as occlusion_file  # noqa: E402
from facegraft.inference.render.renderer import render_shot  # noqa: E402
from facegraft.inference.render.settings import RenderSettings  # noqa: E402
from facegraft.inference.track import align, hands, tracker  # noqa: E402
from facegraft.inference.track.trackfile import ShotTrack, load_track, save_track  # noqa: E402
from facegraft.training import occlusion  # noqa: E402

CLIP = "WolfgangLanger_Pexels.mp4"
TINT = [0.12, -0.06, 0.05]  # the swap tinted (model space, log): where it goes shows
PLAIN = {"color_match": "none", "blend": "alpha"}
HAND_FRAMES = range(59, 231)  # video frames with her hand over her face


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def track(plate: str, hands_on: bool = True) -> ShotTrack:
    options = tracker.TrackerOptions(device="cpu", hands=hands_on)
    return tracker.track_shot(open_source(plate), tracker=tracker.FrameTracker(options))


# -- 1. the per-shot model --------------------------------------------------------------------

def make_shot(folder: Path, kind: str, frames: str) -> tuple[str, str, list[np.ndarray]]:
    """The clean plate's frames with ``kind`` composited over them: plate and roto patterns, alphas."""
    clean = open_source(str(assets.footage_path(CLIP)), frames)
    placed = track_frames(clean)
    plates, alphas = [], []
    n = len(clean.frames)
    for i, frame in enumerate(clean.frames):
        plate = clean.read(frame)
        transform = placed.face(frame).transform
        if kind == "glasses":
            occluder = occluders.glasses(transform, plate.shape, occluders.glasses_drop(i, n))
        else:
            inverse = align.invert(transform)
            size = float(np.sqrt(abs(np.linalg.det(inverse[:, :2]))))
            t = i / max(1, n - 1)
            centre = align.apply(inverse, np.array([[-0.2 + 1.4 * t, 0.9]]))[0]  # over the mouth and chin
            occluder = occluders.hand(centre, 0.95 * size, plate.shape, angle=-20 + 30 * t, seed=i)
        plates.append(occluders.composite(plate.rgb, occluder))
        alphas.append(occluder.alpha)
    plate_pattern, roto_pattern = occluders.write_shot(folder, kind, 1001, plates, alphas)
    return plate_pattern, roto_pattern, alphas


def track_frames(source: object) -> ShotTrack:
    options = tracker.TrackerOptions(device="cpu", hands=False)
    return tracker.track_shot(source, tracker=tracker.FrameTracker(options))  # type: ignore[arg-type]


def model_scores(model_path: Path, plate: str, shot: ShotTrack, alphas: list[np.ndarray],
                 keys: list[int]) -> dict[str, float]:
    """IoU of the model's matte (and of the grown matte a render applies) with the true alpha on the
    frames that were not keyframes."""
    model = occlusion_file.load(model_path, device="cpu")
    source = open_source(plate)
    to_model = colour.converter(colour.DEFAULT_PLATE_SPACE, model.info.colorspace)
    inter = union = grown_inter = grown_union = 0
    per_frame, empty = [], []
    for i, frame in enumerate(source.frames):
        if frame in keys or shot.face(frame) is None:
            continue
        p = source.read(frame)
        h, w = p.shape
        transform = shot.face(frame).transform
        predicted = model.matte(p.rgb, p.origin, transform, to_model, (0, h, 0, w))
        grown = model.matte(p.rgb, p.origin, transform, to_model, (0, h, 0, w), grow=occlusion_file.GROW)
        _, inside = align.uncrop(np.ones((model.resolution,) * 2, np.float32), transform, model.info.coverage, (h, w))
        a, b = (predicted >= 0.5) & (inside > 0.5), (alphas[i] >= 0.5) & (inside > 0.5)
        inter += int((a & b).sum())
        union += int((a | b).sum())
        g = (grown >= 0.5) & (inside > 0.5)
        grown_inter += int((g & b).sum())
        grown_union += int((g | b).sum())
        if b.sum() > 100:
            per_frame.append(float((a & b).sum() / max(1, (a | b).sum())))
        elif b.sum() == 0:
            empty.append(float(a.sum() / max(1, (inside > 0.5).sum())))
    return {"pooled_iou": inter / max(1, union), "grown_iou": grown_inter / max(1, grown_union), "mean_iou": float(np.mean(per_frame)) if per_frame else float("nan"),
            "min_iou": float(np.min(per_frame)) if per_frame else float("nan"), "frames": len(per_frame),
            "false_area": float(np.max(empty)) if empty else 0.0, "empty_frames": len(empty)}


def swap_coverage(plate: str, shot: ShotTrack, face: face_model.FaceModel, out: Path, occlusion_setting: str,
                  alphas: list[np.ndarray]) -> tuple[float, float, float]:
    """Where the swap would cover the occluder without occlusion: the share of the occluder's
    pixels (alpha >= 0.5) the swap still covers (swap.A >= 0.5), the alpha-weighted share it
    covers, and that share beyond what the occluder lets through (a lens of alpha 0.93 shows 7% of
    the face behind it: the swap's, rightly)."""
    source = open_source(plate)
    results = {}
    for mode in ("none", occlusion_setting):
        pattern = str(out / mode.replace("/", "_").replace(".", "_") / "r.####.exr")
        render_shot(source, shot, face, pattern, RenderSettings(occlusion=mode, **PLAIN), overwrite=True)
        results[mode] = pattern
    covered = beyond = total = 0.0
    pixels = pixels_covered = 0
    for i, frame in enumerate(source.frames):
        before = swap_alpha(results["none"], frame)
        after = swap_alpha(results[occlusion_setting], frame)
        weight = alphas[i] * (before > 0.5)
        covered += float((weight * after).sum())
        beyond += float((weight * np.maximum(after - before * (1.0 - alphas[i]), 0.0)).sum())
        total += float(weight.sum())
        occluder = (alphas[i] >= 0.5) & (before > 0.5)
        pixels += int(occluder.sum())
        pixels_covered += int((occluder & (after >= 0.5)).sum())
    return pixels_covered / max(pixels, 1), covered / max(total, 1e-9), beyond / max(total, 1e-9)


def swap_alpha(pattern: str, frame: int) -> np.ndarray:
    """``swap.A`` of a render frame over the display window (0 off its layer part)."""
    images, index = exr.read_plate_parts(pattern.replace("####", f"{frame:04d}"))
    beauty = images[index]
    out = np.zeros((beauty.spec.full_height, beauty.spec.full_width), np.float32)
    for image in images:
        if "swap.A" in image.channels:
            x, y, w, h = image.data_window
            out[y:y + h, x:x + w] = image.get(["swap.A"])[..., 0]
    return out


def per_shot_model(out: Path, steps: int, frames: str, face: face_model.FaceModel,
                   kinds: tuple[str, ...] = ("glasses", "hand"), reuse: bool = False) -> None:
    for kind in kinds:
        folder = out / kind
        plate, roto, alphas = make_shot(folder, kind, frames)
        start = time.perf_counter()
        shot = track(plate)
        lost = [n for n in shot.frame_numbers if shot.face(n) is None]
        print(f"[{kind}] tracked {len(shot.frame_numbers)} frames in {time.perf_counter() - start:.0f} s ({load()}); "
              f"face lost on {format_frames(lost) if lost else 'no frame'}")
        tracked = [n for n in shot.frame_numbers if shot.face(n) is not None]
        keys = [tracked[int(round((len(tracked) - 1) * f))] for f in (0.2, 0.5, 0.85)]
        cfg = occlusion.OcclusionConfig(steps=steps)
        model_path = folder / f"{kind}_occ.onnx"
        if not (reuse and model_path.is_file()):
            wall, cpu = time.perf_counter(), cpu_seconds()
            report = occlusion.train_occlusion(open_source(plate), shot, roto, frames=keys, out=model_path, cfg=cfg,
                                               plate_path=plate)
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            print(f"[{kind}] trained from keyframes {keys}: {steps} steps at {cfg.res} px, {wall:.0f} s wall, "
                  f"{cpu:.0f} CPU s on {cfg.threads} thread(s) ({load()}); preview {report.preview}")
        scores = model_scores(model_path, plate, shot, alphas, keys)
        print(f"[{kind}] other frames: IoU pooled {scores['pooled_iou']:.3f}, mean {scores['mean_iou']:.3f} "
              f"(min {scores['min_iou']:.3f}) over {scores['frames']} frames with the occluder, pooled "
              f"{scores['grown_iou']:.3f} grown by {occlusion_file.GROW} px as a render applies it; "
              f"largest area found on the {scores['empty_frames']} frames without it: {scores['false_area']:.2%}")
        save_track(shot, folder / f"{kind}.fgtrack.json")
        pixels, share, beyond = swap_coverage(plate, shot, face, folder / "render", str(model_path), alphas)
        print(f"[{kind}] where the swap would cover the occluder without the model, it still covers {pixels:.2%} of "
              f"the occluder's pixels; alpha-weighted {share:.2%}, {beyond:.2%} beyond what the occluder lets through")


# -- 2. hands on the woman's clip -------------------------------------------------------------

def hands_on_clip(out: Path, face: face_model.FaceModel, quick: bool) -> None:
    from facegraft.inference.io.ingest import ingest

    frames = "40-260" if quick else None
    start = time.perf_counter()
    source = open_source(str(assets.footage_path(CLIP)), frames)
    shot = tracker.track_shot(source, tracker=tracker.FrameTracker(tracker.TrackerOptions(device="cpu")))
    seconds = time.perf_counter() - start
    flagged = [n for n in shot.frame_numbers if shot.face(n) is not None and "occluded" in shot.face(n).flags]
    truth = [n for n in shot.frame_numbers if n in HAND_FRAMES]
    hit = len(set(flagged) & set(truth))
    print(f"[hands] {len(shot.frame_numbers)} frames tracked with hands in {seconds:.0f} s "
          f"({seconds / len(shot.frame_numbers) * 1000:.0f} ms/frame, {load()})")
    print(f"[hands] flagged occluded: {format_frames(flagged)}; her hand over her face: {format_frames(truth)}; "
          f"recall {hit / max(1, len(truth)):.3f}, precision {hit / max(1, len(flagged)):.3f}")
    tracks = {h.track for n in shot.frame_numbers for h in shot.frames[n].hands}
    print(f"[hands] hand tracks: {len(tracks)}; occlusion on flagged frames "
          f"{np.min([shot.face(n).occlusion for n in flagged]):.2f}-{np.max([shot.face(n).occlusion for n in flagged]):.2f}")
    track_path = out / "woman.fgtrack.json"
    save_track(shot, track_path)
    marked = json.loads((HERE.parent / "tests" / "inference" / "data" / "hand_points.json").read_text())["frames"]
    picked = sorted(set(range(60, 231, 10)) | {int(f) for f in marked})
    plate = str(out / "plate" / "woman.####.exr")
    ingest(str(assets.footage_path(CLIP)), plate, start=1, frames=",".join(map(str, picked)))
    exr_source = open_source(plate, ",".join(map(str, picked)))
    shot = load_track(track_path)
    renders = {}
    for mode in ("none", "auto"):
        renders[mode] = str(out / f"render_{mode}" / "r.####.exr")
        render_shot(exr_source, shot, face, renders[mode], RenderSettings(occlusion=mode, **PLAIN), overwrite=True)
    covered = total = 0.0
    for frame in picked:
        hand = hands.hands_matte([h.landmarks for h in shot.frames[frame].hands], (360, 640))
        before, after = swap_alpha(renders["none"], frame), swap_alpha(renders["auto"], frame)
        solid = (hand == 1.0) & (before > 0.5)
        covered += float(after[solid].sum())
        total += float(solid.sum())
    print(f"[hands] {len(picked)} frames rendered ({format_frames(picked)}): the swap covers {covered / max(total, 1):.2%} "
          f"of her hand matte where it would without occlusion ({int(total)} px; by construction)")
    hits, held, spilled = [], 0, 0
    for frame, points in marked.items():
        before, after = swap_alpha(renders["none"], int(frame)), swap_alpha(renders["auto"], int(frame))
        hits += [float(after[y, x]) for x, y in points["hand"] if before[y, x] > 0.5]
        held += sum(1 for x, y in points["not_hand"] if before[y, x] > 0.5 and after[y, x] < 0.5)
        spilled += sum(1 for x, y in points["not_hand"] if before[y, x] > 0.5)
    print(f"[hands] points marked by eye on her hand (frames {', '.join(marked)}): swap.A at most {max(hits):.3f} "
          f"over {len(hits)} points the swap would cover; face points beside the hand held back too: {held} of {spilled}")
    sheet = before_after(renders, plate, picked[::2], out / "hands_before_after.png")
    print(f"[hands] before / after sheet: {sheet}")


def before_after(renders: dict[str, str], plate: str, frames: list[int], path: Path) -> Path:
    """Rows of (plate, swap without occlusion, swap with hands kept in front), cropped to the face."""
    rows = []
    for frame in frames:
        tiles = []
        for pattern in (plate, renders["none"], renders["auto"]):
            image = exr.read_image(pattern.replace("####", f"{frame:04d}"))
            rgb = colour.to_display_uint8(image.rgb(), colour.DEFAULT_PLATE_SPACE)[40:360, 240:640, ::-1]
            tiles.append(np.ascontiguousarray(rgb))
        cv2.putText(tiles[0], str(frame), (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(tiles[1], "occlusion none", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(tiles[2], "occlusion auto", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
        rows.append(np.hstack(tiles))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "out" / "occlusion")
    parser.add_argument("--steps", type=int, default=occlusion.OcclusionConfig().steps)
    parser.add_argument("--frames", default="241-336", help="video frames of the woman's clip for part 1")
    parser.add_argument("--quick", action="store_true", help="track only frames 40-260 of the clip in part 2")
    parser.add_argument("--part", choices=("all", "model", "hands"), default="all")
    parser.add_argument("--kinds", default="glasses,hand", help="occluders of part 1: glasses, hand")
    parser.add_argument("--reuse", action="store_true", help="part 1: measure the models already trained in --out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    face = face_model.load(build_identity_model(args.out / "tint.onnx", 128, shift=TINT), device="cpu")
    if args.part in ("all", "model"):
        per_shot_model(args.out, args.steps, args.frames, face, tuple(args.kinds.split(",")), args.reuse)
    if args.part in ("all", "hands"):
        hands_on_clip(args.out, face, args.quick)


if __name__ == "__main__":
    main()
