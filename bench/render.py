"""Render throughput against each stage alone: the EXR I/O floor, the model, reading, writing.

Makes 2K and UHD half-float plates (ZIP and DWAA) from the sample footage upscaled and a
synthetic track (the template face placed on the plate), then renders them with two kinds of
face model:

* ``conv4``: a 256 px model of four 3x3 convolutions, which costs next to nothing: the
  I/O-bound case, on every plate with every layer (``--layers all``, the default: the plate's
  part plus a part per FaceGraft layer on a window around the face, ZIP) and with
  ``--layers none`` (R,G,B,A only);
* ``comb``: the comb network users train, exported as a FaceGraft model (random weights) at
  each ``--net-res`` (256 and 512 px), on every plate with the default layers. On the CPU it is
  the slowest stage by far, so its rows render ``--net-frames`` frames (few) in batches of
  ``--net-batch``.

Per row, each stage alone, in frames per second:

* ``read``: the render's own read (``FrameSource.read``: every part of the plate), a frame at a time;
* ``write``: the render's output frames (every part) read back, then written again, a frame at
  a time (only the write is timed);
* ``floor``: ``oiiotool`` reading and writing the plate frames with the same compression
  (the plate's three channels): the EXR I/O floor;
* ``model``: the model alone (onnxruntime, the same batches, the row's number of frames, after a
  warm-up batch);

then the whole ``render_shot`` pipeline (read, crop, model, paste, write overlapped), and:

* ``eff`` = render fps / the slowest stage alone, where the stages are the EXR I/O (the
  floor, read + write: on a few CPU cores they share the same cores) and the model alone; this
  is ``bench/gpu.sh``'s figure too;
* ``eff rw`` = render fps / min(read, model, write): against the stages as separate ones, the
  bound where reading and writing overlap on cores of their own (a GPU machine's many cores);
* ``cpu s/f``: CPU seconds per frame of the render (all threads; ``floor cpu``: ``oiiotool``'s);
* ``RSS MiB``: the peak resident memory of this process while the render ran (its high-water
  mark, reset before each render through ``/proc/self/clear_refs``; where that cannot be reset,
  the process's peak so far, marked ``*``); ``GPU MiB``: on a CUDA or TensorRT run, the device
  memory in use at its peak during the render (NVML, else ``nvidia-smi``);
* the render's seconds per stage (summed over threads) and the load average after the row.

OpenImageIO runs with its default thread count (one per core) in every measurement. The
stages and the render alternate ``--repeat`` times; the medians are printed. The networks are
exported in a child process, so torch is never loaded in the process whose memory is measured.

    .venv/bin/python bench/render.py [--frames 8] [--sizes 2k,uhd] [--compressions zip,dwaa] [--repeat 1]
                                     [--models conv4,comb] [--net-res 256,512] [--net-frames 4]
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import OpenImageIO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "inference"))

from gpu_bench import GpuMemory, PeakRss, machine  # noqa: E402
from render_fixtures import make_track  # noqa: E402
from render_models import build_conv_model  # noqa: E402

from facegraft.inference import assets  # noqa: E402
from facegraft.inference.io import exr, frames  # noqa: E402
from facegraft.inference.models import face_model, runtime  # noqa: E402
from facegraft.inference.render.renderer import render_shot  # noqa: E402
from facegraft.inference.render.settings import RenderSettings  # noqa: E402

SIZES = {"2k": (2048, 1152), "uhd": (3840, 2160)}
LAYER_SETS = ("all", "none")  # --layers: the default, and the composite only
FIRST = 1001
GPU_DEVICES = ("cuda", "tensorrt")


def oiiotool() -> str:
    found = shutil.which("oiiotool", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found:
        return found
    return str(Path(OpenImageIO.__file__).parent / "bin" / "oiiotool")


def parse_size(name: str) -> tuple[int, int]:
    """``2k``, ``uhd`` or ``WIDTHxHEIGHT``."""
    if name in SIZES:
        return SIZES[name]
    found = re.fullmatch(r"(\d+)x(\d+)", name)
    if not found:
        raise SystemExit(f"unknown size '{name}': use {', '.join(SIZES)} or WIDTHxHEIGHT")
    return int(found.group(1)), int(found.group(2))


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


def read_alone(source: frames.FrameSource, wanted: list[int]) -> float:
    """Frames per second of the render's own read, a frame at a time."""
    start = time.perf_counter()
    for frame in wanted:
        source.read(frame)
    return len(wanted) / (time.perf_counter() - start)


