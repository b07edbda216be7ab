"""Tracking speed on a 2K EXR plate made from the sample footage, split by stage.

    python bench/track.py [--frames 48] [--clip single_face.mp4] [--first 1] [--size 2048x1152]
                          [--threads 1] [--repeat 3] [--no-exr]

The 640x360 clip is upscaled to 2K and written as half-float EXR in a temporary folder
(the real ingest code), then timed:

1. the stages alone on the first frames: EXR read, the detector (whole frame, tiled search),
   FaceMesh, the iris model (both eyes);
2. ``track_shot`` on frames already in memory (no I/O), with hands and without, ``--repeat``
   passes each, split by stage: every network call (detect, mesh, iris, palm, hand) and every
   crop (warp + sRGB conversion: crop/colour) is timed where it happens; "other" is the rest
   (Python, NMS, linking, smoothing, the backward hand pass). Per stage: ms a frame and calls
   a frame; totals as wall and CPU (this process) ms a frame, best and median over the passes;
3. ``track_shot`` from EXR end to end (reads overlapped).

CPU time holds up when other work shares the cores (the load average is printed with every
pass); wall time does not. The woman's clip with her hand: ``--clip WolfgangLanger_Pexels.mp4
--first 40 --frames 120`` (her hand is over her face from video frame 59). No assertions.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnxruntime as ort

from facegraft.inference import assets
from facegraft.inference.io import exr
from facegraft.inference.io.frames import open_source
from facegraft.inference.io.ingest import ingest
from facegraft.inference.track import detect, hands, landmarks, tracker

STAGES = ("detect", "mesh", "iris", "palm", "hand", "crop/colour")


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
        return (f"wall {1000 * statistics.median(w):7.2f} ms median {1000 * min(w):6.2f} best | "
                f"CPU {1000 * statistics.median(c):7.2f} median")


class Stages:
    """Time spent in each stage of the tracker (the calling thread's CPU time and wall time).

    Wraps the sessions' ``run`` and the crop functions of one ``FrameTracker`` (the models run
    one thread each, in the calling thread, so the thread's CPU time is theirs)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[tuple[Any, str, Any]] = []

    def clear(self) -> None:
        self.cpu.clear()
        self.wall.clear()
        self.calls.clear()

    def _wrap(self, owner: Any, attribute: str, stage: str) -> None:
        inner: Callable = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.cpu[stage] += time.process_time() - c
                self.wall[stage] += time.perf_counter() - t
                self.calls[stage] += 1

        self._undo.append((owner, attribute, owner.__dict__.get(attribute)))
        setattr(owner, attribute, timed)

    def attach(self, ft: tracker.FrameTracker) -> None:
        self._wrap(ft.detectors.full.session, "run", "detect")
        self._wrap(ft.models.mesh, "run", "mesh")
        if ft.models.iris is not None:
            self._wrap(ft.models.iris, "run", "iris")
        if ft.hands is not None:
            self._wrap(ft.hands.palms.model.session, "run", "palm")
            self._wrap(ft.hands.landmarker.model.session, "run", "hand")
        # the crop functions, where the modules that call them look them up
        self._wrap(detect, "warp_to_srgb", "crop/colour")
        landmarks.warp_to_srgb = detect.warp_to_srgb  # type: ignore[attr-defined]
        self._wrap(hands, "warp_srgb", "crop/colour")

    def detach(self) -> None:
        for owner, attribute, old in reversed(self._undo):
            if old is None:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, old)
        landmarks.warp_to_srgb = detect.warp_to_srgb  # type: ignore[attr-defined]
        self._undo.clear()


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def shot_passes(ft: tracker.FrameTracker, preloaded: Preloaded, repeat: int) -> dict[str, Any]:
    """``repeat`` passes of ``track_shot`` over frames in memory; per pass the totals and stages."""
    stages = Stages()
    stages.attach(ft)
    passes = []
    try:
        for _ in range(repeat):
            stages.clear()
            load = load_average()
            t, c = time.perf_counter(), time.process_time()
            shot = tracker.track_shot(preloaded, tracker=ft)
            passes.append({"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "load": load,
                           "stages_cpu": dict(stages.cpu), "stages_wall": dict(stages.wall),
                           "calls": dict(stages.calls), "shot": shot})
    finally:
        stages.detach()
    return {"passes": passes}


