"""Training on a CUDA GPU: bf16 autocast and channels_last (``gpu`` mark; skipped without one)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from synthetic import tiny_config

from facegraft.training.loop import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="this torch has no CUDA"),
]


def test_loss_falls_on_cuda(clip_facesets: list[Path], tmp_path: Path):
    result = train(tiny_config(clip_facesets, tmp_path / "run", steps=40, device="cuda"))
    losses = result.losses
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
