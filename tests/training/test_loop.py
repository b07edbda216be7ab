"""The training loop: learning, exact resume, and clear errors on bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import clip_faceset, tiny_config

from facegraft.inference.errors import FaceGraftError
from facegraft.training.checkpoint import load_checkpoint
from facegraft.training.faceset import FacesetWriter
from facegraft.training.loop import load_model, make_optimizer, step_parts, train, train_step
from facegraft.training.network import CombNet, NetConfig


def test_loss_falls(clip_facesets, tmp_path: Path) -> None:
    result = train(tiny_config(clip_facesets, tmp_path / "run", steps=30, preview_every=15, tensorboard=True))
    losses = np.array(result.losses)
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert losses[-8:].mean() < losses[:8].mean() * 0.95
    assert (tmp_path / "run" / "preview.png").stat().st_size > 0
    assert (tmp_path / "run" / "previews" / "step_0000015.png").is_file()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_step_trains_every_identity_on_what_it_draws() -> None:
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=32, width=8, latent=32, identities=["a", "b"]), minimum_res=32)
    parts = step_parts(net, make_optimizer(net, 1e-3), torch.device("cpu"), ["b", "a"])
    faces, mattes = torch.rand(3, 3, 32, 32), torch.ones(3, 2, 32, 32)
    drawn: list[str] = []

    def draw(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        drawn.append(name)
        return faces, mattes

    g = torch.Generator().manual_seed(0)
    steps = [train_step(parts, draw, g) for _ in range(12)]
    assert drawn[:4] == ["b", "a", "b", "a"]
    assert all(s.samples == 6 and len(s.terms) == 2 and not s.loss.requires_grad for s in steps)
    losses = [float(s.loss) for s in steps]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_resume_continues_the_same_trajectory(clip_facesets, tmp_path: Path) -> None:
    straight = train(tiny_config(clip_facesets, tmp_path / "straight", steps=6))
    first = train(tiny_config(clip_facesets, tmp_path / "stopped", steps=3))
    second = train(tiny_config(clip_facesets, tmp_path / "stopped", steps=6, resume=True))
    assert second.step == 6
    assert first.losses + second.losses == straight.losses  # bitwise on the CPU
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "stopped")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert torch.equal(a["rng"]["data"], b["rng"]["data"])


def test_a_finished_run_is_not_overwritten(tiny_run: Path, clip_facesets) -> None:
    with pytest.raises(FaceGraftError, match="already holds a checkpoint"):
        train(tiny_config(clip_facesets, tiny_run, steps=10))
    assert train(tiny_config(clip_facesets, tiny_run, steps=8, resume=True)).losses == []


def test_one_identity_only_is_refused(clip_facesets, tmp_path: Path) -> None:
    with pytest.raises(FaceGraftError, match="one identity"):
        train(tiny_config([clip_facesets[0], clip_facesets[0]], tmp_path / "run", steps=2))


def test_an_empty_faceset_is_refused(clip_facesets, tmp_path: Path) -> None:
    FacesetWriter(tmp_path / "empty", identity="nobody", resolution=32, coverage="whole_face",
                  colorspace="ACEScct").close()
    with pytest.raises(FaceGraftError, match="holds no faces") as info:
        train(tiny_config([clip_facesets[0], tmp_path / "empty"], tmp_path / "run", steps=2))
    assert info.value.path == str(tmp_path / "empty")


def test_a_corrupt_checkpoint_is_explained(tiny_run: Path, clip_facesets, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FaceGraftError, match="cannot be read") as info:
        train(tiny_config(clip_facesets, run, steps=10, resume=True))
    assert "checkpoint.prev.pt" in (info.value.hint or "")
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FaceGraftError, match="cannot be read"):
        load_model(run)
    with pytest.raises(FaceGraftError, match="no checkpoint"):
        load_model(tmp_path / "nowhere")


def test_without_res_the_run_trains_at_the_facesets_resolution(clip_facesets, tmp_path: Path) -> None:
    from facegraft.cli.main import build_parser

    assert build_parser().parse_args(["train", "--faceset", "a", "--faceset", "b", "--out", "r"]).res is None
    train(tiny_config(clip_facesets, tmp_path / "auto", steps=1, res=None))
    assert load_checkpoint(tmp_path / "auto")["net"]["res"] == 32
    bigger = clip_faceset(tmp_path / "woman64", "woman", res=64, count=2)
    with pytest.raises(FaceGraftError, match="different resolutions") as err:
        train(tiny_config([clip_facesets[0], bigger], tmp_path / "mixed", steps=1, res=None))
    assert "--res" in (err.value.hint or "")


def test_faceset_size_the_network_cannot_use_is_explained(tmp_path: Path):
    odd = clip_faceset(tmp_path / "odd_man", "man", res=40, count=4)
    other = clip_faceset(tmp_path / "odd_woman", "woman", res=40, count=4)
    with pytest.raises(FaceGraftError, match="the facesets are 40 px") as err:
        train(tiny_config([odd, other], tmp_path / "odd", steps=1, res=None))
    assert "--res" in err.value.describe()