def report(label: str, result: dict[str, Any], n: int) -> None:
    passes = result["passes"]
    shot = passes[-1]["shot"]
    hand_frames = [f for f in shot.frame_numbers if shot.frames[f].hands]
    cpu = sorted(1000 * p["cpu"] / n for p in passes)
    wall = sorted(1000 * p["wall"] / n for p in passes)
    loads = ", ".join(f"{p['load']:.1f}" for p in passes)
    print(f"\n{label}: {len(passes)} passes of track_shot over {n} frames in memory (load {loads})")
    if shot.hands_searched:
        print(f"  hands found on {len(hand_frames)} frames" + (f" ({hand_frames[0]}-{hand_frames[-1]})" if hand_frames else ""))
        search = shot.params.get("hand_search")
        if search:
            print(f"  palm searches by reason: {search['searches']}; tracking-region retries: {search['retries']}")
    print(f"  {'stage':14s} {'CPU ms/frame':>13s} {'(median)':>9s} {'wall ms/frame':>14s} {'calls/frame':>12s} {'CPU ms/call':>12s}")
    best = min(passes, key=lambda p: p["cpu"])
    accounted = 0.0
    for stage in STAGES:
        if stage not in best["calls"]:
            continue
        per = [1000 * p["stages_cpu"].get(stage, 0.0) / n for p in passes]
        calls = best["calls"][stage]
        accounted += best["stages_cpu"][stage]
        print(f"  {stage:14s} {1000 * best['stages_cpu'][stage] / n:13.2f} {statistics.median(per):9.2f} "
              f"{1000 * best['stages_wall'][stage] / n:14.2f} {calls / n:12.2f} "
              f"{1000 * best['stages_cpu'][stage] / max(calls, 1):12.2f}")
    print(f"  {'other':14s} {1000 * (best['cpu'] - accounted) / n:13.2f}")
    print(f"  total          CPU {cpu[0]:6.2f} ms/frame best, {statistics.median(cpu):6.2f} median | "
          f"wall {wall[0]:6.2f} best, {statistics.median(wall):6.2f} median ({1000 / wall[0]:.1f} fps best)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--first", type=int, default=1, help="first video frame of the clip to use (1 = its start)")
    parser.add_argument("--clip", default="single_face.mp4", choices=assets.FOOTAGE)
    parser.add_argument("--size", default="2048x1152")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="passes of track_shot over the frames in memory")
    parser.add_argument("--no-exr", action="store_true", help="skip the EXR read and end-to-end rows")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    exr.configure_threads(os.cpu_count() or 1)

    print(f"FaceGraft tracking benchmark, {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"device: {cpu_name()}, {os.cpu_count()} cores (load average {load_average():.1f} at start); "
          f"onnxruntime {ort.__version__} on {args.device}, {args.threads} thread(s) per model")
    with tempfile.TemporaryDirectory(prefix="facegraft_bench_") as folder:
        pattern = str(Path(folder) / "plate.####.exr")
        first = 1000 + args.first
        ingest(str(assets.footage_path(args.clip)), pattern, start=1001, frames=f"{first}-{first + args.frames - 1}",
               resize=(width, height))
        print(f"plate: {args.frames} frames of {args.clip} from video frame {args.first}, upscaled to "
              f"{width}x{height}, half-float EXR (ZIP)")
        source = open_source(pattern)

        reads, plates = Timer(), {}
        for n in source.frames:
            plates[n] = reads(source.read, n)

        ft = tracker.FrameTracker(tracker.TrackerOptions(device=args.device, threads=args.threads))
        plain = tracker.FrameTracker(tracker.TrackerOptions(device=args.device, threads=args.threads, hands=False))
        start = plates[source.frames[0]]
        whole, tiled, meshes, irises = Timer(), Timer(), Timer(), Timer()
        det = ft.detectors.detect(start.rgb, start.origin, "ACEScg")  # warm up
        roi = landmarks.roi_from_detection(det[0])
        for n in source.frames[: min(16, len(source.frames))]:
            rgb, origin = plates[n].rgb, plates[n].origin
            whole(ft.detectors.detect, rgb, origin, "ACEScg", tiled=False)
            tiled(ft.detectors.detect, rgb, origin, "ACEScg", tiled=True)
            mesh, _ = meshes(ft.models.mesh_points, rgb, roi, origin, "ACEScg")
            irises(ft.models.eye_points, rgb, mesh, origin, "ACEScg")
            roi = landmarks.roi_from_landmarks(mesh)
        n = len(source.frames)
        print(f"\nstages alone (first {len(whole.wall)} frames; crop + network + decoding):")
        print(f"  read EXR (OIIO)                  {reads.line()}")
        print(f"  detect, whole frame              {whole.line()}")
        print(f"  detect, tiled full search        {tiled.line()}")
        print(f"  landmarks: FaceMesh              {meshes.line()}")
        print(f"  landmarks: 2 eyes (iris, lids)   {irises.line()}")

        preloaded = Preloaded(plates, list(source.frames))
        report("with hands", shot_passes(ft, preloaded, args.repeat), n)
        report("without hands (--no-hands)", shot_passes(plain, preloaded, args.repeat), n)
        print(f"\n(detector: whole frame every {ft.options.redetect} frames, tiles every "
              f"{ft.options.redetect * ft.options.tiled_every}; palm search: see docs/tracking.md)")
        if not args.no_exr:
            end_to_end = Timer()
            end_to_end(tracker.track_shot, open_source(pattern), tracker=ft)
            print(f"track_shot from EXR, with hands: {1000 * end_to_end.wall[0] / n:7.2f} ms a frame wall "
                  f"({n / end_to_end.wall[0]:5.1f} fps), {1000 * end_to_end.cpu[0] / n:7.2f} ms CPU")
    print(f"load average at the end: {load_average():.1f}")


if __name__ == "__main__":
    main()
