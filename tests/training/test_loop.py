"""The training loop: learning, exact resume, and clear errors on bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import clip_faceset, tiny_config

from facegraft.inference.errors import FaceGraftError
from facegraft.training.checkpoint import load_checkpoint
from facegraft.training.data import MEASURES, Batch
from facegraft.training.faceset import FacesetWriter
from facegraft.training.loop import (
    LossNotFinite,
    TrainConfig,
    flip_measures,
    learning_rate,
    load_model,
    make_optimizer,
    step_parts,
    train,
    train_step,
)
from facegraft.training.losses import LossWeights
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

    def draw(name: str) -> Batch:
        drawn.append(name)
        return Batch(faces, mattes)

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


def test_the_expression_head_learns_the_measures_through_the_step() -> None:
    """With the head on, the step fits it to the drawn faces' measures (mirrored faces' measures mirrored)."""
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=32, width=8, latent=32, identities=["a", "b"], expression=len(MEASURES)), minimum_res=32)
    parts = step_parts(net, make_optimizer(net, 2e-3), torch.device("cpu"), ["a", "b"],
                       weights=LossWeights(expression=1.0))
    assert parts.head is not None
    g = torch.Generator().manual_seed(0)
    faces = torch.rand(4, 3, 32, 32, generator=g)
    shut = faces.clone()
    shut[:, :, 10:16] = 0.1  # a dark band where open eyes are bright: the measures differ with the picture
    measures = torch.tensor([[0.0, 5.0, 0.3, 0.3, 0.05]] * 2 + [[0.0, 5.0, 0.05, 0.05, 0.05]] * 2)
    drawn = Batch(torch.cat([faces[:2], shut[:2]]), torch.ones(4, 2, 32, 32), measures)
    fits = [float(train_step(parts, lambda _name: drawn, g).terms[0]["expression"]) for _ in range(60)]
    assert np.mean(fits[-5:]) < 0.3 * np.mean(fits[:5])
    with pytest.raises(ValueError, match="measures"):
        train_step(parts, lambda _name: Batch(drawn.faces, drawn.mattes), g)


def test_mirrored_faces_swap_their_eyes_and_turn_their_yaw() -> None:
    measures = torch.tensor([[10.0, 5.0, 0.3, 0.1, 0.2], [10.0, 5.0, 0.3, 0.1, 0.2]])
    out = flip_measures(measures, torch.tensor([True, False]))
    assert out[0].tolist() == pytest.approx([-10.0, 5.0, 0.1, 0.3, 0.2])
    assert torch.equal(out[1], measures[1])


def test_learning_rate_warms_up_then_falls_along_a_cosine() -> None:
    cfg = TrainConfig(facesets=[], out="", steps=1100, lr=1e-3, warmup=100, lr_final=0.1)
    rates = [learning_rate(cfg, s) for s in range(cfg.steps)]
    assert rates[0] == pytest.approx(1e-5) and rates[99] == pytest.approx(1e-3)
    assert rates[600] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-3)  # half way down the cosine
    assert rates[-1] == pytest.approx(1e-4, rel=1e-3)
    assert all(b <= a for a, b in zip(rates[100:], rates[101:]))
    flat = TrainConfig(facesets=[], out="", steps=1100, lr=1e-3, warmup=100, lr_decay="none")
    assert learning_rate(flat, 1099) == 1e-3


def test_validation_losses_per_identity_reach_the_bar_and_tensorboard(clip_facesets, tmp_path: Path, capsys) -> None:
    result = train(tiny_config(clip_facesets, tmp_path / "run", steps=6, val=0.25, eval_every=3, tensorboard=True,
                               json_progress=True))
    assert [step for step, _ in result.val_losses] == [3, 6]
    assert all(set(losses) == {"man", "woman"} and all(np.isfinite(list(losses.values()))) for _, losses in result.val_losses)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    steps = {e["step"]: e for e in events if e["event"] == "progress" and e["stage"] == "train"}
    assert "val_man" not in steps[2] and float(steps[3]["val_man"]) == pytest.approx(result.val_losses[0][1]["man"], abs=1e-4)
    info = json.loads((tmp_path / "run" / "train.json").read_text())
    assert info["held_out"] == {"man": 3, "woman": 3}  # a quarter of 12 faces each
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    logged.Reload()
    assert {"val/man", "val/woman"} <= set(logged.Tags()["scalars"])


def test_liae_conditioned_on_the_expression_head_trains_and_exports(clip_facesets, tmp_path: Path) -> None:
    from facegraft.training.export import export_model

    result = train(tiny_config(clip_facesets, tmp_path / "liae", steps=30, arch="liae", source="woman", expression=0.5,
                                       condition=True, lr_decay="none"))
    losses = np.array(result.losses)
    assert np.isfinite(losses).all() and losses[-8:].mean() < losses[:8].mean() * 0.95
    net, state = load_model(tmp_path / "liae")
    assert state["net"]["arch"] == "liae" and state["net"]["source"] == "woman" and state["net"]["condition"]
    assert net.expression is not None
    exported = export_model(tmp_path / "liae", source="woman", target="man", out=tmp_path / "liae.onnx")
    assert exported.max_abs_diff < 1e-4
    with pytest.raises(FaceGraftError, match="--source 'nobody'"):
        train(tiny_config(clip_facesets, tmp_path / "bad", steps=1, arch="liae", source="nobody"))
    with pytest.raises(FaceGraftError, match="needs the head"):
        train(tiny_config(clip_facesets, tmp_path / "bad", steps=1, condition=True))


def test_a_diverging_run_stops_before_the_step_and_keeps_the_last_checkpoint(clip_facesets, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(LossNotFinite, match="not finite.*at step (\\d+).*checkpoint of step") as info:
        train(tiny_config(clip_facesets, run, steps=50, lr=1e30, warmup=1, save_every=1))
    stopped = int(info.value.message.split("at step ")[1].split(";")[0])
    state = load_checkpoint(run)
    assert state["step"] == stopped - 1  # the last good step, not the one that diverged
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert "--lr" in (info.value.hint or "")


def test_bad_facesets_are_named_before_any_step(clip_facesets, tmp_path: Path) -> None:
    one = clip_faceset(tmp_path / "one", "woman", count=1)
    with pytest.raises(FaceGraftError, match="holds 1 face") as info:
        train(tiny_config([clip_facesets[0], one], tmp_path / "one_run", steps=1))
    assert info.value.path == str(one)
    three = clip_faceset(tmp_path / "three", "woman", count=3)
    with pytest.raises(FaceGraftError, match="--val 0.5 holds out 2 of the 3 faces of 'woman' and leaves 1") as info:
        train(tiny_config([clip_facesets[0], three], tmp_path / "val_run", steps=1, val=0.5))
    assert info.value.path == str(three)
    with pytest.raises(FaceGraftError, match="--val 1.0 is not a fraction"):
        train(tiny_config(clip_facesets, tmp_path / "val_run", steps=1, val=1.0))
    small = clip_faceset(tmp_path / "small", "woman", res=16, count=4)
    with pytest.raises(FaceGraftError, match="is 16 px but the run trains at 32 px") as info:
        train(tiny_config([clip_facesets[0], small], tmp_path / "res_run", steps=1))
    assert info.value.path == str(small)
    for name in ("one_run", "val_run", "res_run"):
        assert not (tmp_path / name / "checkpoint.pt").exists()


def test_the_command_line_defaults_are_the_loops() -> None:
    from facegraft.cli.main import build_parser

    args = build_parser().parse_args(["train", "--faceset", "a", "--faceset", "b", "--out", "r"])
    cfg = TrainConfig(facesets=[], out="")
    for key in ("lr", "lr_decay", "lr_final", "arch", "expression", "teacher", "features", "balance", "val", "eval_every",
                "landmarks", "landmark_faces", "landmarks_from", "adversarial"):
        assert getattr(args, key) == getattr(cfg, key), key


def test_faces_not_taught_their_measures_train_the_head_through_the_reconstruction() -> None:
    """Conditioned, a face fed the head's reading (not its measures) sends the decoder's loss back into the head."""
    def head_gradient(teacher: float) -> float:
        torch.manual_seed(0)
        cfg = NetConfig(res=32, width=8, latent=32, identities=["a", "b"], expression=len(MEASURES), condition=True)
        net = CombNet(cfg, minimum_res=32)
        parts = step_parts(net, make_optimizer(net, 0.0), torch.device("cpu"), ["a", "b"],
                           weights=LossWeights(expression=1e-6))  # the expression loss itself barely counts
        parts.teacher = teacher
        g = torch.Generator().manual_seed(0)
        drawn = Batch(torch.rand(4, 3, 32, 32, generator=g), torch.ones(4, 2, 32, 32), torch.rand(4, len(MEASURES)))
        train_step(parts, lambda _name: drawn, g)
        assert net.expression is not None and net.expression.weight.grad is not None
        return float(net.expression.weight.grad.abs().sum())

    assert head_gradient(0.0) > 100 * head_gradient(1.0)
