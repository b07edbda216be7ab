"""GPU paths: run only where a CUDA GPU answers (the ``gpu`` mark; see tests/conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest
from render_models import build_conv_model

from facegraft.inference.models import face_model, runtime

pytestmark = pytest.mark.gpu


def test_auto_device_picks_cuda():
    assert runtime.providers_for("auto")[0] == "CUDAExecutionProvider"
    assert runtime.providers_for("cuda")[:2] == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cuda_model_matches_cpu(tmp_path):
    path = build_conv_model(tmp_path / "conv.onnx", res=128, layers=3, width=8)
    cpu = face_model.load(path, device="cpu")
    gpu = face_model.load(path, device="cuda")
    assert gpu.device == "CUDAExecutionProvider"
    faces = np.random.default_rng(0).uniform(0, 1, (5, 3, 128, 128)).astype(np.float32)
    swap_cpu, mask_cpu = cpu.run(faces)
    swap_gpu, mask_gpu = gpu.run(faces)
    assert np.abs(swap_cpu - swap_gpu).max() < 1e-3
    assert np.abs(mask_cpu - mask_gpu).max() < 1e-3
    again, _ = gpu.run(faces)
    assert np.array_equal(again, swap_gpu)  # the same bytes twice on the same GPU
