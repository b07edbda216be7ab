"""Export a trained run to a face model file (``.onnx``, contract: ``facegraft.inference.models.modelfile``).

The exported graph is the shared encoder followed by the SOURCE identity's decoder: fed the
TARGET face (the actor on the plate), it draws the source identity with the plate's pose,
expression and light. Input ``face`` and outputs ``swap``/``mask`` are NCHW with a dynamic batch.

``fp16=True`` stores weights and computes in float16 inside the graph but keeps the inputs and
outputs float32 (Cast nodes at both ends): the renderer feeds every model the same way, the file
is half the size, and onnxruntime runs it on the CPU as well as on a GPU.
"""
from __future__ import annotations

import copy
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnx
import torch
from torch import nn

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.colour import DEFAULT_CONFIG
from facegraft.inference.models import formats, modelfile
from facegraft.inference.models.base import ModelInfo
from facegraft.inference.models.runtime import create_session

from .loop import load_model
from .network import Swapper

OPSET = 17
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-2

PathLike = Union[str, Path]


class _Half(nn.Module):
    """float32 in, float16 inside, float32 out."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.half()

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        swap, mask = self.inner(face.half())
        return swap.float(), mask.float()


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float  # onnxruntime vs torch (float32) on the parity batch
    tolerance: float
    info: ModelInfo


def to_onnx(module: nn.Module, res: int) -> onnx.ModelProto:
    """Trace ``module`` (face -> swap, mask) to an ONNX model with a dynamic batch."""
    example = torch.rand(2, 3, res, res)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice is not for users
        torch.onnx.export(
            module, (example,), buffer,  # type: ignore[arg-type]  # a file object is accepted
            dynamo=False, opset_version=OPSET, input_names=[modelfile.INPUT_NAME],
            output_names=list(modelfile.OUTPUT_NAMES), do_constant_folding=True,
            dynamic_axes={name: {0: "batch"} for name in (modelfile.INPUT_NAME, *modelfile.OUTPUT_NAMES)},
        )
    return onnx.load_from_string(buffer.getvalue())


def parity_batch(state: dict, res: int, count: int = 4, seed: int = 0) -> np.ndarray:
    """Faces to compare torch and onnxruntime on: from the run's facesets when they are still there."""
    from .data import IdentityData
    from .faceset import open_faceset

    for entry in state.get("facesets", []):
        try:
            fs = open_faceset(entry["path"])
        except FaceGraftError:
            continue
        idx = np.linspace(0, len(fs) - 1, min(count, len(fs))).round().astype(int)
        return IdentityData(fs.identity, [fs]).load(idx.tolist(), res)[0].numpy()
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 0.6, size=(count, 3, res, res)).astype(np.float32)


def export_model(
    run: PathLike,
    *,
    source: str,
    target: str,
    out: PathLike,
    fp16: bool = False,
    tolerance: Optional[float] = None,
) -> ExportResult:
    """Write the ``source`` identity's model for plates of ``target`` and check it against torch."""
    net, state = load_model(run)
    names = list(net.cfg.identities)
    for role, name in (("source", source), ("target", target)):
        if name not in names:
            raise FaceGraftError(f"the run has no identity '{name}' (asked for as --{role})", path=str(run),
                                 hint=f"the run was trained on: {', '.join(names)}")
    if source == target:
        raise FaceGraftError(f"--source and --target are both '{source}'",
                             hint="the source is the face to put in; the target is the actor on the plate")
    res = net.cfg.res
    swapper = Swapper(net, source).eval()
    module: nn.Module = _Half(copy.deepcopy(swapper)) if fp16 else swapper
    proto = to_onnx(module, res)
    provenance = {
        "steps": int(state["step"]), "exported": time.strftime("%Y-%m-%dT%H:%M:%S"), "precision": "fp16" if fp16 else "fp32",
        "identities_trained": names, "facesets": state.get("facesets", []), "network": net.cfg.as_dict(),
        "run": str(Path(run).resolve()),
    }
    stamped = modelfile.stamp(
        proto, resolution=res, coverage=state.get("coverage", "whole_face"),
        colorspace=state.get("colorspace", "ACEScct"), source=source, target=target, provenance=provenance,
        ocio_config=state.get("ocio_config", DEFAULT_CONFIG), template=state.get("template") or None,
    )
    path = modelfile.save(stamped, out)
    info = formats.read_info(path)

    faces = parity_batch(state, res)
    session = create_session(path, device="cpu")
    swap, mask = session.run(list(modelfile.OUTPUT_NAMES), {modelfile.INPUT_NAME: faces})
    with torch.no_grad():
        ref_swap, ref_mask = swapper(torch.from_numpy(faces))
    diff = float(max(np.abs(swap - ref_swap.numpy()).max(), np.abs(mask - ref_mask.numpy()).max()))
    limit = tolerance if tolerance is not None else (FP16_TOLERANCE if fp16 else FP32_TOLERANCE)
    if not diff <= limit:
        raise FaceGraftError(f"the exported model differs from the trained one by {diff:.3g} (allowed {limit:g})",
                             path=str(path), hint="report this with the run folder; try exporting without --fp16")
    return ExportResult(path=path, max_abs_diff=diff, tolerance=limit, info=info)
