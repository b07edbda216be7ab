"""Tracking speed on a 2K EXR plate made from the sample footage, split by stage.

    python bench/track.py [--frames 48] [--clip single_face.mp4] [--size 2048x1152] [--threads 1]

The 640x360 clip is upscaled to 2K and written as half-float EXR in a temporary folder
(the real ingest code), then timed: EXR read, the detector (whole frame, and the tiled full
search), landmarks (FaceMesh + both irises), the per-frame tracker without I/O, smoothing and
assembly, and `track_shot` end to end. Prints the device and the date; no assertions.
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

from facegraft.inference import assets, exr_io, landmarks, tracker
from facegraft.inference.frames import open_source
from facegraft.inference.ingest import ingest


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


def ms(samples: list[float]) -> str:
    return (f"{1000 * statistics.median(samples):7.2f} ms median, {1000 * statistics.mean(samples):7.2f} ms mean, "
            f"{1000 * min(samples):6.2f} ms best")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--clip", default="single_face.mp4", choices=assets.FOOTAGE)
    parser.add_argument("--size", default="2048x1152")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    exr_io.configure_threads(os.cpu_count() or 1)

    print(f"FaceGraft tracking benchmark, {dt.datetime.now().isoformat(timespec='seconds')}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {cpu_name()}, {os.cpu_count()} cores (load average {load:.1f} at start); onnxruntime {ort.__version__} on {args.device}, "
          f"{args.threads} thread(s) per model")
    with tempfile.TemporaryDirectory(prefix="facegraft_bench_") as folder:
        pattern = str(Path(folder) / "plate.####.exr")
        ingest(str(assets.footage_path(args.clip)), pattern, start=1001, frames=f"1001-{1000 + args.frames}",
               resize=(width, height))
        print(f"plate: {args.frames} frames of {args.clip} upscaled to {width}x{height}, half-float EXR (ZIP)")
        source = open_source(pattern)

        reads, plates = [], {}
        for n in source.frames:
            t = time.perf_counter()
            plates[n] = source.read(n)
            reads.append(time.perf_counter() - t)

        ft = tracker.FrameTracker(tracker.TrackerOptions(device=args.device, threads=args.threads))
        first = plates[source.frames[0]]
        whole, tiled, meshes, irises = [], [], [], []
        det = ft.detectors.detect(first.rgb, first.origin, "ACEScg")  # warm up
        roi = landmarks.roi_from_detection(det[0])
        for n in source.frames[: min(16, len(source.frames))]:
            rgb, origin = plates[n].rgb, plates[n].origin
            t = time.perf_counter()
            ft.detectors.detect(rgb, origin, "ACEScg", tiled=False)
            whole.append(time.perf_counter() - t)
            t = time.perf_counter()
            ft.detectors.detect(rgb, origin, "ACEScg", tiled=True)
            tiled.append(time.perf_counter() - t)
            t = time.perf_counter()
            mesh, _ = ft.models.mesh_points(rgb, roi, origin, "ACEScg")
            meshes.append(time.perf_counter() - t)
            t = time.perf_counter()
            ft.models.iris_points(rgb, mesh, origin, "ACEScg")
            irises.append(time.perf_counter() - t)
            roi = landmarks.roi_from_landmarks(mesh)

        preloaded = Preloaded(plates, list(source.frames))
        ft.reset()
        steps, step_cpu = [], []
        per_index = []
        for index, n in enumerate(source.frames):
            t, c = time.perf_counter(), time.process_time()
            per_index.append(ft.step(index, plates[n].rgb, plates[n].origin, "ACEScg", "ocio://studio-config-latest"))
            steps.append(time.perf_counter() - t)
            step_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        shot = tracker.assemble(per_index, list(source.frames), smooth=0.5)
        assemble_s = time.perf_counter() - t

        t = time.perf_counter()
        tracker.track_shot(preloaded, tracker=ft)
        no_io = time.perf_counter() - t
        t = time.perf_counter()
        tracker.track_shot(open_source(pattern), tracker=ft)
        end_to_end = time.perf_counter() - t

    n = len(source.frames)
    faces = sum(len(shot.frames[f].faces) for f in shot.frame_numbers)
    print(f"faces tracked: {faces} on {n} frames")
    print(f"read EXR (OIIO)                 {ms(reads)}")
    print(f"detect, whole frame (sRGB+net)  {ms(whole)}")
    print(f"detect, tiled full search       {ms(tiled)}   (every {ft.options.redetect} frames)")
    print(f"landmarks: FaceMesh             {ms(meshes)}")
    print(f"landmarks: 2 irises             {ms(irises)}")
    print(f"tracker step (detect+landmarks) {ms(steps)}   -> {1 / statistics.mean(steps):6.1f} fps, no I/O")
    print(f"  same, CPU time of this process {ms(step_cpu)}   (robust to other load on the machine)")
    print(f"smoothing + transforms + flags  {1000 * assemble_s / n:7.2f} ms a frame")
    print(f"track_shot, frames in memory    {1000 * no_io / n:7.2f} ms a frame -> {n / no_io:6.1f} fps")
    print(f"track_shot, from EXR            {1000 * end_to_end / n:7.2f} ms a frame -> {n / end_to_end:6.1f} fps")


if __name__ == "__main__":
    main()
