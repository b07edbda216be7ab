"""Hands: the palm/landmark geometry, the hand matte against points marked on the sample clip, the
prepared models, and hands found and flagged by the tracker on the woman's clip."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from facegraft.inference import assets
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.frames import open_source
from facegraft.inference.track import align, hands, tracker

POINTS = json.loads((Path(__file__).with_name("data") / "hand_points.json").read_text())["frames"]
CLIP = "WolfgangLanger_Pexels.mp4"


def test_palm_anchors_layout() -> None:
    a = hands.palm_anchors()
    assert a.shape == (2016, 2)
    # stride 8: 24x24 cells, 2 anchors each; stride 16 (3 layers): 12x12 cells, 6 anchors each
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [0.5 / 24, 0.5 / 24])
    assert np.allclose(a[1152], [0.5 / 12, 0.5 / 12]) and np.allclose(a[1152:1158], a[1152])
    assert np.allclose(a[-1], [11.5 / 12, 11.5 / 12])


def test_palm_region_points_the_fingers_up() -> None:
    # wrist straight below the middle knuckle: no rotation; the region moves half a box up, 2.6x
    keypoints = np.array([[120, 140], [0, 0], [120, 100]] + [[0, 0]] * 4, float)
    r = hands.Palm(np.array([100, 100, 140, 140.0]), 0.9, keypoints).hand_rect()
    assert r.rotation == pytest.approx(0.0)
    assert (r.cx, r.cy, r.width, r.height) == pytest.approx((120, 100, 104, 104))
    # a hand pointing right: rotated 90 degrees, and the shift goes right
    keypoints = np.array([[100, 120], [0, 0], [140, 120]] + [[0, 0]] * 4, float)
    r = hands.Palm(np.array([100, 100, 140, 140.0]), 0.9, keypoints).hand_rect()
    assert r.rotation == pytest.approx(math.pi / 2)
    assert (r.cx, r.cy) == pytest.approx((140, 120))


def test_crop_matrix_maps_corners_and_up() -> None:
    r = hands.Rect(300, 200, 120, 120, math.radians(30))
    m = r.to_crop(224)
    assert align.apply(m, r.corners()) == pytest.approx(np.array([[0, 0], [224, 0], [224, 224], [0, 224]]), abs=1e-9)
    up = np.array([[300 + 50 * math.sin(r.rotation), 200 - 50 * math.cos(r.rotation)]])  # "up" the hand
    assert align.apply(m, up)[0] == pytest.approx([112, 112 - 50 * 224 / 120])


def test_landmarks_rect_of_an_upright_hand() -> None:
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(80, 120, 21), rng.uniform(50, 150, 21)])
    pts[0] = (100, 150)  # wrist at the bottom
    pts[6] = pts[10] = pts[14] = (100, 80)  # middle joints straight above
    r = hands.landmarks_rect(pts)
    assert r.rotation == pytest.approx(0.0)
    assert (r.width, r.height) == pytest.approx(tuple(np.ptp(pts, axis=0)))


def test_face_box_sits_where_the_face_is() -> None:
    lm = _template_face(scale=200.0, centre=(320.0, 180.0))
    x0, y0, x1, y1 = hands.face_box(align.face_transform(lm))
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert 0.7 < (x1 - x0) / np.ptp(lm[:468, 0]) < 1.3
    eyes = lm[list(align.EYE_LEFT) + list(align.EYE_RIGHT), :2]
    assert (eyes[:, 0] > x0).all() and (eyes[:, 0] < x1).all() and (eyes[:, 1] > y0).all() and (eyes[:, 1] < y1).all()


@pytest.mark.parametrize("frame", sorted(POINTS))
def test_hand_matte_covers_the_marked_hand_and_not_the_face_beside_it(frame: str) -> None:
    """The margins: every point marked just inside the hand is in the matte (>= 0.5), the eye,
    nostril and lip points marked next to it are out, except a nostril touching a fingertip."""
    data = POINTS[frame]
    matte = hands.hands_matte([np.asarray(h) for h in data["hands"]], (360, 640))
    inside = [float(matte[int(y), int(x)]) for x, y in data["hand"]]
    outside = [float(matte[int(y), int(x)]) for x, y in data["not_hand"]]
    assert min(inside) >= 0.5, inside
    expected_covered = {"139": 1, "207": 1}.get(frame, 0)  # a nostril touching a fingertip
    assert sum(v >= 0.5 for v in outside) == expected_covered, outside


def test_the_margins_are_the_smallest_that_cover_the_marked_hands() -> None:
    """Three quarters of the finger radius misses marked hand points; half as much again covers
    marked eyes, nostrils and lips."""
    def counts(finger_radius: float) -> tuple[int, int]:
        missed = covered = 0
        for data in POINTS.values():
            matte = np.zeros((360, 640), np.float32)
            for h in data["hands"]:
                np.maximum(matte, hands.hand_matte(np.asarray(h), (360, 640), finger_radius=finger_radius), out=matte)
            missed += sum(matte[int(y), int(x)] < 0.5 for x, y in data["hand"])
            covered += sum(matte[int(y), int(x)] >= 0.5 for x, y in data["not_hand"])
        return missed, covered

    assert counts(hands.FINGER_RADIUS) == (0, 2)
    assert counts(0.75 * hands.FINGER_RADIUS)[0] >= 2
    assert counts(1.5 * hands.FINGER_RADIUS)[1] >= 4


def test_hand_matte_is_soft_and_offset_aware() -> None:
    points = np.asarray(POINTS["207"]["hands"][0])
    whole = hands.hands_matte([points], (360, 640))
    part = hands.hands_matte([points], (100, 120), offset=(330.0, 200.0))
    assert np.allclose(part, whole[200:300, 330:450], atol=1e-3)  # the hand goes on past the part's edges
    values = np.unique(np.round(whole, 3))
    assert len(values) > 20 and whole.max() == pytest.approx(1.0) and whole.min() == 0.0
    assert hands.hands_matte([points], (50, 50), offset=(1000.0, 1000.0)).max() == 0.0  # far away: empty


def test_face_occlusion_fraction() -> None:
    lm = _template_face(scale=200.0, centre=(320.0, 180.0))
    transform = align.face_transform(lm)
    hand = np.asarray(POINTS["207"]["hands"][0])
    assert hands.face_occlusion(lm, transform, []) == 0.0
    away = hand + np.array([1000.0, 0.0, 0.0])
    assert hands.face_occlusion(lm, transform, [away]) == 0.0
    centred = hand[:, :2] - hand[:, :2].mean(0) + lm[1, :2]  # the hand over the nose
    covered = hands.face_occlusion(lm, transform, [centred])
    assert 0.2 < covered < 0.9
    assert hands.face_occlusion(lm, transform, [centred, centred + [60.0, 0.0]]) > covered


def test_prepared_models_take_and_give_what_the_code_expects() -> None:
    palm = hands.PalmDetector("cpu", 1)
    lm = hands.HandLandmarker("cpu", 1)
    assert [o.shape for o in palm.model.session.get_outputs()] == [[1, 2016, 18], [1, 2016, 1]]
    view = hands.PlateView(np.zeros((360, 640, 3), np.float32))
    assert palm.detect(view, (0, 0, 640, 360)) == []
    hand = lm.run(view, hands.Rect(320, 180, 200, 200))
    assert hand.landmarks.shape == (21, 3) and hand.presence < 0.5
    assert assets.model_path("palm_detection_full").with_suffix(".source-sha256").read_text() == \
        assets.ASSETS["palm_detection_full.tflite"].sha256


def test_a_model_that_cannot_run_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    lm = hands.HandLandmarker("cpu", 1)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bad input")

    monkeypatch.setattr(lm.model, "session", type("S", (), {"run": staticmethod(broken)})())
    with pytest.raises(FaceGraftError, match="hand model failed to run") as info:
        lm.run(hands.PlateView(np.zeros((64, 64, 3), np.float32)), hands.Rect(32, 32, 40, 40))
    assert "hand_landmark_full.onnx" in str(info.value)


def test_missing_hand_models_stop_tracking_with_a_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEGRAFT_HOME", str(tmp_path))
    with pytest.raises(FaceGraftError, match="has not been prepared") as info:
        hands.HandFinder("cpu", 1)
    assert "facegraft setup" in str(info.value)


@pytest.fixture(scope="module")
def hand_shot() -> object:
    """Frames 100-111 of the woman's clip (her hand over her face from frame 59 to 230), tracked."""
    source = open_source(str(assets.footage_path(CLIP)), "100-111")
    return tracker.track_shot(source, tracker=tracker.FrameTracker(tracker.TrackerOptions(device="cpu")))


