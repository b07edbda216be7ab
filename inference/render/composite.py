"""One face composited onto one frame: pure array work, no I/O, no threads.

``composite`` takes the model's output for one face (crop pixels, model space) and the plate
pixels of the region around it, and returns every layer of the output over that region:

1. ``match_colour``: the swap recoloured towards the plate's crop (model space, statistics inside
   the model mask x the face matte);
2. ``warp_to_region``: swap and mask warped from the crop onto the region (``align.uncrop``);
3. ``raw_matte`` and ``shape_matte``: model mask x FaceMesh face matte x crop footprint, then
   eroded / feathered in plate pixels, minus the occlusion (what passes in front of the face)
   and the holdout, rounded to the output precision;
4. ``blend_colour``: the colour the face carries under the matte (``blend``; multiband works in
   the model's log space);
5. ``over``: the face premultiplied by the matte, over the plate.

Where the matte is 0 the beauty (and the plate's alpha) is the pass-through pixel bit for bit,
NaN, Inf and values above 1 included: only what goes into the arithmetic is sanitised. New pixels
are rounded to the precision they are stored in, so writing them as half is exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from facegraft.inference.io import layers
from facegraft.inference.io.colour import sanitize
from facegraft.inference.render import blend, colormatch
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import align, mattes

Convert = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Spaces:
    """The two colour conversions between the plate's space and the model's."""

    to_model: Convert
    to_plate: Convert


@dataclass(frozen=True)
class Placement:
    """Where the face sits: its crop's geometry and the region of the plate being composited."""

    transform: np.ndarray  # (2, 3) plate display px -> face space
    landmarks: np.ndarray  # (P, 2+) FaceMesh points, plate display px
    resolution: int  # the crop's size (the model's)
    coverage: str
    origin: tuple[int, int]  # display coordinates of the region's first pixel
    shape: tuple[int, int]  # the region's rows and columns


