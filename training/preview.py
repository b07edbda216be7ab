"""Preview grids during training: each identity's faces, their rebuild, and their swap."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facegraft.inference.io import contact_sheet

from .data import IdentityData
from .faceset import to_srgb
from .network import CombNet


@torch.no_grad()
def preview_batches(data: dict[str, IdentityData], res: int, count: int = 4) -> dict[str, torch.Tensor]:
    """Fixed faces to preview: ``count`` spread over each identity (the same every time)."""
    picks = {}
    for name, d in data.items():
        idx = np.unique(np.linspace(0, len(d) - 1, min(count, len(d))).round().astype(int))
        picks[name] = d.load(idx.tolist(), res)[0]
    return picks


@torch.no_grad()
def render_preview(net: CombNet, faces: dict[str, torch.Tensor], colorspace: str, config: str) -> np.ndarray:
    """One row per face: the face | rebuilt as itself | swapped to every other identity (sRGB uint8)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    names = list(net.cfg.identities)
    tiles: list[np.ndarray] = []
    for name in names:
        x = faces[name].to(device)
        code = net.encoder(x)
        columns = [x] + [net.decoders[name](code)[0]] + [net.decoders[o](code)[0] for o in names if o != name]
        for i in range(x.shape[0]):
            for column in columns:
                tiles.append(column[i].float().permute(1, 2, 0).cpu().numpy())
    net.train(was_training)
    pictures = to_srgb(np.stack(tiles), colorspace, config)
    return contact_sheet.sheet(list(pictures), columns=1 + len(names), gap=2, background=24)


def write_preview(net: CombNet, faces: dict[str, torch.Tensor], colorspace: str, config: str, path: Path) -> Path:
    return contact_sheet.write_png(path, render_preview(net, faces, colorspace, config), rgb=True)
