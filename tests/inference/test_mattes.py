"""Mattes from the mesh: hull with forehead, regions, erode/feather."""
from __future__ import annotations

import numpy as np
from tracking_support import synthetic_landmarks

from facegraft.inference.track import align, mattes


def _landmarks(scale=150.0) -> np.ndarray:
    rot = np.eye(2) / scale
    transform = np.hstack([rot, (np.array([0.5, 0.5]) - rot @ [200.0, 200.0])[:, None]])
    return synthetic_landmarks(transform)


def test_face_matte_covers_the_face_and_forehead():
    lm = _landmarks()
    plain = mattes.face_matte(lm, (400, 400), forehead=0.0)
    raised = mattes.face_matte(lm, (400, 400), forehead=0.3)
    nose = lm[1, :2].astype(int)
    assert plain[nose[1], nose[0]] == 1.0
    assert raised.sum() > plain.sum() * 1.1
    top = lm[10, :2]
    above = (int(top[0]), int(top[1] - 15))
    assert plain[above[1], above[0]] == 0.0 and raised[above[1], above[0]] == 1.0
    assert 0 < plain.mean() < 0.5


def test_regions_sit_inside_the_face():
    lm = _landmarks()
    face = mattes.face_matte(lm, (400, 400))
    for name, matte in mattes.region_mattes(lm, (400, 400)).items():
        assert matte.sum() > 5, name
        assert (matte * (1 - face)).sum() < 0.02 * matte.sum(), name


def test_crop_mattes_match_plate_mattes_warped():
    lm = _landmarks()
    transform = align.face_transform(lm)
    crop = mattes.crop_mattes(lm, transform, 128, "whole_face")
    assert set(crop) >= {"face", "eyes", "mouth", "lips", "left_eye", "right_eye"}
    warped = align.crop(mattes.face_matte(lm, (400, 400))[..., None], transform, 128, interpolation="linear")[..., 0]
    assert np.abs(warped - crop["face"]).mean() < 0.02


def test_erode_and_feather():
    square = np.zeros((100, 100), np.float32)
    square[30:70, 30:70] = 1
    eroded = mattes.erode_feather(square, erode=5)
    assert eroded[34, 50] == 0 and eroded[36, 50] == 1
    grown = mattes.erode_feather(square, erode=-5)
    assert grown[26, 50] == 1
    soft = mattes.erode_feather(square, feather=8)
    assert 0.3 < soft[30, 50] < 0.7 and soft[50, 50] > 0.99


def test_eye_mattes_follow_a_blink_on_real_footage():
    """The eye regions are drawn from the lid points, which come from the iris model's eye contour:
    on a frame where the woman's eyes are shut they shrink to a sliver."""
    from tracking_support import clip_frames

    from facegraft.inference.track import detect, landmarks

    models = landmarks.LandmarkModels(device="cpu", threads=1)
    detectors = detect.Detectors(device="cpu", threads=1)
    every_tenth = clip_frames("WolfgangLanger_Pexels.mp4", 47, step=10)
    area = {}
    for name, index in (("shut", 50), ("open", 300)):  # 0-based frames of the clip
        rgb = every_tenth[index // 10]
        first = models.landmarks(rgb, landmarks.roi_from_detection(detectors.detect(rgb, plate_space="ACEScg")[0]),
                                 (0, 0), "ACEScg")
        points = models.landmarks(rgb, landmarks.roi_from_landmarks(first.points), (0, 0), "ACEScg").points
        regions = mattes.region_mattes(points, rgb.shape[:2], ("left_eye", "right_eye"))
        widths = np.array([np.linalg.norm(points[a, :2] - points[b, :2]) for a, b in ((33, 133), (362, 263))])
        area[name] = np.array([regions["left_eye"].sum(), regions["right_eye"].sum()]) / widths**2
    assert (area["shut"] < 0.5 * area["open"]).all(), area
