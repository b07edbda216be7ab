"""The GPU benchmark behind ``bench/gpu.sh``: one run, one table.

    bench/gpu.sh            # on one H100/H200: under 8 minutes
    bench/gpu.sh --cpu      # the same rows scaled down, on the CPU (what CI runs)

Rows, each measured in its own process (so its peak memory is its own):

* ``gpu tests``: ``pytest -m gpu`` over the test files that carry the mark (all skipped on --cpu).
* ``floor``: ``oiiotool`` reading and writing the plates with the same compression on every core
  of the machine (OpenImageIO's default thread count): the EXR I/O floor.
* ``model alone`` and ``render`` per device and precision (GPU: CUDA fp32, CUDA fp16, TensorRT
  fp16; --cpu: the CPU fp32 and fp16): the exported comb network (random weights) on the crops
  of every frame, then the whole ``render_shot`` pipeline (read, crop, model, paste, write, all
  layers). Pipeline efficiency = render fps / the fps of the slowest stage run alone (the floor
  or the model alone). TensorRT is loaded twice: the first load builds the engine into
  ``$FACEGRAFT_HOME/trt`` (its seconds are the build), the second loads it, as a farm chunk does.
* ``train`` at two resolutions: the training loop's own step (``train_step``: augmentation on
  the device, bf16 autocast and channels-last on CUDA) fed by ``training.loader.Feeder`` from
  in-memory float16 faces, for a fixed number of steps after a warm-up. Samples/s, and on CUDA
  the share of the GPU's dense bf16 peak: FLOPs are counted analytically
  (``training.network.count_flops``: 2 x multiply-adds of every convolution and dense layer of
  the encoder and one decoder per face), x3 for forward + backward; augmentation, losses and the
  optimizer are not counted. ``--compile`` adds a ``torch.compile`` row.

Peak memory per row: the row process's peak resident set (``ru_maxrss``; the floor's is
oiiotool's), and on a GPU the device memory in use at its peak during the row minus before it
(NVML, else ``nvidia-smi``). The table prints the device, the versions and the date.
"""
from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIRST = 1001
ROW_PREFIX = "ROW "

