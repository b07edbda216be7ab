"""The whole-shot tracker on real plates (EXR sequences from the sample footage) and hard cases."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from tracking_support import MemorySource, clip_frames, rotate, synthetic_landmarks

from facegraft.inference.errors import BadFrameError
from facegraft.inference.io import exr
from facegraft.inference.io.frames import open_source
from facegraft.inference.track import tracker


@pytest.fixture(scope="module")
def frame_tracker() -> tracker.FrameTracker:
    return tracker.FrameTracker(tracker.TrackerOptions(device="cpu"))


def test_a_face_on_every_frame_of_the_single_face_plate(single_face_plate: str,
                                                        frame_tracker: tracker.FrameTracker) -> None:
    shot = tracker.track_shot(open_source(single_face_plate), tracker=frame_tracker)
    assert shot.frame_numbers == list(range(1001, 1013))
    assert shot.target == 1 and len(shot.tracks) == 1
    for n in shot.frame_numbers:
        face = shot.face(n)
        assert face is not None and shot.frames[n].flags == []
        x0, y0, x1, y1 = face.box
        assert 150 < x1 - x0 < 220  # the man's face, about 180 px
        for points in (face.landmarks, face.landmarks_raw):
            assert points.shape == (478, 3)
            assert (points[:, 0] >= x0 - 2).all() and (points[:, 0] <= x1 + 2).all()
            assert (points[:, 1] >= y0 - 2).all() and (points[:, 1] <= y1 + 2).all()
        assert face.transform.shape == (2, 3)
    assert shot.plate["display_window"] == [0, 0, 640, 360] and shot.plate["colorspace"] == "ACEScg"
    assert shot.plate["first_frame"] == 1001 and shot.plate["last_frame"] == 1012


def test_strong_expressions_stay_one_track(wolfgang_plate: str, frame_tracker: tracker.FrameTracker) -> None:
    shot = tracker.track_shot(open_source(wolfgang_plate), tracker=frame_tracker, smooth=0.5)
    assert len(shot.tracks) == 1 and shot.tracks[0]["frames"] == 24
    mouth_open = []
    for n in shot.frame_numbers:
        face = shot.face(n)
        assert face is not None and "no_face" not in shot.frames[n].flags
        mouth_open.append(np.linalg.norm(face.landmarks_raw[14, :2] - face.landmarks_raw[13, :2]))
        assert np.abs(face.landmarks - face.landmarks_raw).max() < 6  # smoothing does not drag the face away
    assert max(mouth_open) > 2 * max(1.0, min(mouth_open))  # her lips part and close: they are followed


def test_two_faces_largest_and_by_id(two_face_plate: str, frame_tracker: tracker.FrameTracker) -> None:
    source = open_source(two_face_plate)
    shot = tracker.track_shot(source, tracker=frame_tracker)
    assert len(shot.tracks) == 2
    left, right = sorted(shot.tracks, key=lambda t: t["centre"][0])
    assert (left["id"], right["id"]) == (1, 2)  # ids from left to right
    assert shot.target == left["id"]  # the woman's face is the larger one
    for n in shot.frame_numbers:
        assert shot.face(n).box[2] < 640 and shot.face(n, right["id"]).box[0] > 640
    chosen = tracker.track_shot(source, face=str(right["id"]), tracker=frame_tracker)
    assert chosen.target == right["id"]
    assert all(640 < chosen.face(n).box[0] for n in chosen.frame_numbers)


def test_black_frames_are_flagged_and_tracking_resumes(frame_tracker: tracker.FrameTracker) -> None:
    frames = clip_frames("single_face.mp4", 12)
    for i in (4, 5, 6, 7):
        frames[i] = np.zeros_like(frames[i])
    frames[10] = np.zeros_like(frames[10])  # one frame: bridged
    shot = tracker.track_shot(MemorySource(frames), tracker=frame_tracker)
    no_face = [n for n in shot.frame_numbers if "no_face" in shot.frames[n].flags]
    assert no_face == [1005, 1006, 1007, 1008]
    assert shot.face(1009) is not None and shot.face(1009).track == 1  # picked up again, same id
    bridged = shot.face(1011)
    assert bridged is not None and "bridged" in bridged.flags
    assert {f.track for n in shot.frame_numbers for f in shot.frames[n].faces} == {1}


def test_nan_and_inf_pixels_in_an_exr_plate(single_face_plate: str, tmp_path: Path,
                                            frame_tracker: tracker.FrameTracker) -> None:
    source = open_source(single_face_plate, "1001-1004")
    for n in source.frames:
        image = exr.read_image(source.path(n), n)  # type: ignore[attr-defined]
        pixels = image.pixels.copy()
        pixels[150:190, 250:300, :3] = np.nan  # over the face
        pixels[:20, :, :3] = np.inf
        exr.write_image(tmp_path / f"dirty.{n}.exr", pixels, image.spec)
    before = (tmp_path / "dirty.1002.exr").read_bytes()
    shot = tracker.track_shot(open_source(str(tmp_path / "dirty.####.exr")), tracker=frame_tracker)
    for n in shot.frame_numbers:
        face = shot.face(n)
        assert face is not None and np.isfinite(face.landmarks).all() and np.isfinite(face.transform).all()
    assert (tmp_path / "dirty.1002.exr").read_bytes() == before


@pytest.mark.parametrize("degrees", [30, 60])
def test_rotated_face_is_tracked(degrees: float, frame_tracker: tracker.FrameTracker) -> None:
    frames = [rotate(f, degrees, (295, 200)) for f in clip_frames("single_face.mp4", 6)]
    shot = tracker.track_shot(MemorySource(frames), tracker=frame_tracker)
    for n in shot.frame_numbers:
        lm = shot.face(n).landmarks
        angle = math.degrees(math.atan2(lm[263, 1] - lm[33, 1], lm[263, 0] - lm[33, 0]))
        assert angle == pytest.approx(-degrees, abs=8)  # counter-clockwise on screen is negative, y down


def test_small_face_in_a_4k_frame(frame_tracker: tracker.FrameTracker) -> None:
    import cv2

    frames = []
    for f in clip_frames("single_face.mp4", 3):
        big = np.zeros((2160, 3840, 3), np.float32)
        big[1500:1680, 2900:3220] = cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA)
        frames.append(big)
    shot = tracker.track_shot(MemorySource(frames), tracker=frame_tracker)
    for n in shot.frame_numbers:
        face = shot.face(n)
        assert face is not None
        x0, y0, x1, y1 = face.box
        assert 2990 < x0 < 3060 and 3080 < x1 < 3140 and 1540 < y0 < 1570 and 1630 < y1 < 1660


def test_corrupt_frame_fails_by_name_or_is_skipped(single_face_plate: str, tmp_path: Path,
                                                   frame_tracker: tracker.FrameTracker) -> None:
    source = open_source(single_face_plate, "1001-1005")
    for n in source.frames:
        shutil.copy(source.path(n), tmp_path / f"plate.{n}.exr")  # type: ignore[attr-defined]
    (tmp_path / "plate.1003.exr").write_bytes(b"not an exr" * 100)
    pattern = str(tmp_path / "plate.####.exr")
    with pytest.raises(BadFrameError) as info:
        tracker.track_shot(open_source(pattern), tracker=frame_tracker)
    assert info.value.frame == 1003 and "plate.1003.exr" in (info.value.path or "")
    frame_tracker.options.on_error = "skip"
    try:
        shot = tracker.track_shot(open_source(pattern), tracker=frame_tracker)
    finally:
        frame_tracker.options.on_error = "fail"
    assert shot.frames[1003].flags == ["unreadable", "no_face"] and shot.frames[1003].faces == []
    assert all(shot.face(n) is not None for n in (1001, 1002, 1004, 1005))


def test_tiles_are_searched_while_nothing_is_followed_and_then_every_few_searches(
        frame_tracker: tracker.FrameTracker, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, bool]] = []
    detect = frame_tracker.detectors.detect
    index = {"now": 0}

    def spy(*args: object, tiled: bool = True, **kwargs: object) -> list:
        calls.append((index["now"], tiled))
        return detect(*args, tiled=tiled, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(frame_tracker.detectors, "detect", spy)
    monkeypatch.setattr(frame_tracker.options, "redetect", 3)
    monkeypatch.setattr(frame_tracker.options, "tiled_every", 2)
    frames = clip_frames("single_face.mp4", 13)
    frame_tracker.reset()
    for i, rgb in enumerate(frames):
        index["now"] = i
        assert len(frame_tracker.step(i, rgb, (0, 0), "ACEScg", "ocio://studio-config-latest")) == 1
    # frame 0: nothing followed yet, a tiled search; then a search every 3 frames, every 2nd one tiled
    assert calls == [(0, True), (3, False), (6, True), (9, False), (12, True)]


def test_a_weak_refined_pass_reuses_the_first_mesh() -> None:
    """A fresh detection whose refined ROI loses the face keeps the first pass's mesh: FaceMesh
    runs twice (box, refined ROI), never a third time on the box's ROI."""
    from facegraft.inference.track.detect import Detection
    from facegraft.inference.track.landmarks import LandmarkModels

    transform = np.array([[1 / 120, 0.0, -200 / 120], [0.0, 1 / 120, -150 / 120]])  # a 120 px face at (200, 150)
    mesh = synthetic_landmarks(transform)[:468]

    class Models:
        iris = None
        landmarks = LandmarkModels.landmarks
        with_iris = LandmarkModels.with_iris

        def __init__(self) -> None:
            self.calls = 0

        def mesh_points(self, rgb, roi, origin, plate_space, config):
            self.calls += 1
            return mesh.copy(), (0.9 if self.calls == 1 else 0.1)

    frame_tracker = tracker.FrameTracker.__new__(tracker.FrameTracker)
    frame_tracker.options = tracker.TrackerOptions()
    frame_tracker.models = Models()  # type: ignore[assignment]
    frame_tracker.hands = None
    frame_tracker.reset()
    keypoints = np.array([[220.0, 180.0], [260.0, 180.0], [240.0, 200.0], [240.0, 220.0], [200.0, 185.0], [280.0, 185.0]])
    det = Detection((190.0, 150.0, 290.0, 250.0), 0.8, keypoints)
    face = frame_tracker._from_detection(0, det, np.zeros((400, 500, 3), np.float32), (0.0, 0.0), "ACEScg", "")
    assert frame_tracker.models.calls == 2
    assert face is not None and face.presence == pytest.approx(0.9)
    assert np.array_equal(face.landmarks[:468], mesh)


