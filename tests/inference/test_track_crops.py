"""The crops the tracking networks see (``detect.warp_to_srgb``, ``hands.warp_srgb``): the plate's
edge repeated or black outside it, and NaN/Inf pixels kept out of the networks."""
from __future__ import annotations

import numpy as np
from tracking_support import clip_frames

from facegraft.inference.io import colour
from facegraft.inference.track import detect, hands


def test_outside_the_plate_black_or_the_edge_repeated() -> None:
    rgb = clip_frames("single_face.mp4", 1)[0]
    h, w = rgb.shape[:2]
    # a 2x shrink of the plate's left part, shifted right by 40 output px: columns 0-39 lie outside it
    matrix = np.array([[0.5, 0.0, 40.0], [0.0, 0.5, 0.0]])
    black = detect.warp_to_srgb(rgb, matrix, (120, h // 2), "ACEScg", colour.DEFAULT_CONFIG)
    edge = detect.warp_to_srgb(rgb, matrix, (120, h // 2), "ACEScg", colour.DEFAULT_CONFIG, replicate=True)
    assert not black[:, :39].any()
    assert np.allclose(edge[:, :39], edge[:, 39:40], atol=1e-6)  # every outside column is the edge column
    assert np.allclose(black[:, 42:], edge[:, 42:])  # inside, the same picture
    shown = colour.converter("ACEScg", colour.SRGB_ENCODED)(rgb[::2, 0:2].mean(1, keepdims=True))
    assert np.abs(edge[:, 39] - np.clip(shown[:, 0], 0, 1)).mean() < 0.02  # ... and it is the plate's edge
    view = hands.PlateView(rgb, (0.0, 0.0), "ACEScg")
    assert np.array_equal(hands.warp_srgb(view, matrix, 120, replicate=True), edge[:120])  # the same crop path


def test_nan_and_inf_pixels_stay_out_of_the_hand_crops() -> None:
    rgb = clip_frames("single_face.mp4", 1)[0].copy()
    rgb[100:140, 200:260] = np.nan
    rgb[150:160, 300:320] = np.inf
    rgb[170:180, 300:320] = -np.inf
    view = hands.PlateView(rgb, (0.0, 0.0), "ACEScg")
    for k in (1.0, 0.4, 0.12):  # no shrink, area shrinks
        matrix = np.array([[k, 0.0, 96 - 260 * k], [0.0, k, 96 - 150 * k]])
        picture = hands.warp_srgb(view, matrix, 192, replicate=True)
        assert np.isfinite(picture).all() and picture.min() >= 0.0 and picture.max() <= 1.0
