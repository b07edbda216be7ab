"""When the hand finder searches for palms, and how a hand found is followed: the schedule
(``HandFinder.search_reason``), the face-change cues, the tracking retries and the backward pass,
on the sample clips with the real models. The woman's hand comes over her face on video frame 59
and leaves after 229 (``test_hands.py`` has the hand matte and flags)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from facegraft.inference import assets
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.io.frames import open_source
from facegraft.inference.track import hands, tracker

CLIP = "WolfgangLanger_Pexels.mp4"


@pytest.fixture(scope="module")
def frame_tracker() -> tracker.FrameTracker:
    return tracker.FrameTracker(tracker.TrackerOptions(device="cpu"))


def follow(ft: tracker.FrameTracker, frames: str, clip: str = CLIP) -> tuple[list[int], list[list[hands.Hand]], Any]:
    """The per-frame pass (hands with where each came from) over ``frames`` of a sample clip."""
    source = open_source(str(assets.footage_path(clip)), frames)
    faces, found, _, _ = tracker.follow_shot(source, list(source.frames), ft, colour.DEFAULT_PLATE_SPACE,
                                             colour.DEFAULT_CONFIG)
    assert all(len(f) == 1 for f in faces)  # one face on every frame of these clips
    return list(source.frames), found, faces


def hand_frames(frames: list[int], found: list[list[hands.Hand]]) -> list[int]:
    return [n for n, h in zip(frames, found) if h]


def test_no_hand_near_one_square_in_turn_every_few_frames(frame_tracker: tracker.FrameTracker,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The man's clip has no hand: all the squares on the first frame, then one square every
    ``IDLE_EVERY`` frames in the order of ``IDLE_ORDER`` (a face change adds a full search)."""
    finder = frame_tracker.hands
    assert finder is not None
    squares: list[tuple[int, float]] = []
    detect = finder.palms.detect

    def counting(view: hands.PlateView, region: Any) -> list[hands.Palm]:
        squares.append((finder.frame, region[2] - region[0]))
        return detect(view, region)

    monkeypatch.setattr(finder.palms, "detect", counting)
    frames, found, _ = follow(frame_tracker, "1-30", "single_face.mp4")
    assert hand_frames(frames, found) == []
    searches = finder.searches
    assert searches["start"] == 1 and searches["idle"] >= (len(frames) - 1) // hands.IDLE_EVERY - 1
    assert set(searches) <= {"start", "idle", "faces", "presence", "landmarks"}
    full = sum(v for k, v in searches.items() if k != "idle")
    assert len(squares) == len(hands.FACE_REGIONS) * full + searches["idle"]  # every other search: one square
    # far fewer palm detector calls than a full search every second frame
    assert len(squares) < len(hands.FACE_REGIONS) * len(frames) / 2 / 2
    idle = [(n, side) for n, side in squares if sum(1 for m, _ in squares if m == n) == 1]
    sizes = [hands.FACE_REGIONS[i][0] for i in hands.IDLE_ORDER]
    ratio = [side / idle[0][1] * sizes[0] for _, side in idle]  # square sides in face-box sizes, up to face motion
    for k, r in enumerate(ratio):
        assert math.isclose(r, sizes[k % len(sizes)], rel_tol=0.1)


def test_face_changes_that_call_for_a_search(frame_tracker: tracker.FrameTracker) -> None:
    _, _, faces = follow(frame_tracker, "300-301")
    points, presence = faces[0][0].landmarks, faces[0][0].presence
    cue = hands.FaceCue(1, points, presence)
    assert hands.face_change([cue], [cue], [cue]) is None
    # a rigid move and zoom of the whole face is no change
    angle, scale = math.radians(4), 1.1
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = points.copy()
    moved[:, :2] = points[:, :2] @ rot.T + [12.0, -7.0]
    assert hands.face_change([cue], [cue], [hands.FaceCue(1, moved, presence)]) is None
    assert hands.landmark_jump(points, moved) < 1e-9
    # a hand pushing part of the mesh about is (the mouth and chin shifted by a tenth of the face)
    pushed = points.copy()
    size = np.ptp(points[:468, :2], axis=0).max()
    lower = points[:, 1] > np.median(points[:468, 1])
    pushed[lower, 0] += 0.1 * size
    assert hands.landmark_jump(points, pushed) > hands.LANDMARK_JUMP
    assert hands.face_change([cue], [cue], [hands.FaceCue(1, pushed, presence)]) == "landmarks"
    # FaceMesh less sure of the face than at the last search; a face coming or going
    unsure = hands.FaceCue(1, points, presence - 2 * hands.PRESENCE_DROP)
    assert hands.face_change([cue], [cue], [unsure]) == "presence"
    assert hands.face_change([cue], [cue], [cue, hands.FaceCue(2, moved, presence)]) == "faces"


