"""Offline, zero-phase smoothing of landmark trajectories over a whole shot.

A symmetric Gaussian kernel in time: every frame is averaged with as many frames after it as
before it, so the result has no lag (zero phase). Ends are padded by odd reflection about the
end value (``2*x[0] - x[k]``), which keeps a moving face moving at the ends instead of pulling
it back toward the middle of the shot. Strength ``s`` in [0, 1] sets sigma = ``MAX_SIGMA * s``
frames; 0 leaves the landmarks untouched. Segments (runs without gaps) are smoothed separately.
"""
from __future__ import annotations

import math

import numpy as np

MAX_SIGMA = 3.0  # frames, at strength 1


def sigma_for(strength: float) -> float:
    """Kernel sigma in frames for a ``--smooth`` strength."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"smoothing strength must be in [0, 1], got {strength}")
    return MAX_SIGMA * strength


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised, symmetric Gaussian kernel (radius 3 sigma)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth(values: np.ndarray, strength: float) -> np.ndarray:
    """Smooth ``values`` (``[T, ...]``, time first) with zero phase; returns a new float64 array."""
    x = np.asarray(values, dtype=np.float64)
    sigma = sigma_for(strength)
    if sigma <= 0.0 or x.shape[0] < 3:
        return x.copy()
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    flat = x.reshape(x.shape[0], -1)
    padded = np.pad(flat, ((radius, radius), (0, 0)), mode="reflect", reflect_type="odd")
    out = np.zeros_like(flat)
    for k, w in enumerate(kernel):  # explicit correlation: symmetric kernel, same as convolution
        out += w * padded[k:k + flat.shape[0]]
    return out.reshape(x.shape)
