"""Matte shaping in plate pixels and the blend modes."""
from __future__ import annotations

import numpy as np
import pytest

from facegraft.inference.render import blend
from facegraft.inference.track import mattes


def _disc(size=96, radius=30.0):
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return (np.hypot(xx - size / 2, yy - size / 2) < radius).astype(np.float32)


def test_erode_shrinks_by_pixels():
    m = _disc()
    eroded = mattes.erode_feather(m, erode=5)
    grown = mattes.erode_feather(m, erode=-5)
    row = m.shape[0] // 2
    width = lambda a: int((a[row] > 0.5).sum())  # noqa: E731
    assert width(m) - width(eroded) == 10
    assert width(grown) - width(m) == 10


def test_feather_width_in_pixels():
    m = _disc(size=200, radius=60)
    soft = mattes.erode_feather(m, feather=16)
    row = soft[100, 100:]
    ramp = int(((row > 0.02) & (row < 0.98)).sum())
    assert 26 <= ramp <= 40  # sigma = feather / 2: the 2%-98% ramp is about 2 x feather
    assert soft.max() == pytest.approx(1.0, abs=1e-4) and soft.min() >= 0.0
    assert mattes.erode_feather(m) is not m and np.array_equal(mattes.erode_feather(m), m)  # a new array


def test_alpha_returns_swap():
    rng = np.random.default_rng(0)
    plate, swap = rng.random((64, 64, 3), np.float32), rng.random((64, 64, 3), np.float32)
    np.testing.assert_array_equal(blend.face_colour(plate, swap, _disc(64, 20), "alpha"), swap)


def test_multiband_keeps_plate_light_and_swap_detail():
    size = 128
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    light = (0.2 + 0.6 * xx / size)[..., None].repeat(3, axis=2)  # a lighting gradient on the plate
    detail = (0.05 * np.sin(xx * 1.5) * np.sin(yy * 1.5))[..., None].repeat(3, axis=2).astype(np.float32)
    plate = light.astype(np.float32)
    swap = (0.5 + detail).astype(np.float32)  # flat-lit face with fine detail
    matte = mattes.erode_feather(_disc(size, 45), feather=8)
    out = blend.face_colour(plate, swap, matte, "multiband")
    inner = _disc(size, 25) > 0.5
    # low frequencies follow the plate's gradient ...
    low = lambda a: __import__("cv2").GaussianBlur(a, (0, 0), 6)  # noqa: E731
    err_plate = np.abs(low(out) - low(plate))[inner].mean()
    err_swap = np.abs(low(out) - low(swap))[inner].mean()
    assert err_plate < 0.3 * err_swap
    # ... and the fine detail is the swap's
    hi = out - low(out)
    corr = np.corrcoef(hi[inner][:, 0], detail[inner][:, 0])[0, 1]
    assert corr > 0.9


def test_unknown_mode():
    x = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="unknown blend"):
        blend.face_colour(x, x, x[..., 0], "screen")
