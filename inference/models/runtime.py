"""onnxruntime sessions on an explicitly chosen device, with no silent fall-back.

``--device`` is one of ``DEVICES``:

* ``cuda`` / ``tensorrt``: that execution provider or an error (``DeviceError``, exit 6: the
  machine cannot run what was asked; a farm retries the task on another node). onnxruntime on
  its own quietly drops a provider that does not initialise (missing CUDA or cuDNN libraries, no
  usable GPU); the session's providers are checked after creation so that never goes unnoticed.
* ``auto``: TensorRT (only when ``FACEGRAFT_TENSORRT=1``), then CUDA, when a GPU is present and
  they initialise; else the CPU. Where a GPU is present but cannot be used, the CPU session
  carries a ``fallback`` reason that callers show as a warning and stamp in the output header
  (``facegraft/device``, ``facegraft/device_fallback``). A machine without a GPU simply runs on
  the CPU: nothing was expected of a GPU there, so there is nothing to warn about.
* ``cpu``: the CPU.

Errors onnxruntime raises for the model itself (a graph it cannot load) are ``ModelFileError``s
naming the file, whatever the device.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import onnxruntime as ort

from facegraft.inference.errors import DeviceError, FaceGraftError, ModelFileError

DEVICES = ("auto", "cuda", "tensorrt", "cpu")
CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
#: The short device name of each provider, as messages and headers show it.
DEVICE_OF = {TENSORRT: "tensorrt", CUDA: "cuda", CPU: "cpu"}
_PROVIDERS = {
    "tensorrt": [TENSORRT, CUDA, CPU],
    "cuda": [CUDA, CPU],
    "cpu": [CPU],
}
_GPU_HINT = ("install the CUDA and cuDNN libraries this onnxruntime-gpu needs (onnxruntime's CUDA "
             "execution provider requirements), check the GPU with nvidia-smi, or use --device cpu")

ort.set_default_logger_severity(3)  # errors only: no provider-fallback spam in a render log

Model = Union[str, Path, bytes]


@dataclass
class Session:
    """An onnxruntime session and where it really runs."""

    session: ort.InferenceSession
    device: str  # "tensorrt", "cuda" or "cpu": the provider that runs the graph
    providers: tuple[str, ...]  # what onnxruntime kept, most preferred first
    fallback: Optional[str] = None  # why a GPU that was expected is not used (``auto`` only)


def _gpu_present() -> bool:
    """True when this machine shows an NVIDIA GPU (and CUDA_VISIBLE_DEVICES does not hide it)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0")) or os.name == "nt"


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise FaceGraftError(f"unknown device '{device}'", hint=f"use one of: {', '.join(DEVICES)}")


def providers_for(device: str = "auto") -> list[str]:
    """The provider list to ask onnxruntime for, most preferred first.

    ``cuda``/``tensorrt`` that this onnxruntime does not offer at all raise ``DeviceError``;
    ``auto`` asks for the GPU providers only where a GPU is present and they are offered.
    """
    _check_device(device)
    available = set(ort.get_available_providers())
    if device == "auto":
        if not _gpu_present():
            return [CPU]
        wanted = [CUDA, CPU]
        if os.environ.get("FACEGRAFT_TENSORRT", "0") == "1":
            wanted.insert(0, TENSORRT)
        return [p for p in wanted if p in available]
    wanted = _PROVIDERS[device]
    if wanted[0] not in available:
        raise DeviceError(f"device '{device}' was asked for but this onnxruntime ({ort.__version__}) offers only "
                          f"{', '.join(sorted(available))}",
                          hint="install onnxruntime-gpu (see constraints.txt), or use --device cpu")
    return [p for p in wanted if p in available]


