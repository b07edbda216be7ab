"""The render's output channels and its ``facegraft/*`` header attributes (docs/layers.md).

One single-part EXR per frame, channels named the way Nuke shows layers:

* ``R, G, B, A``: the plate with the swap composited (``A``: the plate's alpha with the face
  matte merged over it, or 1 everywhere when the plate has no alpha);
* ``swap.R/G/B/A``: the swapped face premultiplied by its blend matte (``swap over plate``);
* ``matte.face``: model mask x FaceMesh face matte, before erode/feather/holdout;
* ``matte.holdout``: the holdout as applied (0 when none);
* ``stmap.R/G``: per plate pixel its position in the aligned face crop (Nuke STMap);
* any other plate channel (``Z``, ``other.*``) copied bit for bit.

``--layers`` picks which FaceGraft layers a render writes (default ``all``); fewer channels
encode faster, most of all with DWAA/DWAB.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from facegraft.inference import __version__

BEAUTY = ("R", "G", "B", "A")
SWAP = ("swap.R", "swap.G", "swap.B", "swap.A")
MATTES = ("matte.face", "matte.holdout")
STMAP = ("stmap.R", "stmap.G")
FACEGRAFT = SWAP + MATTES + STMAP
GROUPS = {"swap": SWAP, "matte": MATTES, "stmap": STMAP}
ALL = tuple(GROUPS)
PREFIX = "facegraft/"

# Frame status written to ``facegraft/status``.
RENDERED, NO_FACE, HELD = "rendered", "no_face", "held"


def parse_groups(text: str) -> tuple[str, ...]:
    """``--layers``: ``all``, ``none`` or a comma list of ``swap``, ``matte``, ``stmap`` (in that order)."""
    words = [w.strip().lower() for w in str(text).split(",") if w.strip()]
    if words == ["all"]:
        return ALL
    if words == ["none"]:
        return ()
    unknown = [w for w in words if w not in GROUPS]
    if unknown or not words:
        raise ValueError(f"unknown layer(s) '{text}': use all, none or a comma list of {', '.join(GROUPS)}")
    return tuple(g for g in GROUPS if g in words)


def facegraft_channels(groups: Sequence[str] = ALL) -> tuple[str, ...]:
    """The FaceGraft channels of ``groups``, in output order."""
    return tuple(c for g in GROUPS if g in groups for c in GROUPS[g])


def channels(plate_channels: Sequence[str], groups: Sequence[str] = ALL) -> list[str]:
    """Output channel names: beauty, the FaceGraft layers of ``groups``, then the plate's other channels."""
    extra = [c for c in plate_channels if c not in BEAUTY and c not in FACEGRAFT]
    return list(BEAUTY) + list(facegraft_channels(groups)) + extra


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
