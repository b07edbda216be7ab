"""Batches of faces for training, drawn from facesets with a seeded generator."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from facegraft.inference.errors import FaceGraftError

from .faceset import FEATURE_MATTES, Faceset, open_faceset


@dataclass
class IdentityData:
    """All facesets of one identity, sampled as one pool."""

    identity: str
    facesets: list[Faceset]

    def __len__(self) -> int:
        return sum(len(fs) for fs in self.facesets)

    def _locate(self, index: int) -> tuple[Faceset, int]:
        for fs in self.facesets:
            if index < len(fs):
                return fs, index
            index -= len(fs)
        raise IndexError(index)

    def load(self, indices: Sequence[int], res: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Faces ``[B,3,res,res]`` (model space) and mattes ``[B,2,res,res]`` (face, eyes+mouth)."""
        faces, mattes = [], []
        for i in indices:
            fs, j = self._locate(int(i))
            faces.append(np.asarray(fs.faces[j], np.float32))
            m = fs.mattes[j].astype(np.float32) / 255.0
            face = m[..., fs.matte_names.index("face")]
            features = np.max([m[..., fs.matte_names.index(n)] for n in FEATURE_MATTES if n in fs.matte_names], axis=0)
            mattes.append(np.stack([face, features], -1))
        x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).contiguous()
        m_t = torch.from_numpy(np.stack(mattes)).permute(0, 3, 1, 2).contiguous()
        if x.shape[-1] != res:
            x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
            m_t = F.interpolate(m_t, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        return x, m_t

    def sample(self, g: torch.Generator, batch: int, res: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.randint(len(self), (batch,), generator=g).tolist()
        return self.load(indices, res)


def load_identities(paths: Sequence[str]) -> dict[str, IdentityData]:
    """Open every faceset and group them by identity (order of first appearance kept)."""
    if not paths:
        raise FaceGraftError("no facesets given", hint="pass --faceset FOLDER once per identity (at least two)")
    groups: dict[str, IdentityData] = {}
    first: Faceset | None = None
    for path in paths:
        fs = open_faceset(path)
        if first is None:
            first = fs
        else:
            for key in ("coverage", "colorspace"):
                if getattr(fs, key) != getattr(first, key):
                    raise FaceGraftError(
                        f"facesets disagree on {key}: {first.path} has {getattr(first, key)!r}, this one {getattr(fs, key)!r}",
                        path=str(fs.path), hint=f"extract every faceset of a model with the same --{key.replace('colorspace', 'model-colorspace')}")
        groups.setdefault(fs.identity, IdentityData(fs.identity, [])).facesets.append(fs)
    if len(groups) < 2:
        only = next(iter(groups))
        raise FaceGraftError(f"every faceset given is of one identity ('{only}'); a face model needs two",
                             hint="add --faceset for the other actor (the source face and the plate's face)")
    return groups
