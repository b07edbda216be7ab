"""The adversarial patch loss: its critic trains, survives a resume exactly, and costs nothing when off."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from synthetic import tiny_config

from facegraft.training.adversarial import Adversary, PatchCritic
from facegraft.training.checkpoint import load_checkpoint
from facegraft.training.data import Batch
from facegraft.training.loop import TrainConfig, make_optimizer, step_parts, train, train_step
from facegraft.training.losses import LossWeights
from facegraft.training.network import CombNet, NetConfig


def test_the_critic_scores_patches_and_ignores_the_background() -> None:
    critic = Adversary(torch.device("cpu"), 1e-3)
    assert critic.critic(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 8, 8)
    face = torch.zeros(1, 1, 32, 32)
    face[..., 8:24, 8:24] = 1.0
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    b[..., 8:24, 8:24] = a[..., 8:24, 8:24]  # the same face on another background
    assert torch.equal(critic.generator_loss(a, face), critic.generator_loss(b, face))
    assert all(p.requires_grad for p in critic.critic.parameters())  # left trainable after the generator's turn


def test_the_critic_learns_inside_the_training_step() -> None:
    """The network held still (rate 0), the critic's loss falls: it learns to tell the rebuilt faces from the faces."""
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=32, width=8, latent=32, identities=["a", "b"]), minimum_res=32)
    adversary = Adversary(torch.device("cpu"), 5e-4)
    parts = step_parts(net, make_optimizer(net, 0.0), torch.device("cpu"), ["a", "b"],
                       weights=LossWeights(adversarial=0.1), adversary=adversary)
    faces = torch.rand(4, 3, 32, 32) * 0.4 + 0.2
    faces[..., ::2, :] += 0.2  # fine stripes: detail the untrained network does not draw
    drawn = Batch(faces, torch.ones(4, 2, 32, 32))
    g = torch.Generator().manual_seed(0)
    steps = [train_step(parts, lambda _name: drawn, g) for _ in range(16)]
    critic = np.array([float(s.critic) for s in steps if s.critic is not None])
    assert len(critic) == 16 and np.isfinite(critic).all()
    assert critic[-4:].mean() < critic[:4].mean() * 0.6
    assert all("adversarial" in t for s in steps for t in s.terms)


def test_the_critics_verdict_reaches_the_decoders() -> None:
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=32, width=8, latent=32, identities=["a", "b"]), minimum_res=32)
    adversary = Adversary(torch.device("cpu"), 5e-4)
    only = LossWeights(l1=0.0, ssim=0.0, mask=0.0, features=0.0, adversarial=1.0)
    parts = step_parts(net, torch.optim.SGD(net.parameters(), lr=0.0), torch.device("cpu"), ["a", "b"],
                       weights=only, adversary=adversary)
    train_step(parts, lambda _name: Batch(torch.rand(2, 3, 32, 32), torch.ones(2, 2, 32, 32)),
               torch.Generator().manual_seed(0))
    for name in ("a", "b"):
        assert sum(float(p.grad.abs().sum()) for p in net.decoders[name].parameters() if p.grad is not None) > 0


def test_resume_repeats_the_critic_exactly(clip_facesets, tmp_path: Path) -> None:
    straight = train(tiny_config(clip_facesets, tmp_path / "straight", steps=4, adversarial=0.1))
    first = train(tiny_config(clip_facesets, tmp_path / "stopped", steps=2, adversarial=0.1))
    second = train(tiny_config(clip_facesets, tmp_path / "stopped", steps=4, adversarial=0.1, resume=True))
    assert first.losses + second.losses == straight.losses  # bitwise on the CPU
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "stopped")
    for name, tensor in a["adversarial"]["critic"].items():
        assert torch.equal(tensor, b["adversarial"]["critic"][name]), name
    assert a["adversarial"]["optimizer"]["state"]  # Adam's moments are there to resume from


def test_off_by_default_there_is_no_critic(tiny_run: Path) -> None:
    assert TrainConfig(facesets=[], out="").adversarial == 0.0
    assert "adversarial" not in load_checkpoint(tiny_run)
    net = CombNet(NetConfig(res=32, width=8, latent=32, identities=["a", "b"]), minimum_res=32)
    parts = step_parts(net, make_optimizer(net, 1e-3), torch.device("cpu"), ["a", "b"])
    assert parts.adversary is None and parts.landmarks is None
    done = train_step(parts, lambda _name: Batch(torch.rand(2, 3, 32, 32), torch.ones(2, 2, 32, 32)),
                      torch.Generator().manual_seed(0))
    assert done.critic is None and set(done.terms[0]) == {"total", "l1", "ssim", "mask"}
    assert sum(p.numel() for p in PatchCritic().parameters()) > 0  # what the default leaves out
