"""Soft mattes from the FaceMesh: the face (with forehead) and its regions.

Polygons are filled with 1/16 px precision and antialiased edges. Points are continuous
pixel coordinates of the target image (pixel centres at +0.5), as everywhere in FaceGraft.
Left and right are as seen in the image. The eye regions are drawn through the lid points, which
the tracker takes from the iris model's eye contour (``landmarks.LID_MESH``), so they close when
the eyes shut.
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from facegraft.inference.track import align

REGIONS: dict[str, list[int]] = {
    "face_oval": [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                  152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109],
    "lips": [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185],
    "mouth": [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191],
    "left_eye": [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246],
    "right_eye": [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466],
    "left_brow": [70, 63, 105, 66, 107, 55, 65, 52, 53, 46],
    "right_brow": [300, 293, 334, 296, 336, 285, 295, 282, 283, 276],
}
CHIN, TOP = 152, 10
_SHIFT = 4  # fillPoly sub-pixel bits


def fill_polygon(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An antialiased polygon matte ``[H, W]`` float32 in 0..1."""
    canvas = np.zeros(shape, np.uint8)
    pts = np.asarray(points, dtype=np.float64)[:, :2] - 0.5  # continuous -> pixel index
    fixed = np.round(pts * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return canvas.astype(np.float32) / 255.0


def hull(points: np.ndarray) -> np.ndarray:
    """The convex hull of ``(N, 2)`` points, as a polygon."""
    pts = np.asarray(points, dtype=np.float32)[:, :2]
    return cv2.convexHull(pts).reshape(-1, 2).astype(np.float64)


def face_outline(points: np.ndarray, forehead: float = 0.2) -> np.ndarray:
    """The face oval with its upper half raised by ``forehead`` x the face height.

    FaceMesh stops at mid-forehead; swaps that stop there leave a seam under the hairline.
    """
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    oval = pts[REGIONS["face_oval"]]
    up = pts[TOP] - pts[CHIN]
    height = float(np.linalg.norm(up))
    if height < 1e-6 or forehead <= 0:
        return oval
    up /= height
    eye_line = (pts[list(align.EYE_LEFT)].mean(axis=0) + pts[list(align.EYE_RIGHT)].mean(axis=0)) / 2
    above = (oval - eye_line) @ up  # distance above the eye line
    top = max(float(above.max()), 1e-6)
    lift = np.clip(above / top, 0.0, 1.0) * forehead * height
    return oval + lift[:, None] * up[None, :]


def face_matte(points_px: np.ndarray, shape: tuple[int, int], forehead: float = 0.2) -> np.ndarray:
    """The face matte: hull of the face oval with forehead, ``[H, W]`` float32 in 0..1."""
    return fill_polygon(hull(face_outline(points_px, forehead)), shape)


def region_mattes(points_px: np.ndarray, shape: tuple[int, int], names: Sequence[str] = tuple(REGIONS)) -> dict[str, np.ndarray]:
    """One matte per named FaceMesh region (eyes, brows, lips, mouth interior, face oval)."""
    pts = np.asarray(points_px, dtype=np.float64)[:, :2]
    return {name: fill_polygon(pts[REGIONS[name]], shape) for name in names}


def crop_mattes(landmarks: np.ndarray, transform: np.ndarray, res: int, coverage: str = "whole_face",
                forehead: float = 0.2) -> dict[str, np.ndarray]:
    """Mattes in crop space (``face`` plus every region) for the crop ``align.crop`` makes."""
    pts = align.apply(align.crop_matrix(transform, res, coverage), np.asarray(landmarks)[:, :2])
    mattes = region_mattes(pts, (res, res))
    mattes["face"] = face_matte(pts, (res, res), forehead)
    mattes["eyes"] = np.maximum(mattes["left_eye"], mattes["right_eye"])
    return mattes


def nonzero_box(planes: Sequence[Optional[np.ndarray]]) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` bounding every pixel that is not 0 (NaN included) in any of ``planes``
    (``[h, w]`` each, None skipped); ``(0, 0, 0, 0)`` when there is none."""
    rows: Optional[np.ndarray] = None
    cols: Optional[np.ndarray] = None
    for plane in planes:
        if plane is None:
            continue
        lit = plane != 0
        rows = lit.any(axis=1) if rows is None else rows | lit.any(axis=1)
        cols = lit.any(axis=0) if cols is None else cols | lit.any(axis=0)
    if rows is None or cols is None or not rows.any():
        return (0, 0, 0, 0)
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    return (int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1)


def erode_feather(matte: np.ndarray, erode: float = 0.0, feather: float = 0.0) -> np.ndarray:
    """Shrink a matte by ``erode`` px (negative grows it), then soften its edge by ``feather`` px.

    Only the matte's non-zero box, grown by the reach of both filters, is filtered: a face's matte
    fills about half the region around it, and outside that reach the result is 0 either way."""
    out: np.ndarray = np.asarray(matte, dtype=np.float32)
    erode_size = int(round(abs(erode))) * 2 + 1 if erode else 0
    sigma = feather / 2.0
    blur_size = int(round(sigma * 4 * 2 + 1)) | 1 if feather > 0 else 0  # OpenCV's own size for float images
    reach = erode_size // 2 + blur_size // 2 + 2
    y0, y1, x0, x1 = nonzero_box([out])
    if y1 <= y0:
        return np.zeros_like(out)
    y0, y1 = max(0, y0 - reach), min(out.shape[0], y1 + reach)
    x0, x1 = max(0, x0 - reach), min(out.shape[1], x1 + reach)
    part = out[y0:y1, x0:x1]
    if erode:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (erode_size, erode_size))
        part = cv2.erode(part, kernel) if erode > 0 else cv2.dilate(part, kernel)
    if feather > 0:
        part = cv2.GaussianBlur(part, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    result = np.zeros_like(out)
    result[y0:y1, x0:x1] = np.clip(part, 0.0, 1.0)
    return result