def _options(threads: Optional[int]) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning: on a render node the EXR codecs share the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line (onnxruntime's messages run to pages), at most ``limit`` characters."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "…"


#: Per-provider options (``providers.plan``), e.g. ``{CUDA: {"device_id": "0"}}``.
ProviderOptions = Optional[Mapping[str, Mapping[str, str]]]


def _load(model: Model, threads: Optional[int], providers: Sequence[str],
          options: ProviderOptions = None) -> ort.InferenceSession:
    source = model if isinstance(model, bytes) else str(model)
    asked: list = [(p, dict(options[p])) if options and p in options else p for p in providers]
    return ort.InferenceSession(source, sess_options=_options(threads), providers=asked)


def _name(model: Model) -> Optional[str]:
    return None if isinstance(model, bytes) else str(model)


def _model_error(model: Model, exc: BaseException) -> ModelFileError:
    return ModelFileError(f"onnxruntime cannot load the model: {first_line(exc)}", path=_name(model),
                          hint="the graph is broken or uses operators this onnxruntime lacks; "
                               "check it with `facegraft model-info`, or re-export it")


def open_session(model: Model, device: str = "auto", threads: Optional[int] = None,
                 options: ProviderOptions = None) -> Session:
    """A session on ``device`` (see the module notes); ``threads`` caps CPU intra-op threads;
    ``options`` are the GPU providers' own (``providers.plan``: cuDNN search, TensorRT engine cache).

    Raises ``ModelFileError`` when onnxruntime cannot load the graph on any device, and
    ``DeviceError`` when an explicitly asked-for GPU provider cannot run it.
    """
    chosen = providers_for(device)
    fallback: Optional[str] = None
    if device == "auto" and _gpu_present() and chosen == [CPU]:
        fallback = (f"a GPU is present but this onnxruntime ({ort.__version__}) offers no "
                    f"{CUDA} (is the CPU-only onnxruntime installed instead of onnxruntime-gpu?)")
    try:
        session = _load(model, threads, chosen, options)
    except Exception as exc:  # onnxruntime raises its own opaque types
        if chosen == [CPU]:
            raise _model_error(model, exc) from exc
        # Is it the graph or the GPU? A CPU session tells; it is kept only for ``auto``, with a reason.
        try:
            session = _load(model, threads, [CPU])
        except Exception as cpu_exc:
            raise _model_error(model, cpu_exc) from cpu_exc
        reason = f"{DEVICE_OF[chosen[0]]} could not load the model ({first_line(exc)})"
        if device != "auto":
            raise DeviceError(reason, path=_name(model), hint=_GPU_HINT) from exc
        fallback = reason
    kept = tuple(session.get_providers())
    if kept[0] != chosen[0]:
        # onnxruntime dropped the provider it could not initialise and carried on without it.
        dropped = ", ".join(p for p in chosen if p not in kept)
        reason = f"onnxruntime could not initialise {dropped} on this machine (CUDA/cuDNN libraries or the GPU)"
        if device != "auto" and DEVICE_OF[kept[0]] != device:
            raise DeviceError(f"device '{device}' was asked for but {reason}", path=_name(model), hint=_GPU_HINT)
        if device == "auto" and kept[0] == CPU:
            fallback = reason
    return Session(session=session, device=DEVICE_OF.get(kept[0], kept[0]), providers=kept, fallback=fallback)


def create_session(
    model: Model,
    device: str = "auto",
    threads: Optional[int] = None,
    providers: Optional[Sequence[str]] = None,
) -> ort.InferenceSession:
    """An inference session on the chosen device (``open_session``; ``providers`` overrides the
    choice). A fall-back to the CPU is reported as a ``RuntimeWarning`` (stderr); callers that
    stamp outputs use ``open_session`` and its ``fallback``."""
    if providers:
        try:
            return _load(model, threads, providers)
        except Exception as exc:
            raise _model_error(model, exc) from exc
    opened = open_session(model, device, threads)
    if opened.fallback:
        warnings.warn(f"{_name(model) or 'model'}: {opened.fallback}", RuntimeWarning, stacklevel=2)
    return opened.session


def session_device(session: ort.InferenceSession) -> str:
    """The device that actually runs ``session`` (its first provider), e.g. ``cuda``."""
    first = session.get_providers()[0]
    return DEVICE_OF.get(first, first)
