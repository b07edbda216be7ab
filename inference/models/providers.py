"""Execution-provider options for onnxruntime, and the TensorRT engine cache.

``plan`` says, for a model and a ``--device``, which options each GPU provider gets:

* CUDA: cuDNN's exhaustive convolution search (a face model runs one fixed batch shape for a
  whole shot, so the search is paid once per session) and room for its workspace.
* TensorRT: a fixed optimisation profile (the one batch shape ``FaceModel`` runs), fp16 kernels
  when the precision is fp16, and an **engine cache**. Building an engine takes from tens of
  seconds to minutes; a farm chunk must load the one built before, never build its own.

The engine cache lives under ``$FACEGRAFT_HOME/trt/``, one folder per model and key::

    trt/<model hash, 16 hex>/<gpu>_sm<cc>_trt<version>_<key digest, 12 hex>/
        key.json        what the engine was built for (the EngineKey) and when
        *.engine ...    onnxruntime's TensorRT engine and profile files
    trt/timing/<gpu>_sm<cc>_trt<version>/   TensorRT's timing cache (shared by every model)

The key (``EngineKey``) is everything an engine depends on: the model's content hash (graph and
weights, not its metadata), the precision, the input shape it is optimised for, the GPU's name
and compute capability, and the TensorRT and onnxruntime versions. Any change gives another
folder, so a stale engine is never loaded; a folder whose key no longer matches any machine can
simply be deleted (``key.json`` says what it was for).

A folder counts as cached only once ``key.json`` is in it. An engine is built into a temporary
folder beside its final one (``atomic.temp_name``) and renamed into place when the session has
been created, so a build killed half-way leaves nothing that a later chunk would trust; an
exclusive lock (``.lock`` in the model's folder, POSIX ``flock``) makes chunks starting together
on one machine (or on a shared ``$FACEGRAFT_HOME`` whose file system honours locks) wait for one
build instead of each building its own.

This module never touches a GPU library it does not need: the GPU's name and compute
capability come from the CUDA driver (``libcuda``, through ctypes) or ``nvidia-smi``, and the
TensorRT version from the ``tensorrt`` package or ``libnvinfer``; tests pass both in.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import onnxruntime as ort

from facegraft.inference import assets
from facegraft.inference.atomic import atomic_write_text, stale_temps, temp_name
from facegraft.inference.errors import DeviceError, FaceGraftError
from facegraft.inference.models import runtime
from facegraft.inference.models.fp16 import PRECISIONS

KEY_FILE = "key.json"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class GpuInfo:
    """What an engine depends on about the GPU."""

    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "major.minor", e.g. "9.0"
    index: int = 0


@dataclass(frozen=True)
class EngineKey:
    """Everything a TensorRT engine depends on; ``digest`` names its cache folder."""

    model_hash: str  # onnx_graph.content_hash of the model file
    precision: str  # "fp32" or "fp16"
    input_shape: tuple[int, ...]  # the one shape the engine is optimised for, e.g. (4, 3, 512, 512)
    gpu: str
    compute_capability: str
    tensorrt: str
    onnxruntime: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @property
    def digest(self) -> str:
        """SHA-256 of the key's fields (JSON, sorted keys)."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def machine(self) -> str:
        """The GPU and TensorRT part of a folder name: ``nvidia-h100-80gb-hbm3_sm90_trt10.3.0``."""
        return f"{_slug(self.gpu)}_sm{self.compute_capability.replace('.', '')}_trt{_slug(self.tensorrt)}"

    def folder(self, home: Optional[Path] = None) -> Path:
        """This key's engine folder under ``$FACEGRAFT_HOME/trt``."""
        return cache_root(home) / self.model_hash[:16] / f"{self.machine}_{self.digest[:12]}"

    def timing_folder(self, home: Optional[Path] = None) -> Path:
        """TensorRT's timing cache for this GPU and TensorRT (shared by every model)."""
        return cache_root(home) / "timing" / self.machine


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


def cache_root(home: Optional[Path] = None) -> Path:
    """``$FACEGRAFT_HOME/trt``."""
    return Path(home if home is not None else assets.home()) / "trt"


# -- what the machine has ----------------------------------------------------------------------------------
_CU_ATTR_CC_MAJOR, _CU_ATTR_CC_MINOR = 75, 76  # CUdevice_attribute values (cuda.h)


def _gpu_from_driver(index: int) -> Optional[GpuInfo]:
    """Name and compute capability from the CUDA driver API (libcuda), or None."""
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(name if os.name != "nt" else "nvcuda.dll")
    except OSError:
        return None
    device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    text = ctypes.create_string_buffer(256)
    if (cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(device), index) != 0
            or cuda.cuDeviceGetName(text, len(text), device) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, device) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, device) != 0):
        return None
    return GpuInfo(text.value.decode(errors="replace").strip(), f"{major.value}.{minor.value}", index)


