"""Face space: the similarity transform from plate to an aligned face, crops and their inverse.

Conventions (shared by tracking, rendering, training and the STMap):

* Plate coordinates are continuous pixel coordinates in the **display window**: x right,
  y down, origin at the window's top-left corner, so display pixel (i, j) has its centre at
  (i + 0.5, j + 0.5). An array over the data window starts at ``origin`` =
  (data x - display x, data y - display y).
* Face space is normalised: the five-point template (eye centres, nose tip, mouth corners)
  sits where it sits in the common 112 px recognition crop, scaled to the unit square.
  That unit square is the ``face`` coverage; ``whole_face`` and ``head`` take more around it.
* A crop of resolution R maps face space into continuous crop pixels [0, R]².

Eye centres are the mean of each eye's two corners (stable while blinking or looking
around); the mouth corners weigh less than eyes and nose so expressions move the crop less.

Crop templates (``TEMPLATES``, by the name a model file records): a model is cropped the way it
was trained. ``facegraft-5pt-v1`` is the face space above, the tracked transform as it is.
``deepfacelab-wf`` is DeepFaceLab's whole-face alignment (its ``get_transform_mat`` for
``FaceType.WHOLE_FACE``), for ``.dfm`` models: a similarity fit of 33 of the 68 iBUG points
(brows, nose, eyes, the mouth corners; taken from FaceMesh by ``MESH_OF_68``) to DeepFaceLab's
mean face, a square around it padded by 0.40 and raised by 7%. ``model_transform`` expresses any
template as a plate -> face space transform for the model's coverage, so cropping, the inverse
warp and the STMap work the same for every template.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from facegraft.inference.io import colour

TEMPLATE_NAME = "facegraft-5pt-v1"
#: Template points in face space: image-left eye, image-right eye, nose tip, mouth left, mouth right.
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
) / 112.0
TEMPLATE_WEIGHTS = np.array([1.0, 1.0, 0.8, 0.4, 0.4])
#: FaceMesh indices behind each template point (eye corner pairs are averaged).
EYE_LEFT = (33, 133)  # image-left eye: outer, inner corner
EYE_RIGHT = (362, 263)  # image-right eye: inner, outer corner
NOSE_TIP = 1
MOUTH_LEFT, MOUTH_RIGHT = 61, 291

#: Crop size relative to the ``face`` unit square, and the crop centre in face space.
COVERAGES: dict[str, tuple[float, tuple[float, float]]] = {
    "face": (1.0, (0.5, 0.5)),
    "whole_face": (1.25, (0.5, 0.5)),
    "head": (2.0, (0.5, 0.4)),
}
INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
                 "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


def template_points(landmarks: np.ndarray) -> np.ndarray:
    """The five template points (plate px) from FaceMesh landmarks ``(N >= 468, 2|3)``."""
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    return np.stack([
        lm[list(EYE_LEFT)].mean(axis=0),
        lm[list(EYE_RIGHT)].mean(axis=0),
        lm[NOSE_TIP],
        lm[MOUTH_LEFT],
        lm[MOUTH_RIGHT],
    ])


def estimate_similarity(src: np.ndarray, dst: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Weighted least-squares similarity (rotation, uniform scale, translation) ``src -> dst``."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s, d = src - mu_s, dst - mu_d
    # Closed form for a 2D similarity: z -> c z + t with complex c = a + ib.
    var = float(w @ (s**2).sum(axis=1))
    a = float(w @ (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1])) / var
    b = float(w @ (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0])) / var
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def face_transform(landmarks: np.ndarray) -> np.ndarray:
    """Similarity ``(2, 3)`` mapping plate px to face space, from FaceMesh landmarks."""
    return estimate_similarity(template_points(landmarks), TEMPLATE, TEMPLATE_WEIGHTS)


# -- DeepFaceLab's whole-face template -----------------------------------------------------------
DFL_WHOLE_FACE = "deepfacelab-wf"
#: FaceMesh index for each 68-point (iBUG 300-W) landmark DeepFaceLab aligns with: 17-48 and 54.
MESH_OF_68: dict[int, int] = {
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107,  # image-left brow, outer to inner (upper contour)
    22: 336, 23: 296, 24: 334, 25: 293, 26: 300,  # image-right brow, inner to outer
    27: 168, 28: 197, 29: 5, 30: 4,  # nose bridge, top to tip
    31: 75, 32: 97, 33: 2, 34: 326, 35: 305,  # under the nose, left to right
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,  # image-left eye, from the outer corner
    42: 362, 43: 385, 44: 387, 45: 263, 46: 373, 47: 380,  # image-right eye, from the inner corner
    48: 61, 54: 291,  # mouth corners
}
DFL_POINTS: tuple[int, ...] = (*range(17, 49), 54)
#: DeepFaceLab's mean face (``landmarks_2D_new``) for ``DFL_POINTS``: where they sit in its unit face square.
DFL_MEAN_FACE = np.array([
    [0.000213256, 0.106454], [0.0752622, 0.038915], [0.18113, 0.0187482], [0.29077, 0.0344891],
    [0.393397, 0.0773906], [0.586856, 0.0773906], [0.689483, 0.0344891], [0.799124, 0.0187482],
    [0.904991, 0.038915], [0.98004, 0.106454], [0.490127, 0.203352], [0.490127, 0.307009],
    [0.490127, 0.409805], [0.490127, 0.515625], [0.36688, 0.587326], [0.426036, 0.609345],
    [0.490127, 0.628106], [0.554217, 0.609345], [0.613373, 0.587326], [0.121737, 0.216423],
    [0.187122, 0.178758], [0.265825, 0.179852], [0.334606, 0.231733], [0.260918, 0.245099],
    [0.182743, 0.244077], [0.645647, 0.231733], [0.714428, 0.179852], [0.793132, 0.178758],
    [0.858516, 0.216423], [0.79751, 0.244077], [0.719335, 0.245099], [0.254149, 0.780233],
    [0.726104, 0.780233],
])
DFL_WF_PADDING = 0.40  # DeepFaceLab's whole-face padding: the crop's side is 1 + 2 * 0.40 * sqrt(2) unit faces
DFL_WF_RAISE = 0.07  # the crop centre moves this much of the square up (more forehead)


def dfl_points(landmarks: np.ndarray) -> np.ndarray:
    """The 68-point landmarks DeepFaceLab aligns with (``DFL_POINTS`` order), from FaceMesh ``(N >= 468, 2|3)``."""
    lm = np.asarray(landmarks, dtype=np.float64)[:, :2]
    return lm[[MESH_OF_68[i] for i in DFL_POINTS]]


def dfl_whole_face_matrix(points: np.ndarray, res: int) -> np.ndarray:
    """DeepFaceLab's whole-face crop matrix for ``points`` (``DFL_POINTS`` of the 68) and a crop of
    ``res`` px, in DeepFaceLab's own terms: the matrix it hands to ``cv2.warpAffine``.

    The least-squares similarity (Umeyama) maps the points onto the mean face's unit square; the
    crop is the square of side ``1 + 2 * 0.40 * sqrt(2)`` around its centre raised by 0.07.
    """
    unit = estimate_similarity(points, DFL_MEAN_FACE)  # plate -> unit face square
    side = 1.0 + 2.0 * DFL_WF_PADDING * np.sqrt(2.0)
    left, top = 0.5 - side / 2.0, 0.5 - DFL_WF_RAISE - side / 2.0
    k = res / side
    return compose(np.array([[k, 0.0, -k * left], [0.0, k, -k * top]]), unit)


def dfl_whole_face_transform(landmarks: np.ndarray, res: int, coverage: str) -> np.ndarray:
    """Plate -> face space such that ``crop_matrix(result, res, coverage)`` is DeepFaceLab's crop.

    DeepFaceLab's landmarks and warps count pixels from their centres (pixel i at i); plate
    coordinates here put pixel centres at +0.5. Its matrix fitted to landmarks in this convention
    maps plate coordinates in this convention to its crop's pixel indices (shifting landmarks and
    plate by the same half pixel changes nothing), so the crop's continuous coordinates are that
    plus half a pixel: the crop is the very one DeepFaceLab would cut.
    """
    crop = compose(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), dfl_whole_face_matrix(dfl_points(landmarks), res))
    return compose(invert(coverage_matrix(res, coverage)), crop)


# -- the template registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class Template:
    """One way of aligning faces for a model: which coverages it has and how a face is placed."""

    name: str
    coverages: tuple[str, ...]
    #: ``(tracked transform, FaceMesh landmarks, crop res, coverage)`` -> plate -> face space.
    fit: Callable[[np.ndarray, np.ndarray, int, str], np.ndarray]
    description: str


TEMPLATES: dict[str, Template] = {
    TEMPLATE_NAME: Template(TEMPLATE_NAME, tuple(COVERAGES), lambda transform, landmarks, res, coverage: transform,
                            "FaceGraft's five-point face space (the shot track's transform)"),
    DFL_WHOLE_FACE: Template(DFL_WHOLE_FACE, ("whole_face",),
                             lambda transform, landmarks, res, coverage: dfl_whole_face_transform(landmarks, res, coverage),
                             "DeepFaceLab's whole-face alignment (FaceType.WHOLE_FACE)"),
}


def template(name: str, coverage: Optional[str] = None) -> Template:
    """The template ``name`` (and check it has ``coverage``); ValueError naming what exists."""
    found = TEMPLATES.get(name)
    if found is None:
        raise ValueError(f"the crop template '{name}' is not implemented (this FaceGraft implements: "
                         f"{', '.join(TEMPLATES)})")
    if coverage is not None and coverage not in found.coverages:
        raise ValueError(f"the crop template '{name}' has no coverage '{coverage}' (it has: {', '.join(found.coverages)})")
    return found


def model_transform(template_name: str, transform: np.ndarray, landmarks: np.ndarray, res: int,
                    coverage: str) -> np.ndarray:
    """The plate -> face space transform that crops a tracked face the way a model of
    ``template_name`` was trained (``transform`` is the track's, ``landmarks`` its FaceMesh)."""
    return np.asarray(template(template_name, coverage).fit(transform, landmarks, res, coverage), dtype=np.float64)


def as3x3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix."""
    return np.linalg.inv(as3x3(matrix))[:2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer ∘ inner`` for ``(2, 3)`` affine matrices."""
    return (as3x3(outer) @ as3x3(inner))[:2]


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points through a ``(2, 3)`` affine matrix."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    m = np.asarray(matrix, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def coverage_matrix(res: int, coverage: str = "whole_face") -> np.ndarray:
    """Face space -> continuous crop px for a crop of ``res`` pixels."""
    if coverage not in COVERAGES:
        raise ValueError(f"unknown coverage '{coverage}' (one of {', '.join(COVERAGES)})")
    size, (cx, cy) = COVERAGES[coverage]
    k = res / size
    return np.array([[k, 0.0, res / 2 - k * cx], [0.0, k, res / 2 - k * cy]])


def crop_matrix(transform: np.ndarray, res: int, coverage: str = "whole_face") -> np.ndarray:
    """Plate continuous px -> crop continuous px."""
    return compose(coverage_matrix(res, coverage), transform)


def array_matrix(matrix: np.ndarray, origin: Sequence[float] = (0, 0)) -> np.ndarray:
    """Turn a continuous plate->crop matrix into OpenCV's pixel-index convention (array index ->
    crop index, as ``cv2.warpAffine`` takes it).

    OpenCV samples pixel index (x, y) at its centre, i.e. continuous (x + 0.5, y + 0.5); an
    array over the data window starts at ``origin`` in plate coordinates (``(0, 0)``: the matrix
    already starts from continuous array px).
    """
    to_cont = np.array([[1.0, 0.0, origin[0] + 0.5], [0.0, 1.0, origin[1] + 0.5]])
    from_cont = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5]])
    return compose(from_cont, compose(matrix, to_cont))