def write_alone(rendered: str, out: Path, wanted: list[int]) -> float:
    """Frames per second of writing the rendered frames (every part, as read back) again, a frame at a time."""
    out.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    for frame in wanted:
        images, _ = exr.read_plate_parts(rendered.replace("####", f"{frame:04d}"))
        parts = [exr.Part(image.spec, pixels=image.pixels) for image in images]
        start = time.perf_counter()
        exr.write_parts(out / f"w.{frame:04d}.exr", parts)
        seconds += time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return len(wanted) / seconds


@dataclass
class ModelCase:
    """One face model the rows render with."""

    name: str  # conv4 / comb
    res: int
    path: Path
    frames: int
    batch: int
    layer_sets: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.name} {self.res}"


@dataclass
class Measured:
    """One measurement of a row (the medians of ``--repeat`` of them are printed)."""

    read: float
    write: float
    floor: float
    model: float
    floor_cpu: float
    render: float
    cpu: float
    stages: dict[str, float]
    rss: str
    gpu: Optional[float]


@dataclass
class Row:
    plate: str
    model: str
    layers: str
    measured: list[Measured] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(m, name) for m in self.measured)

    def line(self) -> str:
        read, write, floor, model, render = (self.median(k) for k in ("read", "write", "floor", "model", "render"))
        typical = min(self.measured, key=lambda m: abs(m.render - render))
        eff = render / min(floor, model)
        eff_rw = render / min(read, write, model)
        gpu = "-" if typical.gpu is None else f"{typical.gpu:.0f}"
        stages = " ".join(f"{k}={v}" for k, v in typical.stages.items())
        return (f"{self.plate:<12}{self.model:<10}{self.layers:<7}{read:>7.2f}{write:>7.2f}{floor:>7.2f}"
                f"{model:>7.2f}{render:>8.2f}{render / floor:>8.2f}{eff:>6.2f}{eff_rw:>8.2f}"
                f"{self.median('cpu'):>8.3f}{self.median('floor_cpu'):>10.3f}{typical.rss:>9}{gpu:>9}"
                f"{os.getloadavg()[0]:>6.1f}  {stages}")


HEADER = (f"{'plate':<12}{'model':<10}{'layers':<7}{'read':>7}{'write':>7}{'floor':>7}{'model':>7}{'render':>8}"
          f"{'/floor':>8}{'eff':>6}{'eff rw':>8}{'cpu s/f':>8}{'floor cpu':>10}{'RSS MiB':>9}{'GPU MiB':>9}"
          f"{'load':>6}  render stage seconds")


def export_networks(folder: Path, resolutions: list[int], width: int) -> dict[int, Path]:
    """The comb network at each resolution (``gpu_bench.export_comb``), exported in a child process."""
    paths = {res: folder / f"comb{res}.onnx" for res in resolutions}
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from gpu_bench import export_comb\n"
            "for res, path in zip(sys.argv[3::2], sys.argv[4::2]): export_comb(Path(path), int(res), int(sys.argv[2]))")
    args = [str(v) for res, path in paths.items() for v in (res, path)]
    done = subprocess.run([sys.executable, "-c", code, str(HERE), str(width), *args], capture_output=True, text=True)
    if done.returncode != 0:
        tail = [t for t in done.stderr.strip().splitlines() if t.strip()]
        raise SystemExit(f"exporting the comb network failed ({tail[-1] if tail else done.returncode}); "
                         "it needs torch (the train extra). Run with --models conv4 to leave the network rows out")
    return paths


def model_alone(model: face_model.FaceModel, count: int) -> float:
    """Frames per second of the model alone on ``count`` crops (after a warm-up batch)."""
    r = model.resolution
    crops = np.random.default_rng(0).uniform(0.1, 0.6, (count, 3, r, r)).astype(np.float32)
    model.run(crops[: model.batch])  # warm up
    start = time.perf_counter()
    model.run(crops)
    return count / (time.perf_counter() - start)