def _gpu_from_smi(index: int) -> Optional[GpuInfo]:
    """Name and compute capability from ``nvidia-smi`` (drivers from 510 on), or None."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", str(index)],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    name, _, cc = out.strip().partition(",")
    return GpuInfo(name.strip(), cc.strip(), index) if re.fullmatch(r"\d+\.\d+", cc.strip()) else None


def gpu_info(index: int = 0) -> Optional[GpuInfo]:
    """The GPU ``index`` (after ``CUDA_VISIBLE_DEVICES``), or None where none answers."""
    return _gpu_from_driver(index) or _gpu_from_smi(index)


def _trt_from_library() -> Optional[str]:
    """``getInferLibVersion`` of libnvinfer (10.x: major*10000 + minor*100 + patch; 8.x: *1000, *100)."""
    names = [n for n in (ctypes.util.find_library("nvinfer"),) if n] + ["libnvinfer.so.10", "libnvinfer.so.8"]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.getInferLibVersion.restype = ctypes.c_int32
        number = int(lib.getInferLibVersion())
        if number >= 10000:
            return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
        return f"{number // 1000}.{number // 100 % 10}.{number % 100}"
    return None


def tensorrt_version() -> Optional[str]:
    """The TensorRT version onnxruntime will load: libnvinfer's own (as the dynamic loader finds it,
    which is what onnxruntime's TensorRT provider opens), else the installed TensorRT package's."""
    found = _trt_from_library()
    if found:
        return found
    from importlib import metadata

    for name in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-libs", "tensorrt-cu12-libs"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


# -- provider options --------------------------------------------------------------------------------------
def cuda_options(device_id: int = 0) -> dict[str, str]:
    """The CUDA provider's options (onnxruntime takes them as strings)."""
    return {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": "EXHAUSTIVE",  # one fixed batch shape per session: search once
        "cudnn_conv_use_max_workspace": "1",
        "do_copy_in_default_stream": "1",  # I/O binding copies and kernels stay in order
    }


def _profile(input_name: str, shape: Sequence[int]) -> str:
    return f"{input_name}:{'x'.join(str(int(d)) for d in shape)}"