def crop_region(transform: np.ndarray, res: int, coverage: str, origin: Sequence[float], shape: tuple[int, int],
                margin: int = 0) -> tuple[int, int, int, int]:
    """Array rows/cols ``(y0, y1, x0, x1)`` holding the crop square plus ``margin`` px, clipped to
    an array of ``shape`` (H, W) over the data window starting at ``origin``.

    The renderer works on this region of interest; faceset extraction skips a face whose region
    is empty (under 2 px either way) exactly as the renderer does.
    """
    inv = invert(crop_matrix(transform, res, coverage))
    corners = apply(inv, np.array([[0, 0], [res, 0], [0, res], [res, res]], np.float64))
    corners -= np.asarray(origin, np.float64)
    h, w = shape
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - margin, 0, w))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + margin, 0, w))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - margin, 0, h))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + margin, 0, h))
    return y0, y1, x0, x1


def _as_channels(array: np.ndarray) -> tuple[np.ndarray, bool]:
    return (array[..., None], True) if array.ndim == 2 else (array, False)


def _warp(array: np.ndarray, matrix: np.ndarray, size: tuple[int, int], interpolation: str, border: int) -> np.ndarray:
    data, squeeze = _as_channels(np.ascontiguousarray(array, dtype=np.float32))
    flags = INTERPOLATION[interpolation] | cv2.WARP_INVERSE_MAP
    inv = invert(matrix)  # WARP_INVERSE_MAP: give OpenCV dst->src, as computed in float64 here
    parts = [
        cv2.warpAffine(np.ascontiguousarray(data[..., i:i + 4]), inv, size, flags=flags, borderMode=border)
        for i in range(0, data.shape[-1], 4)
    ]
    out = np.concatenate([p[..., None] if p.ndim == 2 else p for p in parts], axis=-1)
    return out[..., 0] if squeeze else out


