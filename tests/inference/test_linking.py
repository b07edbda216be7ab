"""Linking faces into tracks, gap bridging and the target choice (synthetic observations)."""
from __future__ import annotations

import numpy as np
import pytest
from tracking_support import link

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.track import linking


def face(index: int, cx: float, cy: float, size: float = 100.0) -> linking.Observation:
    h = size / 2
    points = np.tile([cx, cy, 0.0], (478, 1)) + index  # distinct per frame, to check interpolation
    return linking.Observation(index=index, box=(cx - h, cy - h, cx + h, cy + h), score=1.0, landmarks=points)


def test_ids_stay_stable_while_faces_move_and_new_ones_number_left_to_right() -> None:
    shot = [[face(i, 600 - 10 * i, 200), face(i, 100 + 10 * i, 200)] for i in range(10)]
    link(shot)
    assert {f.track for f in shot[0]} == {1, 2}
    left_id = min(shot[0], key=lambda f: f.centre[0]).track
    assert left_id == 1
    for frame in shot:  # the face that started left keeps its id all the way
        starting_left = [f for f in frame if f.landmarks[0, 0] - f.index == 100 + 10 * f.index]
        assert starting_left[0].track == 1


def test_a_lost_face_is_picked_up_again_with_its_id() -> None:
    shot = [[face(i, 300 + 3 * i, 200)] if not 4 <= i <= 9 else [] for i in range(14)]
    link(shot)
    assert {f.track for frame in shot for f in frame} == {1}


def test_far_away_face_starts_a_new_track() -> None:
    shot = [[face(0, 100, 100)], [face(1, 500, 100)]]
    link(shot)
    assert shot[0][0].track == 1 and shot[1][0].track == 2


def test_followed_faces_keep_their_ids() -> None:
    linker = linking.Linker()
    linker.assign(0, [face(0, 100, 100), face(0, 400, 100)])  # ids 1 and 2
    followed = face(1, 405, 100)
    followed.track = 2  # the tracker followed face 2 here (its own landmarks say so)
    fresh = face(1, 102, 100)
    duplicate = face(1, 398, 100)  # overlaps track 2, which is taken this frame
    linker.assign(1, [followed, fresh, duplicate])
    assert (followed.track, fresh.track, duplicate.track) == (2, 1, 3)


def test_short_gaps_are_bridged_by_interpolation_and_flagged() -> None:
    track = {i: face(i, 100 + 10 * i, 100) for i in (0, 1, 2, 6, 7, 20)}
    filled = linking.bridge(track, max_gap=3)
    assert sorted(filled) == [0, 1, 2, 3, 4, 5, 6, 7, 20]  # 3 missing bridged, the 12-frame gap kept
    for i in (3, 4, 5):
        assert filled[i].flags == ["bridged"]
        assert np.allclose(filled[i].landmarks[0, :2], [100 + 10 * i + i, 100 + i])  # linear in time
        assert filled[i].box[0] == pytest.approx(50 + 10 * i)
    assert filled[2].flags == [] and filled[6].flags == []
    assert sorted(linking.bridge(track, max_gap=0)) == [0, 1, 2, 6, 7, 20]


def test_segments() -> None:
    assert linking.segments([1, 2, 3, 7, 8, 10]) == [[1, 2, 3], [7, 8], [10]]


def test_target_choice_largest_and_by_id() -> None:
    shot = [[face(i, 100, 100, 80), face(i, 500, 100, 120)] for i in range(6)]
    shot += [[face(i, 900, 100, 300)] for i in range(6, 7)]  # big but on one frame only
    link(shot)
    summary = linking.track_summary(linking.by_track(shot), list(range(1001, 1008)))
    assert [s["id"] for s in summary] == [1, 2, 3]
    assert linking.choose_target(summary, "largest") == 2  # largest mean size over the shot
    assert linking.choose_target(summary, "1") == 1
    with pytest.raises(FaceGraftError, match="no face track 7") as info:
        linking.choose_target(summary, "7")
    assert "tracks found" in (info.value.hint or "")
    with pytest.raises(FaceGraftError):
        linking.choose_target(summary, "biggest")
    assert linking.choose_target([], "largest") is None