def tensorrt_options(key: EngineKey, engine_dir: Path, input_name: str, dynamic_batch: bool,
                     home: Optional[Path] = None, device_id: int = 0) -> dict[str, str]:
    """The TensorRT provider's options: engine and timing caches, fp16, the one optimisation profile.

    The profile (min = opt = max = ``key.input_shape``) is given only for a graph with a dynamic
    batch whose input name TensorRT's profile syntax can carry (no ``:`` or ``,``); a graph with a
    fixed shape needs none.
    """
    timing = key.timing_folder(home)
    timing.mkdir(parents=True, exist_ok=True)
    options = {
        "device_id": str(device_id),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(engine_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(timing),
        "trt_fp16_enable": "True" if key.precision == "fp16" else "False",
    }
    if dynamic_batch and not set(":,") & set(input_name):
        shape = _profile(input_name, key.input_shape)
        options.update(trt_profile_min_shapes=shape, trt_profile_opt_shapes=shape, trt_profile_max_shapes=shape)
    return options


@dataclass
class ProviderPlan:
    """What ``open_session`` needs besides the device: per-provider options and the engine cache."""

    device: str
    providers: list[str]  # what will be asked of onnxruntime (``runtime.providers_for``)
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    key: Optional[EngineKey] = None  # set when TensorRT is asked for
    input_name: str = ""
    dynamic_batch: bool = True
    home: Optional[Path] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def tensorrt(self) -> bool:
        return runtime.TENSORRT in self.providers


def plan(device: str, model_hash: str, precision: str, input_name: str, input_shape: Sequence[int], *,
         dynamic_batch: bool = True, home: Optional[Path] = None, gpu: Optional[GpuInfo] = None,
         trt_version: Optional[str] = None) -> ProviderPlan:
    """The providers and options for ``device`` (``runtime.DEVICES``).

    For TensorRT the engine key needs the GPU and the TensorRT version (``gpu`` and
    ``trt_version`` override what this machine reports). Where either cannot be told, an
    explicit ``tensorrt`` is a ``DeviceError`` and ``auto`` runs TensorRT without the engine
    cache, with a warning (every session then builds its own engine).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not '{precision}'")
    chosen = runtime.providers_for(device)
    result = ProviderPlan(device, chosen, input_name=input_name, dynamic_batch=dynamic_batch, home=home)
    if runtime.CUDA in chosen:
        result.options[runtime.CUDA] = cuda_options()
    if runtime.TENSORRT not in chosen:
        return result
    gpu = gpu or gpu_info()
    trt_version = trt_version or tensorrt_version()
    if gpu is None or trt_version is None:
        missing = "no GPU answers the CUDA driver or nvidia-smi" if gpu is None else "the TensorRT version cannot be told"
        if device == "tensorrt":
            raise DeviceError(f"device 'tensorrt' was asked for but {missing}",
                              hint="install TensorRT (the libraries onnxruntime-gpu's TensorRT provider loads), "
                                   "check the GPU with nvidia-smi, or use --device cuda or --device cpu")
        result.warnings.append(f"TensorRT engines are not cached ({missing}): every render builds its own")
        result.options[runtime.TENSORRT] = {"trt_fp16_enable": "True" if precision == "fp16" else "False"}
        return result
    result.key = EngineKey(model_hash=model_hash, precision=precision, input_shape=tuple(int(d) for d in input_shape),
                           gpu=gpu.name, compute_capability=gpu.compute_capability, tensorrt=trt_version,
                           onnxruntime=ort.__version__)
    return result


# -- the engine cache --------------------------------------------------------------------------------------
def engine_files(folder: Path) -> list[Path]:
    """The engine files onnxruntime left in ``folder``."""
    return sorted(p for p in folder.glob("*.engine")) if folder.is_dir() else []


def is_cached(folder: Path) -> bool:
    """True when ``folder`` holds a published engine (``key.json`` and at least one engine file)."""
    return (folder / KEY_FILE).is_file() and bool(engine_files(folder))


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder/.lock`` (POSIX ``flock``; elsewhere no lock)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / LOCK_FILE).touch()
    except OSError as exc:
        raise FaceGraftError(f"the TensorRT engine cache cannot be written ({exc.strerror})", path=str(folder),
                             hint="set FACEGRAFT_HOME to a writable folder (engines are cached under its trt/)") from exc
    try:
        import fcntl
    except ImportError:  # Windows: engines are still published atomically, builds may overlap
        yield
        return
    with open(folder / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class EngineSlot:
    """Where a session finds (or writes) its engine, and whether it was there already."""

    folder: Path  # the key's final folder
    cache_path: Path  # what the TensorRT provider is told: ``folder`` when cached, else a temporary one
    cached: bool
    built: bool = False  # set after the session: an engine was written (not cached, or rebuilt over the cached one)


@contextmanager
def engine_slot(key: EngineKey, home: Optional[Path] = None) -> Iterator[EngineSlot]:
    """Hold the key's lock while a session is created in the ``with`` block.

    A cached key's folder is handed over as it is. Otherwise the session writes its engine into
    a temporary folder, which is published (``key.json`` written, folder renamed into place) when
    the block ends without an error and discarded when it raises.
    """
    folder = key.folder(home)
    with _locked(folder.parent):
        if is_cached(folder):
            before = {p: p.stat().st_mtime_ns for p in engine_files(folder)}
            slot = EngineSlot(folder, folder, cached=True)
            yield slot
            # onnxruntime rebuilds, in place, an engine it cannot use (a key field this module misses)
            slot.built = {p: p.stat().st_mtime_ns for p in engine_files(folder)} != before
            return
        for stale in stale_temps(folder):  # builds killed half-way (the lock says none is running)
            shutil.rmtree(stale, ignore_errors=True)
        staging = temp_name(folder)
        staging.mkdir(parents=True)
        slot = EngineSlot(folder, staging, cached=False)
        try:
            yield slot
            if not engine_files(staging):  # the provider was dropped or built nothing: nothing to publish
                return
            atomic_write_text(staging / KEY_FILE, json.dumps(
                {**key.as_dict(), "digest": key.digest, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
            shutil.rmtree(folder, ignore_errors=True)  # an unpublished leftover (no key.json) of a killed build
            os.replace(staging, folder)
            slot.built = True
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def session_options(p: ProviderPlan) -> Iterator[tuple[dict[str, dict[str, str]], Optional[EngineSlot]]]:
    """The per-provider options to create a session with, inside the engine cache's lock when
    TensorRT has a key (see ``engine_slot``); yields ``(options, slot)``."""
    if p.key is None:
        yield dict(p.options), None
        return
    with engine_slot(p.key, p.home) as slot:
        trt = tensorrt_options(p.key, slot.cache_path, p.input_name, p.dynamic_batch, p.home)
        yield {**p.options, runtime.TENSORRT: trt}, slot


def cached_engines(home: Optional[Path] = None) -> list[dict[str, Any]]:
    """Every published engine folder: its ``key.json`` plus ``folder`` and ``bytes`` (for clean-up)."""
    found = []
    for key_file in sorted(cache_root(home).glob(f"*/*/{KEY_FILE}")):
        folder = key_file.parent
        try:
            data = json.loads(key_file.read_text())
        except (OSError, ValueError):
            continue
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        found.append({**data, "folder": str(folder), "bytes": size})
    return found


def open_planned(model: runtime.Model, p: ProviderPlan, threads: Optional[int],
                 path: str) -> tuple[runtime.Session, Optional[EngineSlot], list[str]]:
    """``runtime.open_session`` with the plan's options, inside the engine cache's lock.

    Returns the session, the engine slot (None without TensorRT) and what a render should warn
    about (engines not cached, or rebuilt over a cached one). Errors name ``path`` also when
    ``model`` is the bytes of a converted graph.
    """
    try:
        with session_options(p) as (options, slot):
            opened = runtime.open_session(model, device=p.device, threads=threads, options=options)
    except FaceGraftError as exc:
        if exc.path is not None:
            raise
        raise type(exc)(exc.message, path=path, hint=exc.hint) from exc
    notes = list(p.warnings)
    if slot is not None and slot.cached and slot.built:
        notes.append(f"the cached TensorRT engine in {slot.folder} was rebuilt by onnxruntime (a key field is "
                     "missing from providers.EngineKey); later chunks load the rebuilt one")
    return opened, slot, notes
