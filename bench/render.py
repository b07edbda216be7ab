"""Render throughput against the EXR I/O floor.

Makes 2K and UHD half-float plates (ZIP and DWAA) from the sample footage upscaled, a
synthetic track (the template face placed on the plate), a 256 px face model with a few
convolutions, then measures in one run:

* the I/O floor: ``oiiotool`` reading and writing the same frames with the same compression;
* the model alone (onnxruntime, the same batches);
* the full ``render_shot`` pipeline (read, crop, model, paste, write overlapped);

and prints frames per second, render / floor, render / slowest stage, and per-stage seconds.

    .venv/bin/python bench/render.py [--frames 8] [--sizes 2k,uhd] [--compressions zip,dwaa]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "inference"))

from render_fixtures import make_track  # noqa: E402
from render_models import build_conv_model  # noqa: E402

from facegraft.inference import assets, exr_io, face_model, frames, renderer  # noqa: E402

SIZES = {"2k": (2048, 1152), "uhd": (3840, 2160)}
FIRST = 1001


def oiiotool() -> str:
    found = shutil.which("oiiotool", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found:
        return found
    import OpenImageIO

    return str(Path(OpenImageIO.__file__).parent / "bin" / "oiiotool")


def make_plate(folder: Path, size: tuple[int, int], compression: str, count: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    pattern = str(folder / "plate.%04d.exr")
    video = frames.open_source(str(assets.footage_path("single_face.mp4")), start=FIRST)
    for frame in range(FIRST, FIRST + count):
        rgb = cv2.resize(video.read(frame).rgb, size, interpolation=cv2.INTER_CUBIC)
        spec = exr_io.new_spec(size[0], size[1], ["R", "G", "B"], np.float16)
        spec.attribute("compression", compression)
        exr_io.write_image(pattern % frame, rgb.astype(np.float16), spec)
    return pattern


def io_floor(pattern: str, out: Path, compression: str, count: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run([oiiotool(), "--frames", f"{FIRST}-{FIRST + count - 1}", pattern, "--compression", compression,
                    "-d", "half", "-o", str(out / "copy.%04d.exr")], check=True)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--sizes", default="2k,uhd")
    parser.add_argument("--compressions", default="zip,dwaa")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="facegraft-bench-"))
    try:
        model_path = build_conv_model(root / "face256.onnx", res=256, layers=4, width=16)
        model = face_model.load(model_path, device=args.device, batch=args.batch)
        print(f"FaceGraft render benchmark  {datetime.date.today()}  {platform.node()}  "
              f"{os.cpu_count()} CPU cores  model device: {model.device}  batch {model.batch}")
        crops = np.random.default_rng(0).random((args.frames, 3, 256, 256), dtype=np.float32)
        model.run(crops[: model.batch])  # warm up
        start = time.perf_counter()
        model.run(crops)
        model_fps = args.frames / (time.perf_counter() - start)
        print(f"model alone (256 px, 4 convs x16): {model_fps:.2f} frames/s")
        header = f"{'plate':<14}{'floor fps':>10}{'render fps':>11}{'render/floor':>13}{'render/slowest':>15}  stage seconds"
        print(header)
        for size_name in args.sizes.split(","):
            w, h = SIZES[size_name]
            for compression in args.compressions.split(","):
                work = root / f"{size_name}_{compression}"
                pattern = make_plate(work / "plate", (w, h), compression, args.frames)
                floor = io_floor(pattern, work / "floor", compression, args.frames)
                face = h * 0.35
                t = np.array([[1 / face, 0, -(w / 2 - face / 2) / face], [0, 1 / face, -(h * 0.45 - face / 2) / face]])
                track = make_track(range(FIRST, FIRST + args.frames), t, moving=2.0)
                source = frames.open_source(pattern.replace("%04d", "####"))
                settings = renderer.RenderSettings(feather=12, erode=4, color_match="rct", compression=compression)
                report = renderer.render_shot(source, track, model, str(work / "out" / "r.####.exr"), settings,
                                              overwrite=True)
                fps = args.frames / report.timings.wall
                slowest = min(floor, model_fps)
                stages = " ".join(f"{k}={v}" for k, v in report.timings.as_dict().items())
                print(f"{size_name + ' ' + compression:<14}{floor:>10.2f}{fps:>11.2f}{fps / floor:>13.2f}"
                      f"{fps / slowest:>15.2f}  {stages}")
                shutil.rmtree(work)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
