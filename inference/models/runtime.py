"""onnxruntime sessions with explicitly chosen execution providers.

``auto`` takes TensorRT, then CUDA, when the installed onnxruntime offers them and a GPU
answers, and falls back to the CPU quietly: a render node without a GPU still renders.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import onnxruntime as ort

from facegraft.inference.errors import FaceGraftError

DEVICES = ("auto", "cuda", "tensorrt", "cpu")
_PROVIDERS = {
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "cpu": ["CPUExecutionProvider"],
}

ort.set_default_logger_severity(3)  # errors only: no provider-fallback spam in a render log


def _gpu_present() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0")) or os.name == "nt"


def providers_for(device: str = "auto") -> list[str]:
    """The provider list to ask onnxruntime for, most preferred first."""
    if device not in DEVICES:
        raise FaceGraftError(f"unknown device '{device}'", hint=f"use one of: {', '.join(DEVICES)}")
    available = set(ort.get_available_providers())
    if device == "auto":
        if not _gpu_present():
            return ["CPUExecutionProvider"]
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if os.environ.get("FACEGRAFT_TENSORRT", "0") == "1":
            wanted.insert(0, "TensorrtExecutionProvider")
        return [p for p in wanted if p in available]
    wanted = _PROVIDERS[device]
    if wanted[0] not in available:
        raise FaceGraftError(
            f"device '{device}' was asked for but onnxruntime offers only {sorted(available)}",
            hint="install onnxruntime-gpu with a matching CUDA, or use --device auto / cpu",
        )
    return [p for p in wanted if p in available]


def create_session(
    model: Union[str, Path, bytes],
    device: str = "auto",
    threads: Optional[int] = None,
    providers: Optional[Sequence[str]] = None,
) -> ort.InferenceSession:
    """An inference session on the chosen device; ``threads`` caps CPU intra-op threads."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning: on a render node the EXR codecs share the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    chosen = list(providers) if providers else providers_for(device)
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own opaque types
        if "CPUExecutionProvider" in chosen and chosen[0] != "CPUExecutionProvider" and device == "auto":
            return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        name = None if isinstance(model, bytes) else str(model)
        raise FaceGraftError(f"onnxruntime could not load the model: {exc}", path=name) from exc


def session_device(session: ort.InferenceSession) -> str:
    """The provider that actually runs the session (first one onnxruntime kept)."""
    return session.get_providers()[0]
