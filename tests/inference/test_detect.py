"""BlazeFace detection through onnxruntime on real sample frames."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from tracking_support import clip_frames

from facegraft.inference.track import detect


@pytest.fixture(scope="module")
def detectors() -> detect.Detectors:
    return detect.Detectors(device="cpu", threads=1)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return clip_frames("single_face.mp4", 1)[0]


def test_anchor_layouts_match_mediapipe() -> None:
    short = detect.ssd_anchors(detect.SHORT_RANGE)
    full = detect.ssd_anchors(detect.FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # short range: 16x16 grid with 2 anchors per cell, then 8x8 with 6 per cell
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8]) and np.allclose(short[512:518], short[512])
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])


@pytest.mark.parametrize("variant", ["short", "full"])
def test_one_face_found_on_the_sample_frame(frame: np.ndarray, variant: str) -> None:
    detector = detect.FaceDetector(variant, device="cpu", threads=1)
    found = detector.detect_region(frame, (0, 0, 640, 360), "ACEScg")
    assert len(found) == 1
    face = found[0]
    assert face.score > 0.9
    x0, y0, x1, y1 = face.box
    # the man's face sits in the middle of the frame, about 180 px tall
    assert 190 < x0 < 230 and 360 < x1 < 400 and 95 < y0 < 130 and 280 < y1 < 310
    # keypoint 0 is the eye on the image left, 1 the other eye, both at eye height
    (ex0, ey0), (ex1, ey1) = face.keypoints[0], face.keypoints[1]
    assert 250 < ex0 < 272 and 320 < ex1 < 342 and 155 < ey0 < 185 and 155 < ey1 < 185
    assert x0 < face.keypoints[2, 0] < x1 and ey0 < face.keypoints[2, 1] < y1  # nose inside, below the eyes


def test_detection_in_plate_coordinates_follows_the_data_window(detectors: detect.Detectors, frame: np.ndarray) -> None:
    base = detectors.detect(frame, plate_space="ACEScg")[0]
    shifted = detectors.detect(frame, origin=(100, -20), plate_space="ACEScg")[0]
    assert np.allclose(np.array(shifted.box) - np.array(base.box), [100, -20, 100, -20], atol=1e-6)


def test_black_frame_has_no_face(detectors: detect.Detectors, frame: np.ndarray) -> None:
    assert detectors.detect(np.zeros_like(frame), plate_space="ACEScg") == []


def test_nan_and_inf_pixels_do_not_break_detection(detectors: detect.Detectors, frame: np.ndarray) -> None:
    dirty = frame.copy()
    dirty[:40] = np.nan
    dirty[300:, :100] = np.inf
    dirty[200:204, 100:300] = -np.inf
    before = dirty.copy()
    found = detectors.detect(dirty, plate_space="ACEScg")
    assert len(found) == 1 and found[0].score > 0.9 and all(np.isfinite(found[0].box))
    assert np.array_equal(dirty, before, equal_nan=True)  # the plate is never modified


def test_small_face_in_a_4k_frame_is_found_by_tiles(detectors: detect.Detectors, frame: np.ndarray) -> None:
    big = np.zeros((2160, 3840, 3), np.float32)
    small = cv2.resize(frame, (320, 180), interpolation=cv2.INTER_AREA)  # the face is ~85 px tall
    big[1700:1880, 3000:3320] = small
    assert detectors.detect(big, plate_space="ACEScg", tiled=False) == []  # too small for the whole-frame pass
    found = detectors.detect(big, plate_space="ACEScg", tiled=True)
    assert len(found) == 1
    cx, cy = found[0].centre
    assert 3080 < cx < 3220 and 1740 < cy < 1840


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float64)
    scores = np.array([0.9, 0.6, 0.8])
    kps = np.zeros((3, 6, 2))
    kept = detect.weighted_nms(boxes, scores, kps, 0.3)
    assert len(kept) == 2
    box, score, _ = kept[0]
    assert score == 0.9 and np.allclose(box, [0.4, 0.4, 10.4, 10.4])  # score-weighted mean
    assert np.allclose(kept[1][0], boxes[2])


def test_tiles_cover_the_frame() -> None:
    regions = detect.tiles(3840, 2160, 768)
    covered = np.zeros((2160, 3840), bool)
    for x0, y0, x1, y1 in regions:
        covered[int(y0):int(y1), int(x0):int(x1)] = True
    assert covered.all()


@pytest.mark.parametrize("shrink", [1.3, 2.5, 4.7, 10.2, 17.0])
def test_downscaling_warp_keeps_the_geometry(shrink: float) -> None:
    """Ramps in x and y warped at any scale (prefiltered or not) land where the matrix says."""
    from facegraft.inference.io import colour

    h, w = 1152, 2048

    def ramps(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # red: x, green: y; in gamut, nothing clips
        return np.stack([0.3 + 0.1 * x / w, 0.3 + 0.1 * y / h, np.full_like(x, 0.3)], axis=-1).astype(np.float32)

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5  # pixel centres, continuous coordinates
    angle = math.radians(20)
    k = 1.0 / shrink
    matrix = np.array([[k * math.cos(angle), k * math.sin(angle), -300 * k],
                       [-k * math.sin(angle), k * math.cos(angle), -100 * k]])
    out = detect.warp_to_srgb(ramps(xs, ys), matrix, (64, 64), "ACEScg", colour.DEFAULT_CONFIG)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    oy, ox = np.mgrid[0:64, 0:64] + 0.5
    px = inverse[0, 0] * ox + inverse[0, 1] * oy + inverse[0, 2]
    py = inverse[1, 0] * ox + inverse[1, 1] * oy + inverse[1, 2]
    inside = (px > 2 * shrink + 2) & (px < w - 2 * shrink - 2) & (py > 2 * shrink + 2) & (py < h - 2 * shrink - 2)
    assert inside.sum() > 1000
    # what the output should be, and how it changes per plate pixel in x and y: solve for the offset
    to_srgb = colour.converter("ACEScg", colour.SRGB_ENCODED)
    expected = to_srgb(ramps(px, py))[..., :2]
    jacobian = np.stack([to_srgb(ramps(px + 1, py))[..., :2] - expected,
                         to_srgb(ramps(px, py + 1))[..., :2] - expected], axis=-1)
    offset = np.linalg.solve(jacobian[inside].astype(np.float64), (out[..., :2] - expected)[inside, :, None].astype(np.float64))
    # no shift from the prefilter's row sampling or the region it reads, within a twentieth of a plate pixel
    assert np.abs(offset.mean(axis=0)).max() < 0.05
    assert np.abs(offset).max() < 0.5


@pytest.mark.parametrize("shrink", [0.5, 1.3, 4.7, 10.2])
def test_channel_planar_frames_warp_like_interleaved_ones(frame: np.ndarray, shrink: float) -> None:
    """A frame laid out channel by channel (as an EXR read can hand it out) gives the same pixels."""
    from facegraft.inference.io import colour

    big = cv2.resize(frame, (2048, 1152), interpolation=cv2.INTER_LINEAR)
    planar = np.moveaxis(np.ascontiguousarray(np.moveaxis(big, -1, 0)), 0, -1)
    assert planar.strides[-1] != planar.itemsize and np.array_equal(planar, big)
    k = 1.0 / shrink
    matrix = np.array([[k, 0.0, -700 * k], [0.0, k, -300 * k]])
    a = detect.warp_to_srgb(big, matrix, (96, 96), "ACEScg", colour.DEFAULT_CONFIG)
    b = detect.warp_to_srgb(planar, matrix, (96, 96), "ACEScg", colour.DEFAULT_CONFIG)
    assert a.max() > 0.1 and np.allclose(a, b, atol=1e-6)
