"""An optional adversarial patch loss: a small PatchGAN critic judges the face's texture.

L1 and SSIM reward the average of the faces that fit: pores, stubble and the glint in an eye
come out soft. A critic that looks at overlapping patches (22 px across, whatever the crop size)
of rebuilt faces and of the faces they rebuild, and is trained to tell them apart, gives the
decoders a reason to draw that detail (Isola et al., "Image-to-Image Translation with
Conditional Adversarial Networks", 2017). Least-squares targets (LSGAN, Mao et al. 2017)
keep its gradients tame.

Both sides are masked to the face: the critic sees ``face * matte`` (the background, which no
loss trains, would otherwise give the fakes away) and every patch's score is weighted by how
much of the face it covers. The critic has its own Adam optimizer, following the network's
learning rate, and both go into the checkpoint, so a resumed run repeats.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

CRITIC_WIDTH = 32
CRITIC_LEVELS = 3  # stride-2 convolutions: a 64 px crop is scored on an 8 x 8 grid of patches


class PatchCritic(nn.Module):
    """``[N,3,R,R]`` -> patch scores ``[N,1,R/8,R/8]`` (high: looks like a real face)."""

    def __init__(self, width: int = CRITIC_WIDTH, levels: int = CRITIC_LEVELS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for level in range(levels):
            out = width * 2**level
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 1))  # one score per patch: 22 px across (3 levels)
        self.net = nn.Sequential(*layers)
        self.scale = 2**levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def patch_weights(face: torch.Tensor, scale: int) -> torch.Tensor:
    """The face matte ``[N,1,R,R]`` averaged over each patch cell ``[N,1,R/scale,R/scale]``."""
    return F.avg_pool2d(face.float(), scale)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp_min(1e-6)


class Adversary:
    """The critic, its optimizer, and the two halves of the LSGAN game."""

    def __init__(self, device: torch.device, lr: float, width: int = CRITIC_WIDTH) -> None:
        self.critic = PatchCritic(width).to(device)
        self.optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.999))

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def generator_loss(self, fake: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """What the network minimises: the critic's patches of ``fake`` pushed towards "real" (1).
        The critic's own weights take no gradient from this."""
        self.critic.requires_grad_(False)
        try:
            scores = self.critic(fake.float() * face)
        finally:
            self.critic.requires_grad_(True)
        return _weighted_mean((scores - 1.0) ** 2, patch_weights(face, self.critic.scale))

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor, face_real: torch.Tensor,
                    face_fake: torch.Tensor) -> torch.Tensor:
        """The critic's loss: real patches to 1, fake ones (detached) to 0."""
        scale = self.critic.scale
        real_scores = self.critic(real.float() * face_real)
        fake_scores = self.critic(fake.detach().float() * face_fake)
        return 0.5 * (_weighted_mean((real_scores - 1.0) ** 2, patch_weights(face_real, scale))
                      + _weighted_mean(fake_scores**2, patch_weights(face_fake, scale)))

    def step(self, loss: torch.Tensor) -> None:
        """One optimizer step of the critic on ``critic_loss``."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])
