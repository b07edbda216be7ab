"""Tracking speed on a 2K EXR plate made from the sample footage, split by stage.

    python bench/track.py [--frames 48] [--clip single_face.mp4] [--size 2048x1152] [--threads 1]

The 640x360 clip is upscaled to 2K and written as half-float EXR in a temporary folder
(the real ingest code), then timed: EXR read, the detector (whole frame, and the tiled full
search), landmarks (FaceMesh + both irises), the per-frame tracker without I/O, smoothing and
assembly, and `track_shot` end to end. Each stage reports wall time and the CPU time of this
process (the CPU figure holds up when other work shares the cores; the load average is printed
at the start and the end). Prints the device and the date; no assertions.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from facegraft.inference import assets
from facegraft.inference.io import exr
from facegraft.inference.io.frames import open_source
from facegraft.inference.io.ingest import ingest
from facegraft.inference.track import landmarks, tracker


@dataclass
class Preloaded:
    """Frames already in memory, so the tracker is timed without I/O."""

    plates: dict
    frames: list
    name: str = "preloaded"
    colorspace: str = "ACEScg"

    def read(self, frame: int):  # noqa: ANN201
        return self.plates[frame]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class Timer:
    """Wall and CPU (this process) time of repeated calls."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __call__(self, fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN204
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.wall.append(time.perf_counter() - t)
        self.cpu.append(time.process_time() - c)
        return out

    def line(self) -> str:
        w, c = self.wall, self.cpu
        return (f"wall {1000 * statistics.median(w):7.2f} ms median {1000 * statistics.mean(w):7.2f} mean "
                f"{1000 * min(w):6.2f} best | CPU {1000 * statistics.median(c):7.2f} median {1000 * statistics.mean(c):7.2f} mean")


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--clip", default="single_face.mp4", choices=assets.FOOTAGE)
    parser.add_argument("--size", default="2048x1152")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="passes of the per-frame tracker over the frames")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    exr.configure_threads(os.cpu_count() or 1)

    print(f"FaceGraft tracking benchmark, {dt.datetime.now().isoformat(timespec='seconds')}")
    load = load_average()
    print(f"device: {cpu_name()}, {os.cpu_count()} cores (load average {load:.1f} at start); onnxruntime {ort.__version__} on {args.device}, "
          f"{args.threads} thread(s) per model")
    with tempfile.TemporaryDirectory(prefix="facegraft_bench_") as folder:
        pattern = str(Path(folder) / "plate.####.exr")
        ingest(str(assets.footage_path(args.clip)), pattern, start=1001, frames=f"1001-{1000 + args.frames}",
               resize=(width, height))
        print(f"plate: {args.frames} frames of {args.clip} upscaled to {width}x{height}, half-float EXR (ZIP)")
        source = open_source(pattern)

        reads, plates = Timer(), {}
        for n in source.frames:
            plates[n] = reads(source.read, n)

        ft = tracker.FrameTracker(tracker.TrackerOptions(device=args.device, threads=args.threads))
        first = plates[source.frames[0]]
        whole, tiled, meshes, irises = Timer(), Timer(), Timer(), Timer()
        det = ft.detectors.detect(first.rgb, first.origin, "ACEScg")  # warm up
        roi = landmarks.roi_from_detection(det[0])
        for n in source.frames[: min(16, len(source.frames))]:
            rgb, origin = plates[n].rgb, plates[n].origin
            whole(ft.detectors.detect, rgb, origin, "ACEScg", tiled=False)
            tiled(ft.detectors.detect, rgb, origin, "ACEScg", tiled=True)
            mesh, _ = meshes(ft.models.mesh_points, rgb, roi, origin, "ACEScg")
            irises(ft.models.iris_points, rgb, mesh, origin, "ACEScg")
            roi = landmarks.roi_from_landmarks(mesh)

        preloaded = Preloaded(plates, list(source.frames))
        steps, per_index = Timer(), []
        for _ in range(args.repeat):
            ft.reset()
            per_index = [steps(ft.step, index, plates[n].rgb, plates[n].origin, "ACEScg", "ocio://studio-config-latest")
                         for index, n in enumerate(source.frames)]
        smooth = Timer()
        shot = smooth(tracker.assemble, per_index, list(source.frames), smooth=0.5)

        no_io, end_to_end = Timer(), Timer()
        no_io(tracker.track_shot, preloaded, tracker=ft)
        end_to_end(tracker.track_shot, open_source(pattern), tracker=ft)

    n = len(source.frames)
    faces = sum(len(shot.frames[f].faces) for f in shot.frame_numbers)
    print(f"faces tracked: {faces} on {n} frames; tiled search every {ft.options.redetect * ft.options.tiled_every} "
          f"frames, whole-frame search every {ft.options.redetect}")
    print(f"read EXR (OIIO)                  {reads.line()}")
    print(f"detect, whole frame (sRGB+net)   {whole.line()}")
    print(f"detect, tiled full search        {tiled.line()}")
    print(f"landmarks: FaceMesh              {meshes.line()}")
    print(f"landmarks: 2 irises              {irises.line()}")
    print(f"tracker step (detect+landmarks)  {steps.line()}")
    print(f"  -> {1 / statistics.mean(steps.wall):.1f} fps wall, {1 / statistics.mean(steps.cpu):.1f} fps of CPU, "
          f"no I/O (mean over {len(steps.wall)} steps, periodic searches included)")
    print(f"smoothing + transforms + flags   {1000 * smooth.wall[0] / n:7.2f} ms a frame")
    for label, t in (("track_shot, frames in memory", no_io), ("track_shot, from EXR", end_to_end)):
        print(f"{label:32s} {1000 * t.wall[0] / n:7.2f} ms a frame wall ({n / t.wall[0]:5.1f} fps), "
              f"{1000 * t.cpu[0] / n:7.2f} ms CPU")
    print(f"load average at the end: {load_average():.1f}")


if __name__ == "__main__":
    main()
