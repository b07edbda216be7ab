"""Blending of the swapped face into the plate, in plate pixels.

The matte is shaped first by ``mattes.erode_feather``: eroded (or, negative, grown) and
feathered, both measured in plate pixels so a setting means the same on a close-up and a wide
shot. The feather is centred on the eroded edge, so with ``erode`` about as large as ``feather``
the soft edge stays inside the face. ``face_colour`` returns the colour the face layer carries
under the matte:

* ``alpha``: the swap as is; the composite is a plain premultiplied over.
* ``multiband``: a Laplacian pyramid blend. Detail bands come from the swap inside the matte
  (each band blended with the matte at its own scale, so seams are soft at every scale), the
  coarsest bands come from the plate: the plate's light and contrast carry over onto the face.
  The renderer calls it with log (model space) pixels and the swap already filled with the
  plate outside the matte, so no band can push a dark plate below zero.

Either way the renderer composites ``face * A + plate * (1 - A)`` where the matte ``A`` is
non-zero and copies the plate where it is zero.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from facegraft.inference.io.colour import sanitize


def _levels(shape: tuple[int, ...], levels: int | None) -> int:
    smallest = min(shape[:2])
    most = max(1, int(np.floor(np.log2(max(smallest, 2) / 4))))
    return max(1, min(levels if levels else most, most))


def _gaussian(image: np.ndarray, levels: int) -> list[np.ndarray]:
    pyramid = [image]
    for _ in range(levels):
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


def _up(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    return cv2.pyrUp(image, dstsize=(like.shape[1], like.shape[0]))


def multiband(plate: np.ndarray, swap: np.ndarray, matte: np.ndarray, levels: int | None = None,
              plate_levels: int = 1) -> np.ndarray:
    """Laplacian pyramid blend of ``swap`` into ``plate`` (``[H, W, 3]``); the ``plate_levels``
    coarsest bands are the plate's."""
    n = _levels(plate.shape, levels)
    gp = _gaussian(sanitize(plate), n)
    gs = _gaussian(sanitize(swap), n)
    gm = _gaussian(np.ascontiguousarray(matte, dtype=np.float32), n)
    out = gp[n].copy()  # the residual (coarsest band) always from the plate
    for level in range(n - 1, -1, -1):
        lap_p = gp[level] - _up(gp[level + 1], gp[level])
        lap_s = gs[level] - _up(gs[level + 1], gs[level])
        from_plate = level >= n - (plate_levels - 1) if plate_levels > 1 else False
        m = gm[level][..., None]
        band = lap_p if from_plate else lap_s * m + lap_p * (1.0 - m)
        out = _up(out, gp[level]) + band
    return np.asarray(out, dtype=np.float32)


def _alpha(plate: np.ndarray, swap: np.ndarray, matte: np.ndarray) -> np.ndarray:
    return np.asarray(swap, dtype=np.float32)


# The blend modes, name -> method giving the face's colour under the matte; DEFAULT is what a
# render uses unless told.
METHODS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "alpha": _alpha, "multiband": multiband,
}
MODES = tuple(METHODS)
DEFAULT = "alpha"


def face_colour(plate: np.ndarray, swap: np.ndarray, matte: np.ndarray, mode: str = "alpha") -> np.ndarray:
    """The colour the face carries under ``matte`` (``[H, W, 3]`` float32, in the space of the inputs)."""
    if mode not in MODES:
        raise ValueError(f"unknown blend '{mode}' (one of {', '.join(MODES)})")
    return METHODS[mode](plate, swap, matte)
