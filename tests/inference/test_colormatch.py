"""Colour match: statistics inside the matte only, each mode does what it names."""
from __future__ import annotations

import numpy as np
import pytest

from facegraft.inference.render import colormatch


def _face(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.4, 0.05, (size, size, 3)).astype(np.float32)
    base[..., 0] += np.linspace(0, 0.1, size)[None, :]
    return base


def _matte(size: int = 48) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[8:40, 8:40] = 1.0
    return m


def _stats(x, m):
    sel = x[m > 0.5]
    return sel.mean(axis=0), np.cov(sel.T)


@pytest.mark.parametrize("mode", ["rct", "lct", "hist"])
def test_mean_matches_inside_matte(mode):
    m = _matte()
    ref = _face(0)
    swap = _face(1) * np.float32(1.3) + np.array([0.1, -0.05, 0.2], np.float32)
    out = colormatch.match(swap, ref, m, mode)
    mean_out, cov_out = _stats(out, m)
    mean_ref, cov_ref = _stats(ref, m)
    np.testing.assert_allclose(mean_out, mean_ref, atol=5e-3)
    np.testing.assert_allclose(np.sqrt(np.diag(cov_out)), np.sqrt(np.diag(cov_ref)), rtol=0.08)
    assert out.dtype == np.float32 and out.shape == swap.shape


def test_lct_matches_covariance():
    m = _matte()
    ref = _face(0)
    mix = np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]], np.float32)
    swap = _face(3) @ mix.T
    out = colormatch.match(swap, ref, m, "lct")
    np.testing.assert_allclose(_stats(out, m)[1], _stats(ref, m)[1], atol=2e-4)


def test_outside_matte_is_ignored():
    """Wild values outside the matte (background, holdout) do not change the match."""
    m = _matte()
    ref, swap = _face(0), _face(1) + 0.2
    ref_wild = ref.copy()
    ref_wild[m < 0.5] = 50.0
    for mode in ("rct", "lct", "hist"):
        np.testing.assert_allclose(colormatch.match(swap, ref, m, mode), colormatch.match(swap, ref_wild, m, mode),
                                   atol=1e-6)


def test_none_and_empty_matte_leave_swap():
    swap = _face(1)
    np.testing.assert_array_equal(colormatch.match(swap, _face(0), _matte(), "none"), swap)
    np.testing.assert_array_equal(colormatch.match(swap, _face(0), np.zeros((48, 48)), "rct"), swap)
    with pytest.raises(ValueError, match="unknown colour match"):
        colormatch.match(swap, swap, _matte(), "grade")