#: Dense bf16 peaks (TFLOP/s, no sparsity) from NVIDIA's data sheets, by what the GPU's name holds.
#: H200 and H100 SXM are the same GH100 at the same clocks; the PCIe and NVL boards run slower.
BF16_PEAK = (("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0),
             ("L40S", 362.0))


def bf16_peak(name: str) -> Optional[float]:
    """The dense bf16 peak assumed for a GPU named ``name`` (None for one not listed)."""
    for needle, peak in BF16_PEAK:
        if needle.lower() in name.lower():
            return peak
    return None


@dataclass
class Scale:
    """How big each part of the run is."""

    name: str
    size: tuple[int, int]  # plate width, height
    frames: int
    compression: str
    model_res: int
    model_width: int
    batch: int
    renders: tuple[tuple[str, str], ...]  # (device, precision)
    train_res: tuple[int, ...]
    train_width: int
    train_batch: int  # faces per identity per step
    warmup: int
    steps: int
    workers: int  # feeder threads
    row_timeout: float  # seconds one row may take


GPU = Scale("gpu", (3840, 2160), 48, "zip", 512, 32, 8, (("cuda", "fp32"), ("cuda", "fp16"), ("tensorrt", "fp16")),
            (256, 512), 32, 8, 5, 30, 4, 300.0)
CPU = Scale("cpu", (960, 540), 4, "zip", 64, 16, 2, (("cpu", "fp32"), ("cpu", "fp16")), (32, 64), 8, 2, 1, 2, 0,
            120.0)


# -- measuring ---------------------------------------------------------------------------------------------
def peak_rss_mib(children: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024.0  # KiB on Linux


class PeakRss:
    """Peak resident memory (MiB) of this process over a ``with`` block.

    Linux resets a process's high-water mark (``VmHWM``) when ``5`` is written to
    ``/proc/self/clear_refs`` (after glibc's ``malloc_trim`` has returned freed heap to the
    system); where that fails, ``peak`` is the process's peak so far (``ru_maxrss``) and
    ``exact`` is False."""

    def __init__(self) -> None:
        self.peak = 0.0
        self.exact = False

    @staticmethod
    def _hwm() -> Optional[float]:
        try:
            found = re.search(r"^VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
        except OSError:
            return None
        return int(found.group(1)) / 1024 if found else None

    def __enter__(self) -> PeakRss:
        try:  # hand memory freed by earlier work back to the system first, so it does not count here
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.exact = self._hwm() is not None
        except OSError:
            self.exact = False
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = self._hwm() if self.exact else None
        self.peak = hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def text(self) -> str:
        return f"{self.peak:.0f}" + ("" if self.exact else "*")


class GpuMemory:
    """Device memory in use (MiB), sampled while a row runs: ``peak`` - ``before``."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.read = self._reader()
        self.before = self.peak = self.read() if self.read else 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True) if self.read else None
        if self._thread:
            self._thread.start()

    @staticmethod
    def _reader() -> Optional[Callable[[], float]]:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return lambda: pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
        except Exception:  # no NVML bindings, or no driver
            pass
        smi = shutil.which("nvidia-smi")
        if not smi:
            return None

        def query() -> float:
            out = subprocess.run([smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=10).stdout
            return float(out.strip().splitlines()[0])

        try:
            query()
        except Exception:
            return None
        return query

    def _poll(self) -> None:
        assert self.read is not None
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.read())

    def stop(self) -> Optional[float]:
        """The peak increase in MiB (None where no GPU can be read)."""
        if not self.read:
            return None
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak = max(self.peak, self.read())
        return self.peak - self.before


# -- the plates and the model ------------------------------------------------------------------------------
def synthetic_frames(size: tuple[int, int], count: int) -> Iterator[np.ndarray]:
    """Plate-like half-float frames where the sample footage is not prepared: smooth light and
    grain, panning a few pixels a frame (grain is what makes EXR compression work)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.18 + 0.1 * np.sin(xx / (w / 7)) * np.cos(yy / (h / 5))
    grain = np.random.default_rng(0).normal(0, 0.01, (h, w, 3)).astype(np.float32)
    rgb = (np.stack([base * 1.1, base, base * 0.8], -1) + grain).astype(np.float16)
    for i in range(count):
        yield np.roll(rgb, 4 * i, axis=1)


def make_plates(folder: Path, scale: Scale) -> tuple[str, str]:
    """The plate sequence (``%04d`` pattern) and where its pixels came from."""
    import render as render_bench  # bench/render.py

    from facegraft.inference.errors import MissingAssetError
    from facegraft.inference.io import exr

    try:
        return render_bench.make_plate(folder, scale.size, scale.compression, scale.frames), "the sample footage upscaled"
    except MissingAssetError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    pattern = str(folder / "plate.%04d.exr")
    for frame, rgb in enumerate(synthetic_frames(scale.size, scale.frames), FIRST):
        spec = exr.new_spec(scale.size[0], scale.size[1], ["R", "G", "B"], np.float16)
        spec.attribute("compression", scale.compression)
        exr.write_image(pattern % frame, rgb, spec)
    return pattern, "synthetic (the sample footage is not prepared here)"


def export_comb(path: Path, res: int, width: int) -> Path:
    """The comb network users train (random weights), exported as a FaceGraft model."""
    import torch

    from facegraft.inference.models import modelfile
    from facegraft.training.export import to_onnx
    from facegraft.training.network import CombNet, NetConfig, Swapper

    torch.manual_seed(0)
    swapper = Swapper(CombNet(NetConfig(res=res, width=width, identities=["source", "target"])), "source").eval()
    stamped = modelfile.stamp(to_onnx(swapper, res), resolution=res, coverage="whole_face", colorspace="ACEScct",
                              source="source", target="target", provenance={"steps": 0, "bench": "random weights"})
    return modelfile.save(stamped, path)


def _track(scale: Scale) -> Any:
    sys.path.insert(0, str(ROOT / "tests" / "inference"))
    from render_fixtures import make_track

    w, h = scale.size
    face = h * 0.35
    t = np.array([[1 / face, 0, -(w / 2 - face / 2) / face], [0, 1 / face, -(h * 0.45 - face / 2) / face]])
    return make_track(range(FIRST, FIRST + scale.frames), t, moving=2.0)


# -- rows (each runs in its own process) --------------------------------------------------------------------
def row_prepare(scale: Scale, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    pattern, origin = make_plates(work / "plate", scale)
    export_comb(work / "model.onnx", scale.model_res, scale.model_width)
    return {"pattern": pattern, "origin": origin, "seconds": time.perf_counter() - started}


def row_floor(scale: Scale, work: Path, pattern: str) -> dict[str, Any]:
    import render as render_bench  # bench/render.py

    fps, cpu = render_bench.io_floor(pattern, work / "floor", scale.compression, scale.frames)
    shutil.rmtree(work / "floor", ignore_errors=True)
    return {"fps": fps, "cpu_s_per_frame": cpu, "rss": peak_rss_mib(children=True)}


def row_render(scale: Scale, work: Path, pattern: str, device: str, precision: str) -> dict[str, Any]:
    from facegraft.inference.io import frames
    from facegraft.inference.models import face_model
    from facegraft.inference.render.renderer import render_shot
    from facegraft.inference.render.settings import RenderSettings

    path = work / "model.onnx"
    out: dict[str, Any] = {}
    started = time.perf_counter()
    model = face_model.load(path, device=device, batch=scale.batch, precision=precision)
    out["load_s"] = time.perf_counter() - started
    if model.engine is not None:  # TensorRT: that was the build; a farm chunk loads it
        out["build_s"], out["built"] = out["load_s"], model.engine.built
        started = time.perf_counter()
        model = face_model.load(path, device=device, batch=scale.batch, precision=precision)
        out["load_s"] = time.perf_counter() - started
        assert model.engine is not None
        out["cached"], out["rebuilt"] = model.engine.cached, model.engine.built
    out["device"], out["warnings"] = model.device, model.warnings
    r = model.resolution
    crops = np.random.default_rng(0).uniform(0.1, 0.6, (scale.frames, 3, r, r)).astype(np.float32)
    model.run(crops[: model.batch])
    started = time.perf_counter()
    model.run(crops)
    out["model_fps"] = scale.frames / (time.perf_counter() - started)
    source = frames.open_source(pattern.replace("%04d", "####"))
    settings = RenderSettings(compression=scale.compression)
    report = render_shot(source, _track(scale), model, str(work / "out" / device / "r.####.exr"), settings,
                         overwrite=True)
    shutil.rmtree(work / "out" / device, ignore_errors=True)
    out["fps"] = scale.frames / report.timings.wall
    out["stages"] = report.timings.as_dict()
    return out


class MemoryFaces:
    """One identity's faces held in memory as a faceset holds them (float16 HWC), read like ``IdentityData``."""

    def __init__(self, count: int, res: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) / res
        base = 0.35 + 0.1 * np.sin(6 * xx)[..., None] * np.cos(4 * yy)[..., None]
        self.faces = (base + rng.normal(0, 0.03, (count, res, res, 3))).astype(np.float16)
        face = (((xx - 0.5) / 0.36) ** 2 + ((yy - 0.55) / 0.45) ** 2 <= 1).astype(np.float32)
        self.mattes = np.stack([face, face * (yy > 0.7)], -1)
        self.weights: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.faces)

    def batch(self, positions: Any, res: int) -> Any:
        import torch

        from facegraft.training.data import Batch

        faces = np.stack([np.asarray(self.faces[p], np.float32) for p in positions])
        mattes = np.repeat(self.mattes[None], len(positions), 0)
        return Batch(torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous(),
                     torch.from_numpy(mattes).permute(0, 3, 1, 2).contiguous())


def row_train(scale: Scale, res: int, compile_net: bool, cpu: bool) -> dict[str, Any]:
    import torch

    from facegraft.training.loader import Feeder, tune
    from facegraft.training.loop import make_optimizer, pick_device, step_parts, train_step
    from facegraft.training.network import CombNet, NetConfig, count_flops

    device = pick_device("cpu" if cpu else "cuda")
    tune(device)
    names = ["source", "target"]
    cfg = NetConfig(res=res, width=scale.train_width, identities=names)
    torch.manual_seed(0)
    flops_per_face = 3 * count_flops(CombNet(cfg, minimum_res=res), res)
    net = CombNet(cfg, minimum_res=res).to(device)
    parts = step_parts(net, make_optimizer(net, 1e-4), device, names, compile=compile_net)
    sources = {name: MemoryFaces(64, res, seed) for seed, name in enumerate(names)}
    g = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {}
    check = device.type != "cuda"  # on a GPU no step waits for its loss (the loop reads them back in batches)
    with Feeder(sources, scale.train_batch, res, device, workers=scale.workers) as feeder:
        started = time.perf_counter()
        for _ in range(scale.warmup + (3 if compile_net else 0)):
            train_step(parts, feeder.draw, g, check=check)
        if device.type == "cuda":
            torch.cuda.synchronize()
        out["warmup_s"] = time.perf_counter() - started
        waited, started, samples, losses = feeder.waited, time.perf_counter(), 0, []
        for _ in range(scale.steps):
            done = train_step(parts, feeder.draw, g, check=check)
            samples += done.samples
            losses.append(done.loss)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        out["waited"] = (feeder.waited - waited) / seconds
    if not bool(torch.isfinite(torch.stack(losses)).all()):
        raise RuntimeError("the training loss is not finite")
    out["samples_per_s"] = samples / seconds
    out["tflops"] = flops_per_face * samples / seconds / 1e12
    if device.type == "cuda":
        out["torch_peak_mib"] = torch.cuda.max_memory_reserved() / 2**20
    return out


def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one row in this process (``--row``) and add its peak memory."""
    scale = Scale(**{**spec["scale"], "size": tuple(spec["scale"]["size"]),
                     "renders": tuple(tuple(r) for r in spec["scale"]["renders"]),
                     "train_res": tuple(spec["scale"]["train_res"])})
    work = Path(spec["work"])
    memory = GpuMemory() if not spec["cpu"] else None
    kind = spec["kind"]
    if kind == "prepare":
        result = row_prepare(scale, work)
    elif kind == "floor":
        result = row_floor(scale, work, spec["pattern"])
    elif kind == "render":
        result = row_render(scale, work, spec["pattern"], spec["device"], spec["precision"])
    elif kind == "train":
        result = row_train(scale, spec["res"], spec.get("compile", False), spec["cpu"])
    else:
        raise ValueError(f"unknown row kind '{kind}'")
    result.setdefault("rss", peak_rss_mib())
    result["gpu_mib"] = memory.stop() if memory else None
    return result


# -- the parent: rows in child processes, one table ------------------------------------------------------------
@dataclass
class Line:
    row: str
    result: str = "-"
    ratio: str = "-"
    load: str = "-"
    rss: str = "-"
    gpu: str = "-"
    notes: list[str] = field(default_factory=list)


def _mib(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0f}"


def child(spec: dict[str, Any], timeout: float) -> tuple[Optional[dict[str, Any]], str]:
    """Run a row in a new process: (its result, or None and why not)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--row", json.dumps(spec)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, timeout), cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in done.stdout.splitlines():
        if line.startswith(ROW_PREFIX):
            return json.loads(line[len(ROW_PREFIX):]), ""
    tail = [t for t in (done.stderr or done.stdout).strip().splitlines() if t.strip()]
    return None, f"failed: {tail[-1][:160] if tail else f'exit {done.returncode}'}"


def gpu_test_files() -> list[str]:
    """Test files that carry the ``gpu`` mark."""
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if re.search(r"mark\.gpu\b", path.read_text(encoding="utf-8", errors="replace")):
            found.append(str(path.relative_to(ROOT)))
    return found


def gpu_tests(timeout: float) -> Line:
    files = gpu_test_files()
    line = Line("gpu tests", notes=[f"pytest -m gpu over {len(files)} files"])
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files],
                              capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        line.result = "timed out"
        return line
    summary = [t for t in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|deselected|error)", t)]
    line.result = summary[-1].strip("= ").split(" in ")[0] if summary else f"exit {done.returncode}"
    line.notes.append(f"{time.perf_counter() - started:.0f} s")
    return line


def machine() -> str:
    """The device line: GPU (or CPU), cores, versions."""
    parts = []
    try:
        from facegraft.inference.models import providers

        gpu = providers.gpu_info()
        trt = providers.tensorrt_version()
    except Exception:
        gpu, trt = None, None
    cpu_name = platform.processor() or platform.machine()
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu_name = found.group(1).strip() if found else cpu_name
    except OSError:
        pass
    if gpu:
        parts.append(f"{gpu.name} (compute {gpu.compute_capability})")
    parts.append(f"{os.cpu_count()} CPU cores ({cpu_name})")
    versions = []
    for module in ("onnxruntime", "torch", "OpenImageIO"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except Exception:
            versions.append(f"{module} missing")
    versions.append(f"TensorRT {trt}" if trt else "no TensorRT")
    return ", ".join(parts) + "; " + ", ".join(versions)


def table(lines: list[Line]) -> str:
    head = Line("row", "result", "vs", "load/warm s", "RSS MiB", "GPU MiB", ["notes"])
    rows = [head, *lines]
    cols = [[r.row, r.result, r.ratio, r.load, r.rss, r.gpu] for r in rows]
    widths = [max(len(c[i]) for c in cols) for i in range(6)]
    out = []
    for r, c in zip(rows, cols):
        out.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(c)) + "  " + "; ".join(r.notes))
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="the CPU run, scaled down (what CI runs)")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile training row")
    parser.add_argument("--no-tests", action="store_true", help="leave out the gpu-marked tests")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (rows past it are left out)")
    parser.add_argument("--work", help="folder for plates and outputs (default: a temporary one, removed)")
    parser.add_argument("--frames", type=int, help="plate frames (default: 48 on a GPU, 4 on --cpu)")
    parser.add_argument("--train-batch", type=int, help="faces per identity per training step (default: 8, 2 on --cpu)")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:
        sys.path.insert(0, str(HERE))
        print(ROW_PREFIX + json.dumps(run_row(json.loads(args.row)), default=str), flush=True)
        return 0

    scale = replace(CPU if args.cpu else GPU, **{k: v for k, v in (("frames", args.frames),
                                                                   ("train_batch", args.train_batch)) if v})
    start = time.perf_counter()
    left = lambda: args.budget - (time.perf_counter() - start)  # noqa: E731
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="facegraft-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = {"cpu": args.cpu, "work": str(work), "scale": asdict(scale)}
    lines: list[Line] = []
    w, h = scale.size
    print(f"FaceGraft GPU benchmark  {datetime.datetime.now():%Y-%m-%d %H:%M}  mode: {scale.name}", flush=True)
    print(f"device: {machine()}", flush=True)
    try:
        if not args.no_tests:
            lines.append(gpu_tests(min(scale.row_timeout, left())))
        prepared, why = child({**base, "kind": "prepare"}, min(scale.row_timeout, left()))
        if prepared is None:  # the render rows cannot run; the training rows still can
            lines.append(Line("plates and model", why, notes=["no floor or render rows"]))
        else:
            print(f"plates: {scale.frames} frames {w}x{h} half {scale.compression.upper()} ({prepared['origin']}); "
                  f"model: comb network {scale.model_res} px, width {scale.model_width}, random weights, "
                  f"batch {scale.batch}", flush=True)
            lines += render_rows(scale, base, prepared["pattern"], left)
        peak = None
        if not args.cpu:
            try:
                import torch

                peak = bf16_peak(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None
            except Exception:
                peak = None
        trains = [(res, False) for res in scale.train_res] + ([(scale.train_res[0], True)] if args.compile else [])
        for res, compiled in trains:
            name = f"train {res} px{' compiled' if compiled else ''}"
            if left() < 10:
                lines.append(Line(name, "left out: over the time budget"))
                continue
            got, why = child({**base, "kind": "train", "res": res, "compile": compiled}, min(scale.row_timeout, left()))
            lines.append(train_line(name, got, why, peak, scale))
        print(table(lines))
        print(f"bf16 peak assumed: {'; '.join(f'{n} {p:.0f}' for n, p in BF16_PEAK)} TFLOP/s (dense); training FLOPs = "
              "3 x analytic forward FLOPs (convolutions and dense layers, encoder + one decoder per face)")
        print(f"efficiency = render fps / slowest stage alone (floor or model alone); whole run "
              f"{time.perf_counter() - start:.0f} s")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def render_rows(scale: Scale, base: dict[str, Any], pattern: str, left: Callable[[], float]) -> list[Line]:
    """The floor, then the model alone and the render on each device."""
    floor, why = child({**base, "kind": "floor", "pattern": pattern}, min(scale.row_timeout, left()))
    floor_fps = floor["fps"] if floor else None
    line = Line("floor (oiiotool read+write)", f"{floor_fps:.2f} fps" if floor else why)
    if floor:
        line.rss, line.notes = _mib(floor["rss"]), [f"{os.cpu_count()} threads, {floor['cpu_s_per_frame']:.2f} "
                                                      "CPU s/frame"]
    lines = [line]
    for device, precision in scale.renders:
        if left() < 10:
            lines.append(Line(f"render {device} {precision}", "left out: over the time budget"))
            continue
        got, why = child({**base, "kind": "render", "pattern": pattern, "device": device, "precision": precision},
                         min(scale.row_timeout, left()))
        lines += render_lines(device, precision, got, why, floor_fps)
    return lines


def render_lines(device: str, precision: str, got: Optional[dict[str, Any]], why: str,
                 floor_fps: Optional[float]) -> list[Line]:
    name = f"{device} {precision}"
    if got is None:
        return [Line(f"render {name}", why)]
    alone = Line(f"model alone {name}", f"{got['model_fps']:.2f} fps", load=f"{got['load_s']:.1f}")
    if got.get("device") != device:
        alone.notes.append(f"ran on {got.get('device')}")
    if "build_s" in got:
        alone.notes.append(f"engine build {got['build_s']:.0f} s, then loaded from the cache "
                           f"({'cached' if got.get('cached') else 'NOT cached'}"
                           f"{', rebuilt' if got.get('rebuilt') else ''})")
    alone.notes += got.get("warnings") or []
    render = Line(f"render {name}", f"{got['fps']:.2f} fps", rss=_mib(got["rss"]), gpu=_mib(got["gpu_mib"]))
    slowest = min(f for f in (floor_fps, got["model_fps"]) if f)
    render.ratio = f"eff {got['fps'] / slowest:.2f}"
    which = "floor" if floor_fps and floor_fps <= got["model_fps"] else "model"
    render.notes.append(f"slowest alone: {which}; " + " ".join(f"{k}={v}" for k, v in got["stages"].items()))
    return [alone, render]


def train_line(name: str, got: Optional[dict[str, Any]], why: str, peak: Optional[float], scale: Scale) -> Line:
    if got is None:
        return Line(name, why)
    line = Line(name, f"{got['samples_per_s']:.1f} samples/s", rss=_mib(got["rss"]), gpu=_mib(got["gpu_mib"]),
                load=f"{got['warmup_s']:.1f}")
    line.ratio = f"{got['tflops'] / peak:.1%} of peak" if peak else "-"
    rate = f"{got['tflops']:.1f} TFLOP/s" if got["tflops"] >= 1 else f"{got['tflops'] * 1e3:.2f} GFLOP/s"
    line.notes = [rate, f"{scale.steps} steps of {2 * scale.train_batch} faces",
                  f"loader waited {got['waited']:.0%}"]
    if got.get("torch_peak_mib") is not None:
        line.notes.append(f"torch reserved {got['torch_peak_mib']:.0f} MiB")
    return line


if __name__ == "__main__":
    sys.exit(main())
