"""Training made ready for a GPU: losses read back in batches (no wait for the device every step),
the fused optimizer and resuming across devices, augmentation on the faces' device. The CUDA
tests carry the ``gpu`` mark (skipped without one); the rest prove the same code paths on the CPU."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import torch
from synthetic import tiny_config

from facegraft.training import loop
from facegraft.training.augment import AugmentConfig, augment
from facegraft.training.checkpoint import checkpoint_path, load_checkpoint
from facegraft.training.data import Batch
from facegraft.training.loop import LossNotFinite, load_optimizer, make_optimizer, step_parts, train, train_step
from facegraft.training.network import CombNet, NetConfig
from facegraft.training.readback import Readback, on_cpu

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="this torch has no CUDA")


# -- losses read back in batches ---------------------------------------------------------------------------------
@dataclass
class _Result:
    loss: torch.Tensor
    terms: list[dict[str, torch.Tensor]]
    samples: int
    critic: Optional[torch.Tensor] = None


def test_results_come_back_whole_in_one_transfer() -> None:
    shared = torch.tensor(2.5)
    results = [_Result(torch.tensor(1.0 + i), [{"total": shared, "l1": torch.tensor([0.25, 0.5])}], 6)
               for i in range(3)]
    results[1].critic = torch.tensor(0.75, dtype=torch.bfloat16)
    back = on_cpu(results)
    assert [float(r.loss) for r in back] == [1.0, 2.0, 3.0] and [r.samples for r in back] == [6, 6, 6]
    assert back[0].terms[0]["l1"].tolist() == [0.25, 0.5] and float(back[2].terms[0]["total"]) == 2.5
    assert back[1].critic is not None and back[1].critic.dtype == torch.bfloat16 and float(back[1].critic) == 0.75
    assert back[0].critic is None and back[0] is not results[0]


def test_readback_keeps_steps_until_every_nth() -> None:
    kept: Readback[_Result] = Readback(3)
    due = [kept.add(step, _Result(torch.tensor(float(step)), [], 2), lr=0.1 * step) for step in range(1, 5)]
    assert due == [False, False, True, True]
    read = kept.read()
    assert [(step, float(r.loss)) for step, r, _ in read] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    assert [extra["lr"] for _, _, extra in read] == [0.1 * step for step in range(1, 5)]
    assert kept.read() == [] and not kept.add(5, _Result(torch.tensor(5.0), [], 2))


def test_a_run_reading_losses_in_batches_reports_every_step_as_one_reading_each(
        clip_facesets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    every_step = train(tiny_config(clip_facesets, tmp_path / "every", steps=11, json_progress=True))
    capsys.readouterr()
    monkeypatch.setattr(loop, "loss_read_every", lambda device: 4)
    batched = train(tiny_config(clip_facesets, tmp_path / "batched", steps=11, json_progress=True))
    assert batched.losses == every_step.losses and len(batched.losses) == 11  # the last 3 read at the end
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events if e.get("event") == "progress" and e.get("stage") == "train" and "step" in e]
    assert sorted(set(steps)) == list(range(1, 12))
    assert float(next(e for e in events if e.get("step") == 7)["loss"]) == pytest.approx(batched.losses[6], abs=1e-4)


@pytest.mark.parametrize("save_every", [3, 0])
def test_a_divergence_found_steps_later_names_its_step_and_keeps_the_checkpoint_before_it(
        clip_facesets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save_every: int) -> None:
    rate = loop.learning_rate
    monkeypatch.setattr(loop, "learning_rate", lambda cfg, step: 1e30 if step >= 7 else rate(cfg, step))
    with pytest.raises(LossNotFinite, match=r"at step (\d+)") as eager:  # read (and checked) every step
        train(tiny_config(clip_facesets, tmp_path / "eager", steps=40, save_every=1))
    diverged = int(eager.value.message.split("at step ")[1].split(";")[0])
    assert diverged > 7 and load_checkpoint(tmp_path / "eager")["step"] == diverged - 1

    monkeypatch.setattr(loop, "loss_read_every", lambda device: 4)
    checks: list[bool] = []
    step = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda *a, **k: (checks.append(k.get("check", True)), step(*a, **k))[1])
    run = tmp_path / "batched"
    with pytest.raises(LossNotFinite, match=r"not finite") as batched:
        train(tiny_config(clip_facesets, run, steps=40, save_every=save_every))
    assert f"at step {diverged};" in batched.value.message  # the first bad step, though found later
    assert not any(checks)  # no step waited for its loss
    # read back at the next checkpoint (step 9 with save_every 3) or after every 4th step (step 12)
    assert len(checks) == (-(-diverged // save_every) * save_every if save_every else -(-diverged // 4) * 4)
    if save_every:
        kept = (diverged - 1) // save_every * save_every
        assert f"checkpoint of step {kept} " in batched.value.message
        state = load_checkpoint(run)
        assert state["step"] == kept and all(torch.isfinite(t).all() for t in state["model"].values())
    else:
        assert "no checkpoint was written" in batched.value.message and not checkpoint_path(run).exists()


# -- the optimizer ------------------------------------------------------------------------------------------------
def _net() -> CombNet:
    torch.manual_seed(0)
    return CombNet(NetConfig(res=32, width=8, latent=16, identities=["a", "b"]), minimum_res=32)


def _adam_step(net: CombNet, optimizer: torch.optim.Optimizer, seed: int) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    optimizer.zero_grad()
    pred, mask = net(x, "a")
    ((pred - x).abs().mean() + mask.mean()).backward()
    optimizer.step()


def test_the_optimizer_is_fused_only_on_cuda_and_resumes_across_kernels() -> None:
    net = _net()
    assert not make_optimizer(net, 1e-3).param_groups[0]["fused"]  # the CPU keeps torch's default kernel
    # a checkpoint of a fused (GPU-style) optimizer resumes in this run's plain one, and back
    ahead = _net()
    fused = torch.optim.Adam(ahead.parameters(), lr=1e-3, betas=(0.5, 0.999), fused=True)
    plain = make_optimizer(net, 1e-3)
    _adam_step(ahead, fused, 1)
    _adam_step(net, plain, 1)
    load_optimizer(plain, copy.deepcopy(fused.state_dict()))  # as a checkpoint holds it: its own tensors
    assert not plain.param_groups[0]["fused"]
    assert all(s["step"].dtype == torch.float32 and float(s["step"]) == 1.0 for s in plain.state.values())
    _adam_step(ahead, fused, 2)
    _adam_step(net, plain, 2)
    for a, b in zip(ahead.parameters(), net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    again = torch.optim.Adam(_net().parameters(), lr=1e-3, fused=True)
    load_optimizer(again, copy.deepcopy(plain.state_dict()))
    assert again.param_groups[0]["fused"] and float(next(iter(again.state.values()))["step"]) == 2.0


# -- on a CUDA GPU ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@cuda
def test_loss_falls_on_cuda(clip_facesets: list[Path], tmp_path: Path) -> None:
    result = train(tiny_config(clip_facesets, tmp_path / "run", steps=40, device="cuda"))
    losses = result.losses
    assert len(losses) == 40 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


@pytest.mark.gpu
@cuda
def test_augmentation_on_the_gpu_draws_as_on_the_cpu() -> None:
    faces = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mattes = torch.rand(4, 2, 64, 64, generator=torch.Generator().manual_seed(2))
    on_cpu_g, on_gpu_g = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    want = augment(faces, mattes, AugmentConfig(), on_cpu_g)
    got = augment(faces.cuda(), mattes.cuda(), AugmentConfig(), on_gpu_g)
    assert got.warped.is_cuda and got.target.is_cuda and not got.flipped.is_cuda
    assert torch.equal(on_cpu_g.get_state(), on_gpu_g.get_state())  # the same numbers drawn, in the same order
    for a, b in zip(got[:3], want[:3]):
        torch.testing.assert_close(a.cpu(), b, atol=2e-4, rtol=1e-4)


@pytest.mark.gpu
@cuda
def test_a_cuda_training_step_never_waits_for_the_gpu() -> None:
    device = torch.device("cuda")
    net = _net().to(device)
    optimizer = make_optimizer(net, 1e-4)
    assert optimizer.param_groups[0]["fused"]
    parts = step_parts(net, optimizer, device, ["a", "b"])
    drawn = Batch(torch.rand(4, 3, 32, 32, device=device), torch.ones(4, 2, 32, 32, device=device))
    g = torch.Generator().manual_seed(0)
    train_step(parts, lambda _name: drawn, g, check=False)  # warm up (cuDNN, allocator)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        done = train_step(parts, lambda _name: drawn, g, check=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert done.loss.is_cuda and bool(torch.isfinite(done.loss))
