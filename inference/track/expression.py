"""Pose and expression measured from FaceMesh landmarks: eye and mouth openness, gaze, head pose.

One definition for the tracker, the quality report, the coverage check and the training losses.
Points are the 478-point layout of ``landmarks`` (``[..., 478, 2 or 3]``, any leading batch
shape), in any pixel space related to the plate by a similarity (plate px, aligned crop px):
every measure is a ratio or an angle, so it does not depend on the face's size or place.
"Left" and "right" are as seen in the image (the eye near points 33/133 is ``eye_left``).

* **Eye openness**: the mean gap between three upper and three lower lid points over the eye's
  corner distance (about 0.3 open, under 0.1 shut). The lid points are the iris model's eye
  contour mapped onto the mesh (``landmarks``): FaceMesh's own lids barely move when an eye
  shuts. Measure on raw landmarks (or lightly smoothed ones): the tracker's default
  smoothing (sigma 1.5 frames) halves a three-frame blink.
* **Mouth openness**: the mean gap between three inner-lip pairs over the inner mouth width.
* **Gaze**: the iris centre relative to the midpoint of its eye's corners, along and across the
  corner line, in eye widths (0 looking straight at the corners' midpoint).
* **Head pose**: yaw, pitch and roll in degrees from the mesh's own axes (eye line, and the
  forehead-to-nose-base line): yaw > 0 turned towards image right, pitch > 0 chin up, roll > 0
  the eye line turned clockwise on screen. With depth (``z``) the axes are 3-D; with 2-D points
  (facesets store 2-D) yaw and pitch come from where the nose tip sits between the cheeks and
  between the eye line and the nose base, scaled to degrees against the 3-D measure on the
  sample footage (agrees within a few degrees up to about 20 degrees).

``eye_openness`` and ``mouth_openness`` use only indexing and arithmetic, so they accept torch
tensors as well as numpy arrays (and stay differentiable); the rest is numpy.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

# per eye, image-left first: upper lid, lower lid (above one another), corners (image-left, image-right)
EYE_UPPER = ((160, 159, 158), (387, 386, 385))
EYE_LOWER = ((144, 145, 153), (373, 374, 380))
EYE_CORNERS = ((33, 133), (362, 263))
IRIS_CENTRES = (468, 473)
MOUTH_UPPER, MOUTH_LOWER = (82, 13, 312), (87, 14, 317)  # inner lips, above one another
MOUTH_CORNERS = (78, 308)  # inner mouth corners

# openness below EYE_SHUT is a shut eye, above EYE_OPEN an open one (between: blinking, squinting).
# On the sample footage: open 0.25-0.36, shut 0.04-0.10 (iris-model lids).
EYE_SHUT, EYE_OPEN = 0.15, 0.2
# inner-lip gap over inner mouth width: above MOUTH_OPEN the teeth or the mouth's inside show, under
# MOUTH_SHUT the lips (nearly) touch
MOUTH_OPEN, MOUTH_SHUT = 0.15, 0.1

# head pose axes: symmetric pairs (image-left, image-right) for the eye line; rigid forehead and
# nose-base points for the face's vertical
POSE_PAIRS = ((33, 263), (133, 362), (234, 454), (127, 356), (93, 323))
FOREHEAD = (10, 109, 338, 67, 297)
NOSE_BASE = (2, 98, 327, 164)
NOSE_TIP = 1
CHEEKS = (234, 454)
# 2-D pose: degrees per unit of the nose-tip offsets (fitted against the 3-D measure, sample footage)
YAW_2D = 35.0
PITCH_2D = (-205.0, 86.0)  # slope, offset

FIELDS = ("eye_left", "eye_right", "mouth", "yaw", "pitch", "roll")  # ``measures`` columns
_EPS = 1e-9


def _distance(a: Any, b: Any) -> Any:
    """Euclidean distance over the last axis; works on numpy arrays and torch tensors."""
    return (((a - b) ** 2).sum(-1) + 1e-12) ** 0.5


def eye_openness(points: Any) -> Any:
    """``[..., 2]``: lid gap over corner distance per eye (image-left eye first)."""
    upper = points[..., list(EYE_UPPER), :2]  # [..., 2, 3, 2]
    lower = points[..., list(EYE_LOWER), :2]
    a = points[..., [c[0] for c in EYE_CORNERS], :2]
    b = points[..., [c[1] for c in EYE_CORNERS], :2]
    return _distance(upper, lower).mean(-1) / (_distance(a, b) + _EPS)


def mouth_openness(points: Any) -> Any:
    """``[...]``: inner-lip gap over inner mouth width."""
    gap = _distance(points[..., list(MOUTH_UPPER), :2], points[..., list(MOUTH_LOWER), :2]).mean(-1)
    return gap / (_distance(points[..., MOUTH_CORNERS[0], :2], points[..., MOUTH_CORNERS[1], :2]) + _EPS)


def gaze(points: np.ndarray) -> np.ndarray:
    """``[..., 2, 2]``: per eye, the iris centre's offset (along, across the corner line; across
    is positive downwards) from the corners' midpoint, in eye widths. Needs the 478-point layout."""
    p = np.asarray(points, np.float64)[..., :2]
    a = p[..., [c[0] for c in EYE_CORNERS], :]
    b = p[..., [c[1] for c in EYE_CORNERS], :]
    width = np.linalg.norm(b - a, axis=-1, keepdims=True)
    u = (b - a) / np.maximum(width, _EPS)
    d = (p[..., list(IRIS_CENTRES), :] - (a + b) / 2) / np.maximum(width, _EPS)
    along = (d * u).sum(-1)
    across = d[..., 1] * u[..., 0] - d[..., 0] * u[..., 1]
    return np.stack([along, across], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def head_pose(points: np.ndarray) -> np.ndarray:
    """``[..., 3]``: yaw, pitch, roll in degrees (3-D axes with ``z``, the 2-D estimate without)."""
    p = np.asarray(points, np.float64)
    across = (p[..., [b for _, b in POSE_PAIRS], :] - p[..., [a for a, _ in POSE_PAIRS], :]).sum(-2)
    down = p[..., list(NOSE_BASE), :].mean(-2) - p[..., list(FOREHEAD), :].mean(-2)
    x2 = _unit(across[..., :2])
    roll = np.degrees(np.arctan2(x2[..., 1], x2[..., 0]))
    if p.shape[-1] >= 3:
        x = _unit(across[..., :3])
        y = down[..., :3] - (down[..., :3] * x).sum(-1, keepdims=True) * x
        y = _unit(y)
        yaw = np.degrees(np.arcsin(np.clip(x[..., 2], -1.0, 1.0)))  # z grows away from the camera
        pitch = np.degrees(np.arcsin(np.clip(-y[..., 2], -1.0, 1.0)))
        return np.stack([yaw, pitch, roll], axis=-1)
    xy = p[..., :2]
    y2 = np.stack([-x2[..., 1], x2[..., 0]], axis=-1)  # down the face, perpendicular to the eye line
    cheeks = xy[..., CHEEKS[0], :], xy[..., CHEEKS[1], :]
    half = np.maximum(np.linalg.norm(cheeks[1] - cheeks[0], axis=-1) / 2, _EPS)
    tip = xy[..., NOSE_TIP, :]
    sideways = ((tip - (cheeks[0] + cheeks[1]) / 2) * x2).sum(-1) / half
    eyes = xy[..., [i for pair in EYE_CORNERS for i in pair], :].mean(-2)
    height = np.maximum((down[..., :2] * y2).sum(-1), _EPS)
    lowered = ((tip - eyes) * y2).sum(-1) / height
    yaw = YAW_2D * sideways
    pitch = PITCH_2D[0] * lowered + PITCH_2D[1]
    return np.stack([yaw, pitch, roll], axis=-1)


def measures(points: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
    """``[..., len(FIELDS)]``: eye openness (left, right), mouth openness, yaw, pitch, roll.

    Openness comes from ``raw`` when given (unsmoothed landmarks: blinks intact), pose from
    ``points``. A collapsed mesh (the outer eye corners on one another) measures NaN.
    """
    lids = np.asarray(points if raw is None else raw, np.float64)
    eyes = eye_openness(lids)
    mouth = mouth_openness(lids)[..., None]
    out = np.concatenate([eyes, mouth, head_pose(points)], axis=-1)
    p = np.asarray(points, np.float64)
    size = np.linalg.norm(p[..., EYE_CORNERS[1][1], :2] - p[..., EYE_CORNERS[0][0], :2], axis=-1)
    return np.where((size > 1e-6)[..., None], out, np.nan)  # NaN for a collapsed mesh (no face)


def record(points: np.ndarray, raw: np.ndarray | None = None) -> dict[str, float | None]:
    """``measures`` of one face as a JSON-ready ``{field: value}`` (rounded to 4 decimals; None: not measurable)."""
    return {name: round(float(v), 4) if np.isfinite(v) else None for name, v in zip(FIELDS, measures(points, raw))}


def from_record(data: Mapping[str, Any]) -> np.ndarray:
    """A ``record`` back as a ``[len(FIELDS)]`` array (NaN for a missing or None field)."""
    return np.array([np.nan if data.get(name) is None else float(data[name]) for name in FIELDS], np.float64)
