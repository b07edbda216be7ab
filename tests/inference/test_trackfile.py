"""The shot track file: round trip, versioning, clear refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
from tracking_support import synthetic_landmarks

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.track import align, trackfile


def _shot() -> trackfile.ShotTrack:
    frames = {}
    for n in (1001, 1002, 1003):
        rot = np.eye(2) / (100.0 + n - 1001)
        transform = np.hstack([rot, (np.array([0.5, 0.5]) - rot @ [320.0, 180.0])[:, None]])
        lm = synthetic_landmarks(transform)
        face = trackfile.Face(track=0, box=(250.0, 110.0, 390.0, 250.0), score=0.97, landmarks_raw=lm + 0.3,
                              landmarks=lm, transform=align.face_transform(lm), flags=["bridged"] if n == 1002 else [])
        frames[n] = trackfile.FrameTrack(n, [face])
    frames[1004] = trackfile.FrameTrack(1004, [], ["no_face"])
    plate = {"pattern": "/plates/sh010.####.exr", "first": 1001, "last": 1004, "display_window": [0, 0, 640, 360],
             "data_window": [0, 0, 640, 360], "pixel_aspect": 1.0, "colorspace": "ACEScg"}
    return trackfile.ShotTrack(plate=plate, params={"smooth": 0.5, "face": "largest"}, target=0,
                               tracks=[{"id": 0, "first": 1001, "last": 1003}], frames=frames)


def test_round_trip(tmp_path):
    shot = _shot()
    path = tmp_path / "sh010.fgtrack.json"
    trackfile.save_track(shot, path)
    back = trackfile.load_track(path)
    assert back.frame_numbers == [1001, 1002, 1003, 1004]
    assert back.face(1004) is None and back.frames[1004].flags == ["no_face"]
    face = back.face(1002)
    assert face is not None and face.flags == ["bridged"]
    assert np.allclose(face.landmarks, shot.frames[1002].faces[0].landmarks, atol=1e-3)
    assert np.array_equal(face.transform, shot.frames[1002].faces[0].transform)  # transforms kept exactly
    assert back.face(1001, track=7) is None
    assert [p.name for p in tmp_path.iterdir()] == ["sh010.fgtrack.json"]


def test_refuses_other_files_and_newer_versions(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(FaceGraftError, match="not a FaceGraft track file"):
        trackfile.load_track(path)
    data = trackfile.to_json(_shot())
    data["version"] = trackfile.VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(FaceGraftError, match="newer than this FaceGraft reads"):
        trackfile.load_track(path)
    path.write_text("{broken")
    with pytest.raises(FaceGraftError, match="cannot read the track file"):
        trackfile.load_track(path)
    with pytest.raises(FaceGraftError, match="track file not found"):
        trackfile.load_track(tmp_path / "missing.json")


def test_missing_frames_named():
    with pytest.raises(FaceGraftError, match="1005-1006"):
        _shot().require_frames([1001, 1005, 1006])


def test_hands_and_occlusion_round_trip(tmp_path):
    shot = _shot()
    shot.params["hands"] = True
    rng = np.random.default_rng(1)
    raw = rng.uniform(200, 400, (21, 3))
    shot.frames[1002].hands.append(trackfile.HandTrack(track=3, presence=0.93, handedness=0.81, landmarks_raw=raw,
                                                        landmarks=raw + 0.25))
    face = shot.frames[1002].faces[0]
    face.occlusion, face.flags = 0.31234, ["occluded"]
    path = tmp_path / "sh010.fgtrack.json"
    trackfile.save_track(shot, path)
    data = json.loads(path.read_text())
    assert data["version"] == trackfile.VERSION == 2
    back = trackfile.load_track(path)
    assert back.hands_searched
    hand = back.frames[1002].hands[0]
    assert (hand.track, hand.presence, hand.handedness) == (3, 0.93, 0.81)
    assert np.allclose(hand.landmarks_raw, raw, atol=1e-3) and np.allclose(hand.landmarks, raw + 0.25, atol=1e-3)
    assert back.face(1002).occlusion == pytest.approx(0.3123) and back.face(1002).flags == ["occluded"]
    assert back.frames[1001].hands == [] and back.face(1001).occlusion == 0.0


def test_version_1_files_read_as_tracked_without_hands(tmp_path):
    data = trackfile.to_json(_shot())
    data["version"] = 1
    for record in data["frames"]:
        del record["hands"]
        for face in record["faces"]:
            del face["occlusion"]
    path = tmp_path / "old.fgtrack.json"
    path.write_text(json.dumps(data))
    back = trackfile.load_track(path)
    assert not back.hands_searched
    assert all(back.frames[n].hands == [] for n in back.frame_numbers)
    assert back.face(1001).occlusion == 0.0 and back.face(1002).flags == ["bridged"]