def measure(case: ModelCase, model: face_model.FaceModel, pattern: str, work: Path, compression: str,
            floor_frames: int, track: Any) -> dict[str, Measured]:
    """The stages alone on one plate, and a render per layer set of ``case``."""
    wanted = list(range(FIRST, FIRST + case.frames))
    source = frames.open_source(pattern.replace("%04d", "####"))
    floor, floor_cpu = io_floor(pattern, work / "floor", compression, floor_frames)
    shutil.rmtree(work / "floor", ignore_errors=True)
    read = read_alone(source, wanted)
    model_fps = model_alone(model, case.frames)
    out: dict[str, Measured] = {}
    for layers in case.layer_sets:
        settings = RenderSettings(feather=12, erode=4, color_match="rct", compression=compression, layers=layers)
        rendered = str(work / "out" / "r.####.exr")
        memory = GpuMemory() if model.device in GPU_DEVICES else None
        cpu = time.process_time()
        with PeakRss() as rss:
            report = render_shot(source, track, model, rendered, settings, frames=wanted, overwrite=True)
        cpu = (time.process_time() - cpu) / len(wanted)
        gpu = memory.peak if memory is not None and memory.stop() is not None else None
        write = write_alone(rendered, work / "write", wanted)
        shutil.rmtree(work / "out", ignore_errors=True)
        out[layers] = Measured(read, write, floor, model_fps, floor_cpu, len(wanted) / report.timings.wall, cpu,
                               report.timings.as_dict(), rss.text(), gpu)
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames per conv4 row and per floor (default 8)")
    parser.add_argument("--sizes", default="2k,uhd", help="plates: 2k, uhd or WIDTHxHEIGHT, comma-separated")
    parser.add_argument("--compressions", default="zip,dwaa")
    parser.add_argument("--models", default="conv4,comb", help="conv4 (I/O-bound), comb (the real network), or both")
    parser.add_argument("--net-res", default="256,512", help="comb network resolutions (default 256,512)")
    parser.add_argument("--net-width", type=int, default=32, help="comb network width (the training default: 32)")
    parser.add_argument("--net-frames", type=int,
                        help="frames per comb row (default: 4 on the CPU, where the network is slow; --frames on a GPU)")
    parser.add_argument("--net-batch", type=int,
                        help="comb rows' batch (default: 2 on the CPU, so the stages overlap in few frames; "
                             "--batch on a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="measure the stages and renders this many times (medians)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    unknown = set(models) - {"conv4", "comb"}
    if unknown:
        parser.error(f"unknown --models {', '.join(sorted(unknown))}: use conv4, comb")
    root = Path(tempfile.mkdtemp(prefix="facegraft-bench-"))
    try:
        print(f"FaceGraft render benchmark  {datetime.datetime.now():%Y-%m-%d %H:%M}  {os.uname().nodename}  "
              f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
        print(f"device: {machine()}", flush=True)
        on_gpu = runtime.providers_for(args.device)[0] != "CPUExecutionProvider"
        net_frames = args.net_frames or (args.frames if on_gpu else 4)
        net_batch = args.net_batch or (args.batch if on_gpu else 2)
        cases = []
        if "conv4" in models:
            cases.append(ModelCase("conv4", 256, build_conv_model(root / "conv4.onnx", res=256, layers=4, width=16),
                                   args.frames, args.batch, LAYER_SETS))
        if "comb" in models:
            resolutions = [int(r) for r in args.net_res.split(",")]
            started = time.perf_counter()
            nets = export_networks(root, resolutions, args.net_width)
            print(f"comb network exported at {', '.join(map(str, resolutions))} px, width {args.net_width}, "
                  f"random weights ({time.perf_counter() - started:.0f} s)", flush=True)
            cases += [ModelCase("comb", res, path, net_frames, net_batch, ("all",)) for res, path in nets.items()]
        plate_frames = max(c.frames for c in cases)
        plates: dict[tuple[str, str], str] = {}
        print(f"OpenImageIO threads: {OpenImageIO.get_int_attribute('threads')}; floors {args.frames} frames; "
              f"median of {args.repeat}; stage columns in frames/s", flush=True)
        print(HEADER, flush=True)
        for case in cases:
            model = face_model.load(case.path, device=args.device, batch=case.batch, precision=args.precision)
            print(f"-- {case.label}: model on {model.device} {model.precision}, batch {model.batch}, "
                  f"{case.frames} frames a row{'; ' + '; '.join(model.warnings) if model.warnings else ''}", flush=True)
            for size_name in args.sizes.split(","):
                w, h = parse_size(size_name)
                for compression in args.compressions.split(","):
                    work = root / f"{size_name}_{compression}"
                    key = (size_name, compression)
                    if key not in plates:
                        plates[key] = make_plate(work / "plate", (w, h), compression, max(plate_frames, args.frames))
                    face = h * 0.35
                    t = np.array([[1 / face, 0, -(w / 2 - face / 2) / face],
                                  [0, 1 / face, -(h * 0.45 - face / 2) / face]])
                    track = make_track(range(FIRST, FIRST + case.frames), t, moving=2.0)
                    rows = [Row(f"{size_name} {compression}", case.label, layers) for layers in case.layer_sets]
                    for _ in range(args.repeat):
                        measured = measure(case, model, plates[key], work, compression, args.frames, track)
                        for row in rows:
                            row.measured.append(measured[row.layers])
                    for row in rows:
                        print(row.line(), flush=True)
            del model
        print("eff = render / min(floor, model); eff rw = render / min(read, write, model); "
              "RSS * = the process's peak so far (could not be reset)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