def test_the_tracker_finds_her_hand_and_flags_her_face(hand_shot) -> None:
    assert hand_shot.hands_searched and hand_shot.params["hand_matte"]["finger_radius"] == hands.FINGER_RADIUS
    for n in hand_shot.frame_numbers:
        face, record = hand_shot.face(n), hand_shot.frames[n]
        assert len(record.hands) == 1 and record.hands[0].landmarks.shape == (21, 3)
        assert "occluded" in face.flags and 0.15 < face.occlusion < 0.7
    assert {h.track for n in hand_shot.frame_numbers for h in hand_shot.frames[n].hands} == {1}  # one hand track
    # smoothing: zero phase, close to the raw landmarks, and steadier (the wrist is out of frame
    # here: the model guesses it, and the guess wanders; the matte's size leaves it out)
    raw = np.stack([hand_shot.frames[n].hands[0].landmarks_raw[1:] for n in hand_shot.frame_numbers])
    smooth = np.stack([hand_shot.frames[n].hands[0].landmarks[1:] for n in hand_shot.frame_numbers])
    size = np.median([hands.hand_size(h.landmarks) for n in hand_shot.frame_numbers for h in hand_shot.frames[n].hands])
    assert np.abs(smooth - raw)[..., :2].max() < 0.1 * size
    assert np.abs(np.diff(smooth[..., :2], 2, axis=0)).mean() < np.abs(np.diff(raw[..., :2], 2, axis=0)).mean()
    # the live landmarks of frame 105 cover the points marked on it
    matte = hands.hands_matte([h.landmarks for h in hand_shot.frames[105].hands], (360, 640))
    assert min(matte[int(y), int(x)] for x, y in POINTS["105"]["hand"]) >= 0.5


