"""Colour management through OpenColorIO.

Plates are scene-linear (default ACEScg, the studio config's ``scene_linear``). Networks see
a log space (default ACEScct): invertible, no tone-mapping, highlights kept. Detection and
previews see an sRGB display view. Processors are cached per (config, source, target).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import PyOpenColorIO as ocio

from facegraft.inference.errors import FaceGraftError

DEFAULT_CONFIG = "ocio://studio-config-latest"
DEFAULT_PLATE_SPACE = "ACEScg"
DEFAULT_MODEL_SPACE = "ACEScct"
DEFAULT_DISPLAY = "sRGB - Display"
HALF_MAX = 65504.0


@lru_cache(maxsize=8)
def load_config(config: str = DEFAULT_CONFIG) -> ocio.Config:
    try:
        return ocio.Config.CreateFromFile(config)
    except Exception as exc:
        raise FaceGraftError(f"cannot load the OCIO config ({exc})", path=config,
                             hint=f"pass a .ocio file or a built-in URI such as {DEFAULT_CONFIG}") from exc


def resolve_space(name: str, config: str = DEFAULT_CONFIG) -> str:
    """The colour space's canonical name (roles and aliases resolved); a clear error if unknown."""
    cfg = load_config(config)
    space = cfg.getColorSpace(name)
    if space is None:
        known = ", ".join(sorted(cs.getName() for cs in cfg.getColorSpaces())[:12])
        raise FaceGraftError(f"the OCIO config has no colour space '{name}'", path=config,
                             hint=f"some it has: {known}, …; `ociocheck` lists them all")
    return str(space.getName())


class Converter:
    """Applies one OCIO transform to float32 RGB arrays; returns a new array.

    OCIO's CPU processors are immutable once built, so one converter serves every thread.
    """

    def __init__(self, processor: ocio.Processor, label: str) -> None:
        self._cpu = processor.getOptimizedCPUProcessor(ocio.OPTIMIZATION_DEFAULT)
        self.label = label
        self.is_noop = processor.isNoOp()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        out = np.array(rgb, dtype=np.float32, order="C", copy=True)
        if self.is_noop:
            return out
        if out.shape[-1] != 3:
            raise ValueError(f"expected RGB in the last axis, got shape {out.shape}")
        flat = out.reshape(-1, 3)
        self._cpu.applyRGB(flat)
        return out

    def __repr__(self) -> str:
        return f"Converter({self.label})"


@lru_cache(maxsize=64)
def converter(source: str, target: str, config: str = DEFAULT_CONFIG) -> Converter:
    """Colour space ``source`` -> ``target`` in ``config``."""
    cfg = load_config(config)
    src, dst = resolve_space(source, config), resolve_space(target, config)
    return Converter(cfg.getProcessor(src, dst), f"{src} -> {dst}")


@lru_cache(maxsize=16)
def display_converter(source: str, config: str = DEFAULT_CONFIG, display: Optional[str] = None,
                      view: Optional[str] = None) -> Converter:
    """``source`` -> a display view (default: sRGB display, its default view), for detection and previews."""
    cfg = load_config(config)
    src = resolve_space(source, config)
    display = display or (DEFAULT_DISPLAY if DEFAULT_DISPLAY in cfg.getDisplays() else cfg.getDefaultDisplay())
    view = view or cfg.getDefaultView(display)
    transform = ocio.DisplayViewTransform(src=src, display=display, view=view)
    return Converter(cfg.getProcessor(transform), f"{src} -> {display} / {view}")


def sanitize(rgb: np.ndarray, low: float = -HALF_MAX, high: float = HALF_MAX) -> np.ndarray:
    """NaN -> 0 and Inf clamped, for pixels that go into a network (never for pass-through pixels)."""
    return np.nan_to_num(rgb.astype(np.float32, copy=False), nan=0.0, posinf=high, neginf=low).clip(low, high)


SRGB_ENCODED = "sRGB Encoded Rec.709 (sRGB)"


def to_display_uint8(rgb: np.ndarray, source: str, config: str = DEFAULT_CONFIG, tone_map: bool = False) -> np.ndarray:
    """Plate pixels as an 8-bit sRGB picture (``[H, W, 3]``, RGB order).

    Detectors get the plain sRGB encoding (a matrix and a curve: fast, and faces sit well below
    white); contact sheets and previews ask for ``tone_map=True``, the display's default view.
    """
    convert = display_converter(source, config) if tone_map else converter(source, SRGB_ENCODED, config)
    shown = convert(sanitize(rgb))
    return (np.clip(shown, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
