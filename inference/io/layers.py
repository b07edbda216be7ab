"""The render's output channels and its ``facegraft/*`` header attributes (docs/layers.md).

An EXR per frame, channels named the way Nuke shows layers, in two kinds of part:

* the plate's parts, each as the plate has it (name, channels, data window, compression); in
  the part holding the plate's RGB (named ``rgba`` when the plate has one unnamed part):
  ``R, G, B, A``, the plate with the swap composited (``A``: the plate's alpha with the face
  matte merged over it, or 1 everywhere when the plate has no alpha), and any other plate
  channel (``Z``, ``other.*``) copied bit for bit;
* one part per FaceGraft layer (``PARTS``: ``facegraft_swap``, ``facegraft_matte``,
  ``facegraft_stmap``), on a data window around the face, ZIP-compressed:
  ``swap.R/G/B/A`` the swapped face premultiplied by its blend matte (``swap over plate``);
  ``matte.face`` model mask x FaceMesh face matte, before erode/feather/occlusion/holdout;
  ``matte.occlusion`` what passes in front of the face (0..1: the hands the track found, and the
  shot's occlusion model's matte; 0 with ``--occlusion none``); ``matte.holdout`` the holdout as
  applied (0 when none). The swap's matte is the face matte x (1 - occlusion) x (1 - holdout); ``stmap.R/G`` per plate pixel its
  position in the aligned face crop (Nuke STMap, float32).

``--layers`` picks which FaceGraft layers (parts) a render writes (default ``all``; ``none``:
the plate's parts alone).
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from facegraft.inference import __version__

BEAUTY = ("R", "G", "B", "A")
SWAP = ("swap.R", "swap.G", "swap.B", "swap.A")
MATTES = ("matte.face", "matte.occlusion", "matte.holdout")
STMAP = ("stmap.R", "stmap.G")
FACEGRAFT = SWAP + MATTES + STMAP
GROUPS = {"swap": SWAP, "matte": MATTES, "stmap": STMAP}
ALL = tuple(GROUPS)
PREFIX = "facegraft/"
PARTS = {group: f"facegraft_{group}" for group in GROUPS}  # each layer's own part
PLATE_PART = "rgba"  # the name given to a single-part plate's part in a multi-part render

# Frame status written to ``facegraft/status``.
RENDERED, NO_FACE, HELD = "rendered", "no_face", "held"
# ``facegraft/format_version``: the version of this output layout. Bump it whenever a render writes
# something else for the same inputs (channels, parts, header): a re-run then renders again every
# frame another version wrote (``facegraft.inference.render.stamp``).
FORMAT_VERSION = 2  # 2: matte.occlusion


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
    """Every output channel name, as Nuke lists them (all parts): the beauty part's, then the
    FaceGraft layers of ``groups``."""
    beauty = beauty_channels(plate_channels)
    return beauty[:len(BEAUTY)] + list(facegraft_channels(groups)) + beauty[len(BEAUTY):]


def beauty_channels(plate_channels: Sequence[str]) -> list[str]:
    """The channels of the part holding the plate's RGB: ``R, G, B, A``, then the plate's other
    channels (a plate channel named like a FaceGraft layer is left out: the layers replace it)."""
    return list(BEAUTY) + [c for c in plate_channels if c not in BEAUTY and c not in FACEGRAFT]


def attributes(model_hash: str, model_name: str, params: Mapping[str, Any], status: str,
               *, device: str = "", device_fallback: Optional[str] = None, **extra: Any) -> dict[str, object]:
    """``facegraft/*`` header attributes: stable text only (no dates, no host names, no paths).

    ``device`` (``facegraft/device``) is where the model ran (``cuda``, ``tensorrt``, ``cpu``);
    ``device_fallback`` (``facegraft/device_fallback``) why a GPU that was expected was not used.
    """
    attrs: dict[str, object] = {
        PREFIX + "version": __version__,
        PREFIX + "format_version": FORMAT_VERSION,
        PREFIX + "model_hash": model_hash,
        PREFIX + "model": model_name,
        PREFIX + "params": json.dumps(dict(params), sort_keys=True, default=str),
        PREFIX + "status": status,
    }
    if device:
        attrs[PREFIX + "device"] = device
    if device_fallback:
        attrs[PREFIX + "device_fallback"] = device_fallback
    for key, value in extra.items():
        attrs[PREFIX + key] = value if isinstance(value, (int, float)) else str(value)
    return attrs
