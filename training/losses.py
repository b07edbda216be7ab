"""Losses: masked L1 + SSIM on the face, extra weight on eyes and mouth, a mask loss, and the
expression head's fit.

Images are in the model's colour space (ACEScct by default, roughly 0..1.5), NCHW. Mattes are
``[N,1,H,W]`` in 0..1: the face matte limits the colour losses to the face, the eyes/mouth
matte (drawn from each face's own landmarks, so it follows the lids and lips) adds weight where
viewers look first and where a few pixels decide whether an eye is shut or a mouth open.

The landmark-consistency loss (``landmark_loss``) and the adversarial patch loss
(``adversarial``) live in modules of their own; their weights are here.

The expression loss fits the network's expression head (``network``) to each face's measured
pose and expression (``data.MEASURES``, standardised over the training faces): the shared code
has to say how open each eye and the mouth are, in the same way for every identity.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class LossWeights:
    l1: float = 1.0
    ssim: float = 1.0
    features: float = 3.0  # extra L1 weight inside the eyes and mouth mattes
    mask: float = 1.0
    ms_ssim: bool = False  # multi-scale SSIM (needs crops of 64 px or more)
    expression: float = 0.0  # weight of the expression head's fit (needs a network with the head)
    landmarks: float = 0.0  # landmark consistency of rebuilt and swapped faces (``landmark_loss``); 0: off
    adversarial: float = 0.0  # the patch critic's verdict on rebuilt faces (``adversarial``); 0: off


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).to(like.dtype).to(like.device)
    return window.expand(channels, 1, size, size).contiguous()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5,
                data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and contrast-structure terms (Wang et al. 2004), valid convolution."""
    channels = x.shape[1]
    size = min(size, x.shape[-1], x.shape[-2])
    window = _gaussian_window(size, sigma, channels, x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image, ``[N]``."""
    return _ssim_parts(x.float(), y.float(), data_range=data_range)[0]


_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Multi-scale SSIM per image, ``[N]``; uses as many of the 5 scales as the crop size allows."""
    x, y = x.float(), y.float()
    levels = max(1, min(len(_MS_WEIGHTS), 1 + int(torch.log2(torch.tensor(min(x.shape[-2:]) / 16.0)).floor())))
    weights = torch.tensor(_MS_WEIGHTS[:levels], device=x.device)
    weights = weights / weights.sum()
    values = []
    for level in range(levels):
        full, cs = _ssim_parts(x, y, data_range=data_range)
        values.append((full if level == levels - 1 else cs).clamp_min(1e-6))
        if level < levels - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values, dim=1)
    return torch.prod(stacked ** weights[None, :], dim=1)


def reconstruction_loss(
    pred: torch.Tensor,
    pred_mask: torch.Tensor,
    target: torch.Tensor,
    face: torch.Tensor,
    features: torch.Tensor,
    weights: LossWeights,
) -> dict[str, torch.Tensor]:
    """Loss terms for one identity's batch; ``total`` is what gets back-propagated.

    ``face`` and ``features`` are mattes ``[N,1,H,W]``: the face, and eyes + mouth.
    """
    pred, pred_mask = pred.float(), pred_mask.float()
    weight = face * (1.0 + weights.features * features)
    l1 = ((pred - target).abs() * weight).sum() / (weight.sum() * pred.shape[1]).clamp_min(1.0)
    similarity = ms_ssim if weights.ms_ssim else ssim
    structural = 1.0 - similarity(pred * face, target * face).mean()
    mask = F.l1_loss(pred_mask, face)
    total = weights.l1 * l1 + weights.ssim * structural + weights.mask * mask
    return {"total": total, "l1": l1.detach(), "ssim": structural.detach(), "mask": mask.detach()}


def psnr(pred: torch.Tensor, target: torch.Tensor, matte: torch.Tensor | None = None, peak: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image over ``matte`` (whole crop when None)."""
    err = (pred.float() - target.float()) ** 2
    if matte is None:
        mse = err.flatten(1).mean(1)
    else:
        w = matte.expand_as(err)
        mse = (err * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-6)
    return 10.0 * torch.log10(peak**2 / mse.clamp_min(1e-12))


def expression_loss(predicted: torch.Tensor, measures: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 between the head's output and the standardised measures ``[N, M]``; unknown (NaN) measures are skipped."""
    target = (measures - mean) / std
    known = torch.isfinite(target)
    # the mean over the known entries, 0 when there is none, without asking the device which they are
    per_entry = F.smooth_l1_loss(predicted.float(), torch.where(known, target, 0.0), beta=0.5, reduction="none")
    return (per_entry * known).sum() / known.sum().clamp_min(1)