@dataclass
class FaceLayers:
    """The output layers over the region (``[h, w]`` or ``[h, w, 3]``); None: not asked for."""

    rgb: np.ndarray  # the beauty: the composite where ``matte`` > 0, the pass-through pixels elsewhere
    matte: np.ndarray  # float32 blend matte (``swap.A``); 0 means "plate pixel"
    swap: Optional[np.ndarray] = None  # the face premultiplied by ``matte``, 0 off the matte (``swap.RGB``)
    face_matte: Optional[np.ndarray] = None  # model mask x face matte x footprint, before shaping (``matte.face``)
    occlusion: Optional[np.ndarray] = None  # what passes in front of the face, as applied (``matte.occlusion``)
    alpha: Optional[np.ndarray] = None  # ``matte`` over the plate's alpha (when the plate has one)
    stmap: Optional[tuple[np.ndarray, np.ndarray]] = None  # float32 (s, t) into the crop (``stmap.R/G``)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, y1, x0, x1: where ``matte`` is not 0, in the region

    def within(self, box: tuple[int, int, int, int]) -> FaceLayers:
        """Every layer cut to ``box`` (``y0, y1, x0, x1`` in the region): views, not copies; the
        matte's box moved into the cut."""
        y0, y1, x0, x1 = box

        def cut(plane: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if plane is None else plane[y0:y1, x0:x1]

        stmap = None if self.stmap is None else (self.stmap[0][y0:y1, x0:x1], self.stmap[1][y0:y1, x0:x1])
        matte = self.matte[y0:y1, x0:x1]
        b0, b1, c0, c1 = self.box
        h, w = matte.shape
        inner = (min(max(b0 - y0, 0), h), min(max(b1 - y0, 0), h), min(max(c0 - x0, 0), w), min(max(c1 - x0, 0), w))
        return FaceLayers(rgb=self.rgb[y0:y1, x0:x1], matte=matte, swap=cut(self.swap),
                          face_matte=cut(self.face_matte), occlusion=cut(self.occlusion), alpha=cut(self.alpha),
                          stmap=stmap, box=inner if inner[1] > inner[0] and inner[3] > inner[2] else (0, 0, 0, 0))


def match_colour(swap: np.ndarray, crop: np.ndarray, mask: np.ndarray, place: Placement,
                 settings: RenderSettings) -> np.ndarray:
    """``swap`` ``[R, R, 3]`` recoloured towards the plate's ``crop``, weighted by ``mask`` x the
    face matte drawn in the crop; ``swap`` itself when colour match is off."""
    if settings.color_match == "none":
        return swap
    res = place.resolution
    points = align.apply(align.crop_matrix(place.transform, res, place.coverage), place.landmarks[:, :2])
    weights = mask * mattes.face_matte(points, (res, res), settings.forehead)
    return colormatch.match(swap, crop, weights, settings.color_match)


def warp_to_region(swap: np.ndarray, mask: np.ndarray, place: Placement) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Swap (cubic) and mask (linear) warped onto the region, and the crop square's footprint there."""
    swap_roi, footprint = align.uncrop(swap, place.transform, place.coverage, place.shape, place.origin, "cubic")
    mask_roi, _ = align.uncrop(np.ascontiguousarray(mask), place.transform, place.coverage, place.shape,
                               place.origin, "linear")
    return swap_roi, mask_roi, footprint


def raw_matte(mask: np.ndarray, footprint: np.ndarray, place: Placement, forehead: float) -> np.ndarray:
    """Model mask x the FaceMesh face matte (drawn at plate resolution) x footprint: ``matte.face``."""
    points = np.asarray(place.landmarks[:, :2], np.float64) - np.asarray(place.origin, np.float64)
    face = mattes.face_matte(points, place.shape, forehead)
    return np.clip(mask, 0.0, 1.0) * face * footprint


def shape_matte(raw: np.ndarray, footprint: np.ndarray, erode: float, feather: float,
                holdout: Optional[np.ndarray] = None, precision: type = np.float16,
                occlusion: Optional[np.ndarray] = None) -> np.ndarray:
    """The blend matte: ``raw`` eroded and feathered (plate px) inside the footprint, times
    ``1 - occlusion`` and ``1 - holdout`` (their edges stay as sharp as they are), rounded to
    ``precision`` first so "matte == 0" means "plate pixel" in the file."""
    matte = mattes.erode_feather(raw, erode, feather) * footprint
    for cut in (occlusion, holdout):
        if cut is not None:
            matte *= 1.0 - np.clip(cut, 0.0, 1.0)
    return np.clip(matte, 0.0, 1.0).astype(precision).astype(np.float32)


def blend_colour(plate: np.ndarray, swap: np.ndarray, matte: np.ndarray, mode: str, spaces: Spaces) -> np.ndarray:
    """The colour the face carries under ``matte``, in plate space. ``plate`` is sanitised plate
    space; ``swap`` is in model space for ``multiband`` (blended in log, where a band added to a
    dark plate cannot go negative) and in plate space otherwise."""
    if mode != "multiband":
        return blend.face_colour(plate, swap, matte, mode)
    # outside the matte the swap holds whatever the crop's border repeated; fill it with the plate
    # so the coarse pyramid levels do not carry that into the face
    plate_log = spaces.to_model(plate)
    a3 = matte[..., None]
    filled = swap * a3 + plate_log * (1.0 - a3)
    return spaces.to_plate(blend.face_colour(plate_log, filled, matte, mode))


def over(colour: np.ndarray, matte: np.ndarray, plate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(colour x matte, that over plate)``, premultiplied."""
    a3 = matte[..., None]
    premult = colour * a3
    return premult, premult + plate * (1.0 - a3)


def merge_alpha(matte: np.ndarray, plate_alpha: np.ndarray, precision: type = np.float16) -> np.ndarray:
    """The output's A: ``matte`` over the plate's alpha where the matte is non-zero, the plate's
    alpha bit for bit elsewhere."""
    with np.errstate(over="ignore"):  # an infinite plate alpha off the matte is kept as it is anyway
        merged: np.ndarray = (matte + np.nan_to_num(plate_alpha.astype(np.float32), nan=0.0) * (1.0 - matte)).astype(precision)
    return np.where(matte > 0, merged, plate_alpha)


def composite(
    plate: np.ndarray,
    crop: np.ndarray,
    swap: np.ndarray,
    mask: np.ndarray,
    place: Placement,
    settings: RenderSettings,
    spaces: Spaces,
    *,
    holdout: Optional[np.ndarray] = None,
    occlusion: Optional[np.ndarray] = None,
    background: Optional[np.ndarray] = None,
    plate_alpha: Optional[np.ndarray] = None,
    precision: type = np.float16,
    alpha_precision: type = np.float16,
    groups: Sequence[str] = layers.ALL,
) -> FaceLayers:
    """Composite one face onto the region ``place`` of a frame.

    ``plate``: the plate's RGB over the region ``[h, w, 3]`` (unsanitised, any float dtype);
    ``crop``, ``swap``: the model's input and output ``[R, R, 3]`` in model space; ``mask``: the
    model's mask ``[R, R]``; ``holdout``: ``[h, w]`` 0..1, pixels the swap must not touch;
    ``occlusion``: ``[h, w]`` 0..1, what passes in front of the face (hands, the shot's occluders);
    ``background``: the pixels the beauty keeps where the matte is 0 (default ``plate``);
    ``plate_alpha``: the plate's A, to merge the matte over; ``precision`` / ``alpha_precision``:
    the stored types of the new pixels and of A; ``groups``: the FaceGraft layers to compute
    (``swap``, ``matte``, ``stmap``: ``io.layers.GROUPS``).
    """
    swap = match_colour(swap, crop, mask, place, settings)
    log_blend = settings.blend == "multiband"
    swap_src = np.ascontiguousarray(swap) if log_blend else spaces.to_plate(swap)
    swap_roi, mask_roi, footprint = warp_to_region(swap_src, mask, place)
    raw = raw_matte(mask_roi, footprint, place, settings.forehead)
    matte = shape_matte(raw, footprint, settings.erode, settings.feather, holdout, precision, occlusion)

    # every step from here is per pixel (but a multiband pyramid's, which is built over the region):
    # only the matte's box is computed, the rest of the region is the pass-through pixels
    y0, y1, x0, x1 = matte_box = mattes.nonzero_box([matte])
    box = (slice(y0, y1), slice(x0, x1))
    inside = matte[box] > 0
    plate_clean = sanitize(plate[box])
    if log_blend:
        colour = blend_colour(sanitize(plate), swap_roi, matte, settings.blend, spaces)[box]
    else:
        colour = blend_colour(plate_clean, swap_roi[box], matte[box], settings.blend, spaces)
    premult, beauty = over(colour, matte[box], plate_clean)
    keep = plate if background is None else background
    rgb = keep.astype(np.result_type(precision, keep.dtype), copy=True)
    np.copyto(rgb[box], beauty if rgb.dtype == precision else beauty.astype(precision), casting="same_kind",
              where=inside[..., None])
    out = FaceLayers(rgb=rgb, matte=matte, box=matte_box)
    if plate_alpha is not None:
        out.alpha = merge_alpha(matte, plate_alpha, alpha_precision)
    if "swap" in groups:
        out.swap = np.zeros((*matte.shape, 3), precision)
        np.copyto(out.swap[box], premult, casting="same_kind", where=inside[..., None])
    if "matte" in groups:
        out.face_matte = raw.astype(precision)
        out.occlusion = None if occlusion is None else np.clip(occlusion, 0.0, 1.0).astype(precision)
    if "stmap" in groups:
        s, t = align.stmap_planes(place.transform, place.resolution, place.coverage, place.shape, place.origin)
        out.stmap = (s.astype(np.float32), t.astype(np.float32))  # stored as float32: an exact STMap
    return out