def test_no_hands_where_there_are_none() -> None:
    source = open_source(str(assets.footage_path(CLIP)), "300-305")
    shot = tracker.track_shot(source, tracker=tracker.FrameTracker(tracker.TrackerOptions(device="cpu")))
    assert shot.hands_searched
    for n in shot.frame_numbers:
        assert shot.frames[n].hands == [] and shot.face(n).occlusion == 0.0 and "occluded" not in shot.face(n).flags


def _template_face(scale: float, centre: tuple[float, float]) -> np.ndarray:
    from tracking_support import synthetic_landmarks

    rot = np.eye(2) / scale
    transform = np.hstack([rot, (np.array([0.5, 0.5]) - rot @ np.asarray(centre))[:, None]])
    return synthetic_landmarks(transform)


def test_a_hand_model_failing_on_a_frame_stops_tracking_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    frame_tracker = tracker.FrameTracker(tracker.TrackerOptions(device="cpu"))
    assert frame_tracker.hands is not None

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(frame_tracker.hands.palms.model, "session", type("S", (), {"run": staticmethod(broken)})())
    source = open_source(str(assets.footage_path(CLIP)), "100-101")
    with pytest.raises(FaceGraftError, match="hand model failed to run: out of memory") as info:
        tracker.track_shot(source, tracker=frame_tracker)
    assert info.value.frame == 100 and "palm_detection_full.onnx" in str(info.value.path)
