"""Colour match the swapped face to the plate's face, inside the matte, in model space.

Every statistic is weighted by the matte, so hair, background and holdouts do not pull the
face's colour. Modes:

* ``none``: the model's output as is.
* ``rct``: Reinhard colour transfer: per-axis mean and deviation matched in a decorrelated
  opponent space (achromatic, yellow-blue, red-green). Model space is a log encoding, so this
  is Reinhard's l-alpha-beta up to the choice of primaries.
* ``lct``: linear colour transfer: the affine map that takes the swap's colour distribution
  (mean and covariance) onto the plate face's with the least change (Monge-Kantorovich).
* ``hist``: per-channel histogram matching (weighted quantiles).
"""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np

_EPS = 1e-6
_OPPONENT = (np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)])
             @ np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -2.0], [1.0, -1.0, 0.0]]))  # orthonormal


# Per-pixel products go through OpenCV, not ``@``: on a crop's pixels ``@`` calls numpy's threaded
# BLAS, whose idle thread then spins for about 0.1 s of a core, a frame's worth of EXR encoding
# (``einsum`` avoids it too, but is 4-15x slower than OpenCV here).
def _transform(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Every row of ``x (P, 3)`` times ``m.T``: ``x @ m.T``."""
    out: np.ndarray = cv2.transform(np.ascontiguousarray(x, np.float64).reshape(-1, 1, 3), np.asarray(m, np.float64))
    return out.reshape(-1, 3)


def _weighted_stats(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(3,)`` and covariance ``(3, 3)`` of ``x (P, 3)`` under weights ``w (P,)``."""
    total = float(w.sum())
    mean = (x * w[:, None]).sum(axis=0) / total
    d = x - mean
    cov: np.ndarray = cv2.mulTransposed(np.ascontiguousarray(d * np.sqrt(w)[:, None]), True) / total  # dᵀ·diag(w)·d
    return mean, cov


def _sqrtm(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return np.asarray((vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T)


def _inv_sqrtm(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return np.asarray((vecs / np.sqrt(np.clip(vals, _EPS, None))) @ vecs.T)


def _rct(x: np.ndarray, ref: np.ndarray, w: np.ndarray, out: np.ndarray) -> np.ndarray:
    xo, ro, oo = (_transform(v, _OPPONENT) for v in (x, ref, out))
    mx, cx = _weighted_stats(xo, w)
    mr, cr = _weighted_stats(ro, w)
    scale = np.sqrt(np.diag(cr) + _EPS) / np.sqrt(np.diag(cx) + _EPS)
    return _transform((oo - mx) * scale + mr, _OPPONENT.T)


def _lct(x: np.ndarray, ref: np.ndarray, w: np.ndarray, out: np.ndarray) -> np.ndarray:
    mx, cx = _weighted_stats(x, w)
    mr, cr = _weighted_stats(ref, w)
    cx = cx + np.eye(3) * _EPS
    root = _sqrtm(cx)
    inv_root = _inv_sqrtm(cx)
    a = inv_root @ _sqrtm(root @ cr @ root) @ inv_root
    return _transform(out - mx, a) + mr


def _weighted_quantiles(values: np.ndarray, w: np.ndarray, qs: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    v, cw = values[order], np.cumsum(w[order])
    cdf = (cw - 0.5 * w[order]) / cw[-1]
    return np.interp(qs, cdf, v)


def _hist(x: np.ndarray, ref: np.ndarray, w: np.ndarray, out: np.ndarray) -> np.ndarray:
    qs = np.linspace(0.0, 1.0, 257)
    result = np.empty_like(out)
    for c in range(3):
        src_q = _weighted_quantiles(x[:, c], w, qs)
        ref_q = _weighted_quantiles(ref[:, c], w, qs)
        src_q = np.maximum.accumulate(src_q + np.arange(len(qs)) * 1e-9)  # strictly increasing for interp
        result[:, c] = np.interp(out[:, c], src_q, ref_q)
    return result


# The colour-match modes, name -> method (None: the swap as is); DEFAULT is what a render uses unless told.
METHODS: dict[str, Optional[Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]]] = {
    "none": None, "rct": _rct, "lct": _lct, "hist": _hist,
}
MODES = tuple(METHODS)
DEFAULT = "rct"


def match(swap: np.ndarray, reference: np.ndarray, matte: np.ndarray, mode: str = "none") -> np.ndarray:
    """``swap`` ``[H, W, 3]`` recoloured towards ``reference`` (the plate's crop), stats inside ``matte``.

    Returns a new float32 array; ``swap`` unchanged when the mode is ``none`` or the matte is
    (almost) empty.
    """
    if mode not in MODES:
        raise ValueError(f"unknown colour match '{mode}' (one of {', '.join(MODES)})")
    swap = np.asarray(swap, dtype=np.float32)
    method = METHODS[mode]
    if method is None:
        return swap.copy()
    w = np.asarray(matte, dtype=np.float64).reshape(-1)
    if float(w.sum()) < 16.0:
        return swap.copy()
    keep = w > 1e-3
    x = swap.reshape(-1, 3).astype(np.float64)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1, 3)
    out = method(x[keep], ref[keep], w[keep], x)
    return out.reshape(swap.shape).astype(np.float32)
