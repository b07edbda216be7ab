"""Augmentation of a training batch, driven by one ``torch.Generator`` so runs repeat exactly.

* Geometry shared by input and target: flip, scale, rotation, shift (the network must keep
  pose, so the target moves with the input).
* A smooth random warp of the input only: the network cannot copy pixels through, it has to
  learn the face (the classic autoencoder face-swap trick).
* Colour jitter in the model's log space (ACEScct), applied to input and target alike: an
  exposure shift of a stop is an offset of 1/17.52, white balance a per-channel offset,
  contrast a scale about mid grey, saturation a mix with luma. The model learns to carry the
  plate's grade through to the swap.

Random numbers are drawn on the CPU from one generator in a fixed order, whatever device the
faces live on; the few numbers a batch needs go to that device with asynchronous copies, and
the grids and warps are built there (on a GPU, a synchronous copy would make the CPU wait for
every queued kernel, every step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.nn import functional as F

ACESCCT_STOP = 1.0 / 17.52
ACESCCT_MID_GREY = 0.4135
LUMA = (0.2722, 0.6741, 0.0537)  # AP1 luminance weights


@dataclass
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip
    scale: float = 0.05  # +- relative
    rotate: float = 10.0  # +- degrees
    shift: float = 0.05  # +- fraction of the crop
    warp: float = 0.04  # amplitude of the smooth warp, fraction of the crop
    warp_cells: int = 5  # control grid of the warp
    exposure: float = 0.5  # +- stops
    white_balance: float = 0.1  # +- stops per channel
    contrast: float = 0.1  # +- relative, about mid grey
    saturation: float = 0.2  # +- relative


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` (small, CPU) on ``device`` without waiting for it: a pinned, asynchronous copy to a GPU
    (a plain ``.to`` would wait for every kernel queued before it)."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` (small, CPU) on ``like``'s device and in its dtype, without waiting for that device."""
    return to_device(x, like.device).to(like.dtype)


def _uniform(n: int, spread: float, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=g) * 2 - 1) * spread


def _affine(n: int, cfg: AugmentConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N,2,3]`` sampling matrices for ``F.affine_grid`` (normalised coordinates), and which are flipped."""
    angle = _uniform(n, math.radians(cfg.rotate), g)
    scale = 1.0 + _uniform(n, cfg.scale, g)
    tx, ty = _uniform(n, 2 * cfg.shift, g), _uniform(n, 2 * cfg.shift, g)
    flip = torch.where(torch.rand(n, generator=g) < cfg.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    return theta, flip < 0


def _warp_coarse(n: int, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """The control points ``[N,2,C,C]`` of a smooth random displacement (normalised units)."""
    return torch.randn(n, 2, cfg.warp_cells, cfg.warp_cells, generator=g) * (2 * cfg.warp)


def _warp_offsets(coarse: torch.Tensor, res: int) -> torch.Tensor:
    """The displacement field ``[N,R,R,2]`` through the control points ``coarse`` (on their device)."""
    fine = F.interpolate(coarse, size=(res, res), mode="bicubic", align_corners=True)
    return fine.permute(0, 2, 3, 1)


def jitter_colour(images: list[torch.Tensor], cfg: AugmentConfig, g: torch.Generator) -> list[torch.Tensor]:
    """The same random grade applied to every tensor in ``images`` (each ``[N,3,H,W]``, ACEScct)."""
    n = images[0].shape[0]
    offset = _uniform(n, cfg.exposure * ACESCCT_STOP, g)[:, None] + _uniform(
        n * 3, cfg.white_balance * ACESCCT_STOP, g).reshape(n, 3)
    contrast = 1.0 + _uniform(n, cfg.contrast, g)
    saturation = 1.0 + _uniform(n, cfg.saturation, g)
    # one copy to the device: luma weights [3], saturation [N], contrast [N], offsets [N*3]
    params = _to(torch.cat([torch.tensor(LUMA), saturation, contrast, offset.reshape(-1)]), images[0])
    luma_w = params[:3].reshape(1, 3, 1, 1)
    saturation, contrast = params[3:3 + n].reshape(n, 1, 1, 1), params[3 + n:3 + 2 * n].reshape(n, 1, 1, 1)
    offset = params[3 + 2 * n:].reshape(n, 3, 1, 1)
    out = []
    for image in images:
        luma = (image * luma_w).sum(1, keepdim=True)
        x = luma + (image - luma) * saturation
        x = ACESCCT_MID_GREY + (x - ACESCCT_MID_GREY) * contrast
        out.append(x + offset)
    return out


class Augmented(NamedTuple):
    warped: torch.Tensor  # the network's input
    target: torch.Tensor  # what it must rebuild
    mattes: torch.Tensor  # the target's mattes
    flipped: torch.Tensor  # [N] bool: mirrored left-right (the eyes swap sides, the yaw turns)


def augment(faces: torch.Tensor, mattes: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> Augmented:
    """``faces [N,3,R,R]``, ``mattes [N,K,R,R]`` -> the warped input, the target and its mattes.

    Random numbers are drawn on the CPU from ``g`` in a fixed order, whatever device the
    tensors live on, so a run (and its resume) repeats exactly; the grids are built on the
    faces' device. ``flipped`` stays on the CPU.
    """
    n, _, res, _ = faces.shape
    theta, flipped = _affine(n, cfg, g)
    coarse = _warp_coarse(n, cfg, g)
    # one copy to the device: theta [N,2,3] and the warp's control points [N,2,C,C], in float32
    params = _to(torch.cat([theta.reshape(-1), coarse.reshape(-1)]), faces.new_empty(0, dtype=torch.float32))
    theta, coarse = params[:theta.numel()].reshape(theta.shape), params[theta.numel():].reshape(coarse.shape)
    grid = F.affine_grid(theta, [n, 1, res, res], align_corners=False).to(faces.dtype)
    warp = _warp_offsets(coarse, res).to(faces.dtype)
    target = F.grid_sample(faces, grid, mode="bilinear", padding_mode="border", align_corners=False)
    target_mattes = F.grid_sample(mattes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped = F.grid_sample(faces, grid + warp, mode="bilinear", padding_mode="border", align_corners=False)
    warped, target = jitter_colour([warped, target], cfg, g)
    return Augmented(warped, target, target_mattes, flipped)