def crop(
    array: np.ndarray,
    transform: np.ndarray,
    res: int,
    coverage: str = "whole_face",
    origin: Sequence[float] = (0, 0),
    interpolation: str = "cubic",
) -> np.ndarray:
    """The aligned face crop ``[res, res, C]`` (float32) from an array over the data window.

    Crops feed networks, so non-finite pixels become finite (``colour.sanitize``). Only the
    region the crop samples is touched. Downscaling by more than 2x area-filters first, on
    blocks aligned to absolute plate pixels, so the crop is the same whether ``array`` is the
    whole frame or any window around the face: training and rendering see identical crops.
    Outside the plate, edge pixels are repeated.
    """
    m = array_matrix(crop_matrix(transform, res, coverage), origin)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if interpolation == "area":
        factor, interpolation = max(1, int(round(1.0 / max(scale, 1e-6)))), "linear"
    else:
        factor = max(1, int(np.floor(1.0 / max(scale, 1e-6) / 2.0)))
    h, w = array.shape[:2]
    corners = apply(invert(m), np.array([[-0.5, -0.5], [res - 0.5, -0.5], [-0.5, res - 0.5], [res - 0.5, res - 0.5]]))
    pad = 4 * factor
    ox, oy = int(round(origin[0])), int(round(origin[1]))
    x0 = int(np.floor((corners[:, 0].min() - pad + ox) / factor)) * factor - ox
    x1 = int(np.ceil((corners[:, 0].max() + pad + ox) / factor)) * factor - ox
    y0 = int(np.floor((corners[:, 1].min() - pad + oy) / factor)) * factor - oy
    y1 = int(np.ceil((corners[:, 1].max() + pad + oy) / factor)) * factor - oy
    x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
    x1, y1 = max(min(x1, w), x0 + 1), max(min(y1, h), y0 + 1)
    region = colour.sanitize(array[y0:y1, x0:x1])
    m = compose(m, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))  # region index -> array index -> crop
    if factor > 1:
        rh, rw = region.shape[:2]
        sw, sh = max(1, rw // factor), max(1, rh // factor)
        region = cv2.resize(np.ascontiguousarray(region[: sh * factor, : sw * factor]), (sw, sh),
                            interpolation=cv2.INTER_AREA)
        # small index i covers region indices [i*f, (i+1)*f): its centre is i*f + (f-1)/2
        m = compose(m, np.array([[factor, 0.0, (factor - 1) / 2], [0.0, factor, (factor - 1) / 2]]))
    return _warp(region, m, (res, res), interpolation, cv2.BORDER_REPLICATE)


def uncrop(
    face: np.ndarray,
    transform: np.ndarray,
    coverage: str,
    shape: tuple[int, int],
    origin: Sequence[float] = (0, 0),
    interpolation: str = "cubic",
) -> tuple[np.ndarray, np.ndarray]:
    """Warp a crop back onto the plate array (``shape`` = data window H, W): ``(pixels, footprint)``.

    The footprint is the crop square's coverage of each plate pixel (0 outside, 1 inside,
    antialiased along the border), so callers never use pixels the crop did not contain.
    """
    res = face.shape[0]
    m = array_matrix(crop_matrix(transform, res, coverage), origin)
    inv = invert(m)  # crop index -> plate index
    h, w = shape
    pixels = _warp(face, inv, (w, h), interpolation, cv2.BORDER_REPLICATE)
    square = np.ones((res, res), np.float32)
    footprint = cv2.warpAffine(square, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return pixels, np.clip(footprint, 0.0, 1.0)


def stmap_planes(transform: np.ndarray, res: int, coverage: str, shape: tuple[int, int],
                 origin: Sequence[float] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` of ``stmap`` as two float32 planes that broadcast to ``shape``: each the sum of
    a ``[1, W]`` and an ``[H, 1]`` part, so they are cheap to build at UHD."""
    h, w = shape
    m = crop_matrix(transform, res, coverage) / res
    xs = np.arange(w, dtype=np.float64) + origin[0] + 0.5
    ys = np.arange(h, dtype=np.float64) + origin[1] + 0.5
    s = (m[0, 0] * xs)[None, :].astype(np.float32) + (m[0, 1] * ys + m[0, 2])[:, None].astype(np.float32)
    t = (-m[1, 0] * xs)[None, :].astype(np.float32) + (1.0 - m[1, 1] * ys - m[1, 2])[:, None].astype(np.float32)
    return s, t


def stmap(
    transform: np.ndarray, res: int, coverage: str, shape: tuple[int, int], origin: Sequence[float] = (0, 0)
) -> np.ndarray:
    """Per plate pixel its position in the crop, Nuke STMap convention: ``s = x/res, t = 1 - y/res``,
    ``[H, W, 2]`` float32 (the renderer's ``stmap.R/G`` layer)."""
    return np.stack(np.broadcast_arrays(*stmap_planes(transform, res, coverage, shape, origin)), axis=-1)


def template_points_in_crop(res: int, coverage: str = "whole_face") -> np.ndarray:
    """Where the template's five points land in a crop (continuous px)."""
    return apply(coverage_matrix(res, coverage), TEMPLATE)
