"""Render throughput against the EXR I/O floor.

Makes 2K and UHD half-float plates (ZIP and DWAA) from the sample footage upscaled, a
synthetic track (the template face placed on the plate), a 256 px face model with a few
convolutions, then measures in one run:

* the I/O floor: ``oiiotool`` reading and writing the same frames with the same compression
  (the plate's three channels);
* the model alone (onnxruntime, the same batches);
* the full ``render_shot`` pipeline (read, crop, model, paste, write overlapped), with every
  layer (``--layers all``, the default: the plate's part with R,G,B,A plus a part per FaceGraft
  layer, 8 channels on a window around the face, ZIP) and with ``--layers none`` (R,G,B,A only);

and prints frames per second, render / floor, render / slowest stage, CPU seconds per frame
(all threads; the floor's from ``oiiotool``'s usage) and per-stage seconds. OpenImageIO runs
with its default thread count (one per core) in both the floor and the render. The floor and
the renders alternate ``--repeat`` times; the medians are printed, with the load average.

    .venv/bin/python bench/render.py [--frames 8] [--sizes 2k,uhd] [--compressions zip,dwaa] [--repeat 1]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "inference"))

from render_fixtures import make_track  # noqa: E402
from render_models import build_conv_model  # noqa: E402

from facegraft.inference import assets  # noqa: E402
from facegraft.inference.io import exr, frames  # noqa: E402
from facegraft.inference.models import face_model  # noqa: E402
from facegraft.inference.render.renderer import render_shot  # noqa: E402
from facegraft.inference.render.settings import RenderSettings  # noqa: E402

SIZES = {"2k": (2048, 1152), "uhd": (3840, 2160)}
LAYER_SETS = ("all", "none")  # --layers: the default, and the composite only
FIRST = 1001


def oiiotool() -> str:
    found = shutil.which("oiiotool", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found:
        return found
    return str(Path(OpenImageIO.__file__).parent / "bin" / "oiiotool")


def make_plate(folder: Path, size: tuple[int, int], compression: str, count: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    pattern = str(folder / "plate.%04d.exr")
    video = frames.open_source(str(assets.footage_path("single_face.mp4")), start=FIRST)
    for frame in range(FIRST, FIRST + count):
        rgb = cv2.resize(video.read(frame).rgb, size, interpolation=cv2.INTER_CUBIC)
        spec = exr.new_spec(size[0], size[1], ["R", "G", "B"], np.float16)
        spec.attribute("compression", compression)
        exr.write_image(pattern % frame, rgb.astype(np.float16), spec)
    return pattern


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def io_floor(pattern: str, out: Path, compression: str, count: int) -> tuple[float, float]:
    """Frames per second and CPU seconds per frame of ``oiiotool`` reading and writing the frames."""
    out.mkdir(parents=True, exist_ok=True)
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run([oiiotool(), "--frames", f"{FIRST}-{FIRST + count - 1}", pattern, "--compression", compression,
                    "-d", "half", "-o", str(out / "copy.%04d.exr")], check=True)
    return count / (time.perf_counter() - start), (_children_cpu() - cpu) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--sizes", default="2k,uhd")
    parser.add_argument("--compressions", default="zip,dwaa")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="measure floor and renders this many times (medians)")
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
        print(f"OpenImageIO threads: {OpenImageIO.get_int_attribute('threads')} (floor and render); "
              f"{args.frames} frames per measurement, median of {args.repeat}")
        header = (f"{'plate':<10}{'layers':<7}{'floor fps':>10}{'render fps':>11}{'render/floor':>13}"
                  f"{'render/slowest':>15}{'cpu s/frame':>12}{'floor cpu':>10}{'load':>6}  stage seconds")
        print(header)
        for size_name in args.sizes.split(","):
            w, h = SIZES[size_name]
            for compression in args.compressions.split(","):
                work = root / f"{size_name}_{compression}"
                pattern = make_plate(work / "plate", (w, h), compression, args.frames)
                face = h * 0.35
                t = np.array([[1 / face, 0, -(w / 2 - face / 2) / face], [0, 1 / face, -(h * 0.45 - face / 2) / face]])
                track = make_track(range(FIRST, FIRST + args.frames), t, moving=2.0)
                source = frames.open_source(pattern.replace("%04d", "####"))
                floors: list[tuple[float, float]] = []
                runs: dict[str, list[tuple[float, float, dict[str, float]]]] = {name: [] for name in LAYER_SETS}
                for _ in range(args.repeat):
                    floors.append(io_floor(pattern, work / "floor", compression, args.frames))
                    for name in LAYER_SETS:
                        settings = RenderSettings(feather=12, erode=4, color_match="rct", compression=compression,
                                                  layers=name)
                        cpu = time.process_time()
                        report = render_shot(source, track, model, str(work / "out" / "r.####.exr"), settings,
                                             overwrite=True)
                        runs[name].append((args.frames / report.timings.wall,
                                           (time.process_time() - cpu) / args.frames, report.timings.as_dict()))
                floor = statistics.median(f for f, _ in floors)
                floor_cpu = statistics.median(c for _, c in floors)
                for name, measured in runs.items():
                    fps = statistics.median(m[0] for m in measured)
                    cpu_frame = statistics.median(m[1] for m in measured)
                    stages = " ".join(f"{k}={v}" for k, v in min(measured, key=lambda m: abs(m[0] - fps))[2].items())
                    slowest = min(floor, model_fps)
                    print(f"{size_name + ' ' + compression:<10}{name:<7}{floor:>10.2f}{fps:>11.2f}{fps / floor:>13.2f}"
                          f"{fps / slowest:>15.2f}{cpu_frame:>12.3f}{floor_cpu:>10.3f}{os.getloadavg()[0]:>6.1f}  {stages}")
                shutil.rmtree(work)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
