"""Zero-phase smoothing: less jitter, no lag, ends kept, segments kept apart."""
from __future__ import annotations

import numpy as np
import pytest
from tracking_support import synthetic_landmarks

from facegraft.inference.track import align, linking, smoothing, tracker


def truth(t: np.ndarray) -> np.ndarray:
    """A face moving smoothly: a sway plus a drift (px), as (T, 2)."""
    return np.stack([300 + 40 * np.sin(2 * np.pi * t / 48) + 2.0 * t, 200 + 15 * np.cos(2 * np.pi * t / 60)], axis=1)


def best_shift(estimate: np.ndarray, reference: np.ndarray, span: int = 6) -> int:
    """The delay (frames) that best lines ``estimate`` up with ``reference``."""
    errors = {k: np.abs(estimate[span + k:len(estimate) - span + k] - reference[span:len(reference) - span]).mean()
              for k in range(-span, span + 1)}
    return min(errors, key=errors.__getitem__)


def test_jitter_drops_without_lag() -> None:
    t = np.arange(144, dtype=np.float64)
    clean = truth(t)
    noisy = clean + np.random.default_rng(7).normal(0.0, 1.5, clean.shape)
    smoothed = smoothing.smooth(noisy, 0.5)
    raw_error = np.sqrt(((noisy - clean) ** 2).mean())
    error = np.sqrt(((smoothed - clean) ** 2).mean())
    assert error < 0.7 * raw_error
    # jitter: frame-to-frame acceleration, far lower than the noise's
    assert np.abs(np.diff(smoothed, 2, axis=0)).mean() < 0.3 * np.abs(np.diff(noisy, 2, axis=0)).mean()
    assert best_shift(smoothed, clean) == 0
    # the measure does see lag: a causal exponential filter of similar strength lags behind
    causal = noisy.copy()
    for i in range(1, len(causal)):
        causal[i] = 0.7 * causal[i - 1] + 0.3 * noisy[i]
    assert best_shift(causal, clean) > 0


def test_ends_follow_the_motion() -> None:
    ramp = np.stack([np.arange(20.0) * 5, np.full(20, 3.0)], axis=1)
    assert np.allclose(smoothing.smooth(ramp, 1.0), ramp)  # a steady move is kept exactly, ends included


def test_strength_zero_is_off_and_range_is_checked() -> None:
    values = np.random.default_rng(1).normal(size=(30, 478, 3))
    assert np.array_equal(smoothing.smooth(values, 0.0), values)
    assert smoothing.smooth(values, 0.5).shape == values.shape
    with pytest.raises(ValueError):
        smoothing.smooth(values, 1.5)


def test_stronger_means_smoother() -> None:
    noisy = truth(np.arange(96.0)) + np.random.default_rng(3).normal(0.0, 1.0, (96, 2))
    jitter = [np.abs(np.diff(smoothing.smooth(noisy, s), 2, axis=0)).mean() for s in (0.2, 0.5, 1.0)]
    assert jitter[0] > jitter[1] > jitter[2]


def _observation(index: int, x: float) -> linking.Observation:
    points = synthetic_landmarks(np.array([[0.01, 0.0, -x * 0.01], [0.0, 0.01, -1.0]]))
    return linking.Observation(index=index, box=(x, 80, x + 100, 180), score=1.0, landmarks=points, track=1)


def test_shot_smoothing_splits_at_gaps_and_keeps_raw_landmarks() -> None:
    rng = np.random.default_rng(5)
    xs = [100 + 2 * i + rng.normal(0, 1.0) for i in range(30)]
    present = [i for i in range(30) if not 10 <= i < 16]  # a 6-frame gap: not bridged
    shot = [[_observation(i, xs[i])] if i in present else [] for i in range(30)]
    for i in range(20, 30):  # after the gap the face jumps far away (same track id)
        shot[i][0].landmarks = shot[i][0].landmarks + [400.0, 0.0, 0.0]
    frames = list(range(1001, 1031))
    result = tracker.assemble(shot, frames, smooth=1.0, max_gap=3)
    assert [n for n in frames if "no_face" in result.frames[n].flags] == list(range(1011, 1017))
    before_gap = result.face(1010)
    assert before_gap is not None
    assert np.array_equal(before_gap.landmarks_raw, shot[9][0].landmarks)
    # the last frame before the gap is smoothed only with its own segment: no pull toward the jump
    assert abs(before_gap.landmarks[0, 0] - before_gap.landmarks_raw[0, 0]) < 4.0
    # transforms come from the smoothed landmarks
    assert np.allclose(before_gap.transform, align.face_transform(before_gap.landmarks))
    # and smoothing did act inside segments
    moved = [np.abs(result.face(n).landmarks - result.face(n).landmarks_raw).max() for n in range(1002, 1009)]
    assert max(moved) > 0.1