def test_without_hands_the_track_says_so(single_face_plate: str) -> None:
    no_hands = tracker.FrameTracker(tracker.TrackerOptions(device="cpu", hands=False))
    assert no_hands.hands is None
    shot = tracker.track_shot(open_source(single_face_plate, "1001-1003"), tracker=no_hands)
    assert not shot.hands_searched and shot.params["hands"] is False and "hand_matte" not in shot.params
    assert all(shot.frames[n].hands == [] and shot.face(n).occlusion == 0.0 for n in shot.frame_numbers)


def test_hand_tracks_are_bridged_smoothed_and_flag_the_faces_they_cover() -> None:
    """``add_hands``: a one-frame gap in a hand track is bridged, each run smoothed on its own, and a
    face the smoothed hand covers gets its fraction and the flag; one the hand misses does not."""
    from facegraft.inference.track import hands, trackfile
    from facegraft.inference.track.align import face_transform

    rot = np.eye(2) / 200.0
    transform = np.hstack([rot, (np.array([0.5, 0.5]) - rot @ np.array([320.0, 180.0]))[:, None]])
    face_lm = synthetic_landmarks(transform)
    rng = np.random.default_rng(0)
    base = rng.uniform(-60, 60, (21, 3)) + [320.0, 200.0, 0.0]  # a hand-sized cloud over the face
    frames = list(range(1001, 1011))
    per_index: list[list[hands.Hand]] = [[] for _ in frames]
    for i in (0, 1, 2, 3, 5, 6):  # index 4 missing: bridged
        jitter = rng.normal(0, 2.0, (21, 3))
        per_index[i].append(hands.Hand(base + [0.0, 3.0 * i, 0.0] + jitter, 0.9, 0.8, track=1))
    per_index[9].append(hands.Hand(base + [2000.0, 0.0, 0.0], 0.9, 0.2, track=2))  # far from the face
    records = {}
    for n in frames:
        face = trackfile.Face(track=1, box=(0.0, 0.0, 1.0, 1.0), score=1.0, landmarks_raw=face_lm, landmarks=face_lm,
                              transform=face_transform(face_lm))
        records[n] = trackfile.FrameTrack(n, [face])
    tracker.add_hands(records, frames, per_index, smooth=0.5)
    assert [len(records[n].hands) for n in frames] == [1, 1, 1, 1, 1, 1, 1, 0, 0, 1]
    bridged = records[1005].hands[0]
    assert np.allclose(bridged.landmarks_raw, (per_index[3][0].landmarks + per_index[5][0].landmarks) / 2)
    raw = np.stack([records[n].hands[0].landmarks_raw for n in frames[:7]])
    smooth = np.stack([records[n].hands[0].landmarks for n in frames[:7]])
    assert np.abs(np.diff(smooth, 2, axis=0)).mean() < 0.5 * np.abs(np.diff(raw, 2, axis=0)).mean()
    assert np.array_equal(records[1010].hands[0].landmarks, records[1010].hands[0].landmarks_raw)  # a run of one
    for n in frames[:7]:
        face = records[n].faces[0]
        assert face.occlusion > hands.OCCLUDED_FRACTION and "occluded" in face.flags
    for n in frames[7:]:
        assert records[n].faces[0].occlusion == 0.0 and records[n].faces[0].flags == []


def test_crops_run_on_the_tracking_thread_and_the_hand_search_is_recorded(single_face_plate: str,
                                                                         frame_tracker: tracker.FrameTracker) -> None:
    """OpenCV's pool is set to one thread while a shot is tracked (set back after); the track file
    records the hand-search schedule and what it did."""
    import cv2

    from facegraft.inference.track import hands

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        source = open_source(single_face_plate, "1001-1004")
        read, seen = source.read, []

        def reading(frame: int):  # noqa: ANN202
            seen.append(cv2.getNumThreads())
            return read(frame)

        source.read = reading  # type: ignore[method-assign]
        shot = tracker.track_shot(source, tracker=frame_tracker)
        assert seen and set(seen) == {1} and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
    search = shot.params["hand_search"]
    assert search["search_every"] == hands.SEARCH_EVERY and search["idle_every"] == hands.IDLE_EVERY
    assert search["searches"]["start"] == 1 and search["track_retries"] == [list(r) for r in hands.TRACK_RETRIES]
