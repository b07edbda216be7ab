"""Colour management through OpenColorIO.

Plates are scene-linear (default ACEScg, the studio config's ``scene_linear``). Networks see
a log space (default ACEScct): invertible, no tone-mapping, highlights kept. Detection and
previews see an sRGB display view. Processors are cached per (config, source, target).

Built-in config aliases (``ocio://studio-config-latest``, ``ocio://default``) change meaning
with the installed OCIO; ``resolve_config`` turns them into the versioned URI they stand for
(``ocio://studio-config-v5.0.0_aces-v2.1_ocio-v2.6`` with OCIO 2.6), which is what is loaded and
what model files record. A conversion between two configs (the plate's space in the render's,
the model's space in the model's own) goes through their interchange roles (OCIO's
``GetProcessorFromConfigs``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import PyOpenColorIO as ocio

from facegraft.inference.errors import FaceGraftError

DEFAULT_CONFIG = "ocio://studio-config-latest"  # the user-facing default; resolved before use
DEFAULT_PLATE_SPACE = "ACEScg"
DEFAULT_MODEL_SPACE = "ACEScct"
DEFAULT_DISPLAY = "sRGB - Display"
SRGB_ENCODED = "sRGB Encoded Rec.709 (sRGB)"  # what the detectors see
OWN_SPACES = frozenset({SRGB_ENCODED, DEFAULT_MODEL_SPACE})
HALF_MAX = 65504.0


BUILTIN_PREFIX = "ocio://"


def resolve_config(config: str = DEFAULT_CONFIG) -> str:
    """The config as a stable name: a built-in alias becomes the versioned URI the installed OCIO
    gives it (``ocio://studio-config-latest`` -> ``ocio://studio-config-v…_aces-v…_ocio-v…``);
    versioned URIs, files and ``""`` (none given) are returned as they are."""
    if not config.startswith(BUILTIN_PREFIX):
        return config
    return str(ocio.ResolveConfigPath(config))


def is_versioned(config: str) -> bool:
    """False for a built-in alias whose meaning depends on the installed OCIO (``…-latest``, ``default``)."""
    return not config.startswith(BUILTIN_PREFIX) or resolve_config(config) == config


def load_config(config: str = DEFAULT_CONFIG) -> ocio.Config:
    """The OCIO config ``config`` names (aliases resolved; loaded once); FaceGraftError if it cannot load."""
    return _load_resolved(resolve_config(config))


@lru_cache(maxsize=8)
def _load_resolved(config: str) -> ocio.Config:
    try:
        return ocio.Config.CreateFromFile(config)
    except Exception as exc:
        hint = f"pass a .ocio file or a built-in URI such as {DEFAULT_CONFIG}"
        if config.startswith(BUILTIN_PREFIX):
            hint = (f"this OCIO ({ocio.__version__}) has no built-in config of that name (newer OCIO versions add "
                    f"configs); install a matching OpenColorIO or pass a .ocio file")
        raise FaceGraftError(f"cannot load the OCIO config ({_first_line(exc)})", path=config, hint=hint) from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


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
        if out.size:  # a packed image description: OCIO's vectorised path (applyRGB is 2-3x slower)
            self._cpu.apply(ocio.PackedImageDesc(out, out.size // 3, 1, 3))
        return out

    def __repr__(self) -> str:
        return f"Converter({self.label})"


def converter(source: str, target: str, config: str = DEFAULT_CONFIG, target_config: Optional[str] = None) -> Converter:
    """Colour space ``source`` of ``config`` -> ``target`` of ``target_config`` (default: the same config).

    Two different configs are bridged through their interchange roles (``aces_interchange`` for
    scene-referred spaces); a config without them cannot be bridged, which is an error.
    """
    first = resolve_config(config)
    second = resolve_config(target_config) if target_config else first
    return _converter(source, target, first, second)


def _space_home(name: str, config: str) -> str:
    """The config a colour space is read in: ``config`` when it has the space; FaceGraft's own
    working spaces (the detectors' sRGB encoding, the default model space) that a show's config
    lacks (Nuke's cg-configs have no 'sRGB Encoded Rec.709 (sRGB)') are read in FaceGraft's
    reference config and bridged through the interchange roles. A space the user names is never
    looked up anywhere but in the user's config."""
    if name in OWN_SPACES and load_config(config).getColorSpace(name) is None:
        return resolve_config(DEFAULT_CONFIG)
    return config


@lru_cache(maxsize=64)
def _converter(source: str, target: str, config: str, target_config: str) -> Converter:
    config, target_config = _space_home(source, config), _space_home(target, target_config)
    src = resolve_space(source, config)
    dst = resolve_space(target, target_config)
    if target_config == config:
        return Converter(load_config(config).getProcessor(src, dst), f"{src} -> {dst}")
    try:
        processor = ocio.Config.GetProcessorFromConfigs(load_config(config), src, load_config(target_config), dst)
    except Exception as exc:
        raise FaceGraftError(
            f"cannot convert '{src}' of {config} to '{dst}' of {target_config}: {_first_line(exc)}", path=config,
            hint="both configs need the interchange roles (aces_interchange, cie_xyz_d65_interchange); "
                 "render with the config the model was trained in (--ocio-config)") from exc
    return Converter(processor, f"{src} ({config}) -> {dst} ({target_config})")


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




def to_display_uint8(rgb: np.ndarray, source: str, config: str = DEFAULT_CONFIG, tone_map: bool = False) -> np.ndarray:
    """Plate pixels as an 8-bit sRGB picture (``[H, W, 3]``, RGB order).

    Detectors get the plain sRGB encoding (a matrix and a curve: fast, and faces sit well below
    white); contact sheets and previews ask for ``tone_map=True``, the display's default view.
    """
    convert = display_converter(source, config) if tone_map else converter(source, SRGB_ENCODED, config)
    shown = convert(sanitize(rgb))
    return (np.clip(shown, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
