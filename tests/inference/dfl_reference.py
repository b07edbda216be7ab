"""DeepFaceLab's whole-face alignment written out step by step, as a reference for the tests.

Independent of ``facegraft.inference.track.align`` (which computes the same crop in closed
form): Umeyama's SVD similarity from 33 of the 68 landmarks to DeepFaceLab's mean face, the
unit square's corners taken back to the image, the centre raised by 7% of the square, the half
diagonals grown by the 0.40 whole-face padding, and the affine map of three corners onto the
crop's. Landmarks and the matrix use DeepFaceLab's pixel convention (pixel i centred at i): the
matrix is what DeepFaceLab hands to ``cv2.warpAffine``.
"""
from __future__ import annotations

import cv2
import numpy as np

#: 68-point indices DeepFaceLab fits (brows, nose, eyes, mouth corner 48; then 54).
POINTS = list(range(17, 49)) + [54]
#: DeepFaceLab's ``landmarks_2D_new``: the mean face of those points in the unit square.
MEAN_FACE = np.array([
    (0.000213256, 0.106454), (0.0752622, 0.038915), (0.18113, 0.0187482), (0.29077, 0.0344891),
    (0.393397, 0.0773906), (0.586856, 0.0773906), (0.689483, 0.0344891), (0.799124, 0.0187482),
    (0.904991, 0.038915), (0.98004, 0.106454), (0.490127, 0.203352), (0.490127, 0.307009),
    (0.490127, 0.409805), (0.490127, 0.515625), (0.36688, 0.587326), (0.426036, 0.609345),
    (0.490127, 0.628106), (0.554217, 0.609345), (0.613373, 0.587326), (0.121737, 0.216423),
    (0.187122, 0.178758), (0.265825, 0.179852), (0.334606, 0.231733), (0.260918, 0.245099),
    (0.182743, 0.244077), (0.645647, 0.231733), (0.714428, 0.179852), (0.793132, 0.178758),
    (0.858516, 0.216423), (0.79751, 0.244077), (0.719335, 0.245099), (0.254149, 0.780233),
    (0.726104, 0.780233),
])
PADDING = 0.40


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity src -> dst (Umeyama 1991, with scale), as a ``(2, 3)`` matrix."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = float(sig @ sign) / float(s.var(axis=0).sum())
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def whole_face_matrix(landmarks68: np.ndarray, res: int) -> np.ndarray:
    """The ``(2, 3)`` image -> crop matrix DeepFaceLab's ``get_transform_mat(.., FaceType.WHOLE_FACE)`` gives."""
    to_unit = umeyama(np.asarray(landmarks68, np.float64)[POINTS], MEAN_FACE)
    back = cv2.invertAffineTransform(to_unit)
    corners = np.array([(0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.5)], np.float64)
    g = corners @ back[:, :2].T + back[:, 2]
    centre = g[4].copy()
    down_diag = (g[2] - g[0]) / np.linalg.norm(g[2] - g[0])
    up_diag = (g[1] - g[3]) / np.linalg.norm(g[1] - g[3])
    half = np.linalg.norm(g[0] - g[2]) * (PADDING * np.sqrt(2.0) + 0.5)
    up = g[0] - g[3]  # towards the forehead, one square long
    centre += up * 0.07
    three = np.array([centre - down_diag * half, centre + up_diag * half, centre + down_diag * half], np.float32)
    square = np.array([(0, 0), (res, 0), (res, res)], np.float32)
    return cv2.getAffineTransform(three, square).astype(np.float64)