def test_her_hand_found_late_is_followed_back_to_the_frame_it_comes_on(frame_tracker: tracker.FrameTracker) -> None:
    frames, found, _ = follow(frame_tracker, "40-100")
    assert hand_frames(frames, found) == list(range(59, 101))
    assert {h.track for f in found for h in f} == {1}
    sources = {n: f[0].source for n, f in zip(frames, found) if f}
    first_forward = min(n for n, s in sources.items() if s != "back")
    assert first_forward > 59 and all(sources[n] == "back" for n in range(59, first_forward))
    # found by the sparse search, then followed: no full search on every second frame
    assert sum(frame_tracker.hands.searches.values()) < 15


def test_a_followed_hand_is_kept_where_the_plain_tracking_region_loses_it(frame_tracker: tracker.FrameTracker,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames 66-92: her hand is cut by the frame edge and the palm detector barely sees it."""
    frames, found, _ = follow(frame_tracker, "66-92")
    assert hand_frames(frames, found) == frames and {h.track for f in found for h in f} == {1}
    assert frame_tracker.hands.retries > 0 and "lost" not in frame_tracker.hands.searches
    monkeypatch.setattr(hands, "TRACK_RETRIES", ())
    frames, found, _ = follow(frame_tracker, "66-92")
    assert len(hand_frames(frames, found)) < len(frames)  # the MediaPipe region alone loses her hand


def test_her_hand_leaves_after_229_and_is_not_found_again(frame_tracker: tracker.FrameTracker) -> None:
    frames, found, _ = follow(frame_tracker, "215-250")
    assert hand_frames(frames, found) == list(range(215, 230))
    searches = frame_tracker.hands.searches
    assert searches.get("lost") == hands.LINK_FRAMES  # every frame for a few frames, then idle
    assert searches.get("idle", 0) >= 1


def _failing_from(ft: tracker.FrameTracker, monkeypatch: pytest.MonkeyPatch, when: Any) -> None:
    """The hand landmark model raises (as onnxruntime would) on every call once ``when()`` is true."""
    assert ft.hands is not None
    session = ft.hands.landmarker.model.session
    run = session.run

    class Flaky:
        def run(self, *args: Any, **kwargs: Any) -> Any:
            if when():
                raise RuntimeError("out of memory")
            return run(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(session, name)

    monkeypatch.setattr(ft.hands.landmarker.model, "session", Flaky())


def test_the_hand_model_failing_while_a_hand_is_followed_names_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    ft = tracker.FrameTracker(tracker.TrackerOptions(device="cpu"))
    _failing_from(ft, monkeypatch, lambda: ft.hands is not None and ft.hands.frame >= 3)
    with pytest.raises(FaceGraftError, match="hand model failed to run: out of memory") as info:
        tracker.track_shot(open_source(str(assets.footage_path(CLIP)), "100-106"), tracker=ft)
    assert info.value.frame == 103


def test_the_hand_model_failing_in_the_backward_pass_names_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    ft = tracker.FrameTracker(tracker.TrackerOptions(device="cpu"))
    assert ft.hands is not None
    backward = {"on": False}
    backfill = ft.hands.backfill

    def marking(*args: Any, **kwargs: Any) -> list[hands.Hand]:
        backward["on"] = True
        return backfill(*args, **kwargs)

    monkeypatch.setattr(ft.hands, "backfill", marking)
    _failing_from(ft, monkeypatch, lambda: backward["on"])
    with pytest.raises(FaceGraftError, match="hand model failed to run") as info:
        tracker.track_shot(open_source(str(assets.footage_path(CLIP)), "40-80"), tracker=ft)
    assert info.value.frame is not None and 59 <= info.value.frame < 80  # a frame before the first forward find


def test_the_backward_pass_looks_for_a_hand_a_few_frames_past_where_it_lost_it() -> None:
    """``ahead``: each hand track's nearest appearance in the next ``LINK_FRAMES`` frames."""
    def hand(track: int, x: float) -> hands.Hand:
        return hands.Hand(np.tile([x, 100.0, 0.0], (21, 1)) + np.arange(21)[:, None], 0.9, 0.5, track=track)

    after = [[], [hand(2, 50.0)], [hand(1, 10.0), hand(2, 60.0)], [hand(1, 20.0)], [], [hand(3, 0.0)]]
    nearest = {h.track: h.landmarks[0, 0] for h in hands.ahead(after)}
    assert nearest == {2: 50.0, 1: 10.0}  # track 3 is more than LINK_FRAMES frames on
    assert hands.LINK_FRAMES == 4 and [h.track for h in hands.ahead(after, 2)] == [2]
    assert hands.backfill_needed([hand(1, 10.0)], hands.ahead(after)) and not hands.backfill_needed(
        [hand(1, 10.0), hand(2, 50.0)], hands.ahead(after))
