"""The render's output channels and its ``facegraft/*`` header attributes (docs/layers.md).

One single-part EXR per frame, channels named the way Nuke shows layers:

* ``R, G, B, A``: the plate with the swap composited (``A``: the plate's alpha with the face
  matte merged over it, or 1 everywhere when the plate has no alpha);
* ``swap.R/G/B/A``: the swapped face premultiplied by its blend matte (``swap over plate``);
* ``matte.face``: model mask x FaceMesh face matte, before erode/feather/holdout;
* ``matte.holdout``: the holdout as applied (0 when none);
* ``stmap.R/G``: per plate pixel its position in the aligned face crop (Nuke STMap);
* any other plate channel (``Z``, ``other.*``) copied bit for bit.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from . import __version__

BEAUTY = ("R", "G", "B", "A")
SWAP = ("swap.R", "swap.G", "swap.B", "swap.A")
MATTES = ("matte.face", "matte.holdout")
STMAP = ("stmap.R", "stmap.G")
FACEGRAFT = SWAP + MATTES + STMAP
PREFIX = "facegraft/"

# Frame status written to ``facegraft/status``.
RENDERED, NO_FACE, HELD = "rendered", "no_face", "held"


def channels(plate_channels: Sequence[str]) -> list[str]:
    """Output channel names: beauty, FaceGraft layers, then the plate's other channels."""
    extra = [c for c in plate_channels if c not in BEAUTY and c not in FACEGRAFT]
    return list(BEAUTY) + list(FACEGRAFT) + extra


def attributes(model_hash: str, model_name: str, params: Mapping[str, Any], status: str,
               **extra: Any) -> dict[str, object]:
    """``facegraft/*`` header attributes: stable text only (no dates, no host names, no paths)."""
    attrs: dict[str, object] = {
        PREFIX + "version": __version__,
        PREFIX + "model_hash": model_hash,
        PREFIX + "model": model_name,
        PREFIX + "params": json.dumps(dict(params), sort_keys=True, default=str),
        PREFIX + "status": status,
    }
    for key, value in extra.items():
        attrs[PREFIX + key] = value if isinstance(value, (int, float)) else str(value)
    return attrs
