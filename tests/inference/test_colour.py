"""Real OCIO transforms from the built-in studio config."""
from __future__ import annotations

import numpy as np
import pytest

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour


def test_plate_to_model_round_trip_under_1e_4():
    rng = np.random.default_rng(0)
    rgb = np.concatenate([rng.uniform(0, 1, (64, 64, 3)), rng.uniform(1, 60, (64, 64, 3))]).astype(np.float32)
    log = colour.converter("ACEScg", "ACEScct")(rgb)
    back = colour.converter("ACEScct", "ACEScg")(log)
    assert np.max(np.abs(back - rgb) / np.maximum(rgb, 1.0)) < 1e-4
    # ACEScct is a log space: 18% grey sits near 0.41, and highlights stay below ~1.5.
    grey = colour.converter("ACEScg", "ACEScct")(np.full((1, 1, 3), 0.18, np.float32))
    assert abs(float(grey[0, 0, 0]) - 0.4135) < 1e-3
    assert float(log.max()) < 1.5


def test_converter_returns_a_new_array():
    rgb = np.full((2, 2, 3), 0.5, np.float32)
    out = colour.converter("ACEScg", "ACEScct")(rgb)
    assert np.all(rgb == 0.5) and not np.allclose(out, 0.5)


def test_roles_resolve_and_unknown_space_is_explained():
    assert colour.resolve_space("scene_linear") == "ACEScg"
    with pytest.raises(FaceGraftError, match="no colour space 'Kodak 2383'"):
        colour.converter("Kodak 2383", "ACEScg")


def test_display_picture_and_sanitize():
    rgb = np.array([[[0.18, 0.18, 0.18], [np.nan, np.inf, -np.inf]]], np.float32)
    clean = colour.sanitize(rgb)
    assert np.isfinite(clean).all() and clean[0, 1, 0] == 0
    shown = colour.to_display_uint8(rgb, "ACEScg")
    assert shown.dtype == np.uint8 and 100 < shown[0, 0, 0] < 130  # 18% grey encodes near 118
    toned = colour.to_display_uint8(rgb, "ACEScg", tone_map=True)
    assert toned.dtype == np.uint8
