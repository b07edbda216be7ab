"""Pose and expression measures on a FaceMesh (the neutral template mesh, moved and rotated in 3-D).

Real footage (eyes shut and open on the sample clip) is measured in test_landmarks.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from tracking_support import template_mesh

from facegraft.inference.track import expression


def rotated(points: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """``points`` turned about their centre: yaw towards image right (its right side moves away,
    z grows), pitch chin up (the chin comes nearer), roll clockwise on screen (y is down)."""
    centre = points.mean(0)
    x, y, z = (points - centre).T
    t = np.radians(yaw)
    x, z = x * np.cos(t) - z * np.sin(t), x * np.sin(t) + z * np.cos(t)
    t = np.radians(pitch)
    y, z = y * np.cos(t) + z * np.sin(t), z * np.cos(t) - y * np.sin(t)
    t = np.radians(roll)
    x, y = x * np.cos(t) - y * np.sin(t), x * np.sin(t) + y * np.cos(t)
    return np.column_stack([x, y, z]) + centre


def placed(points: np.ndarray, scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    """``points`` through a 2-D similarity (z scaled alike), as between face space, plate and crop."""
    c, s = np.cos(angle), np.sin(angle)
    xy = points[:, :2] @ (scale * np.array([[c, s], [-s, c]])) + shift
    return np.column_stack([xy, points[:, 2] * scale])


def test_neutral_face_has_open_eyes_a_closed_mouth_and_centred_irises() -> None:
    mesh = template_mesh()
    eyes = expression.eye_openness(mesh)
    assert eyes.shape == (2,) and (eyes > expression.EYE_OPEN).all()
    assert expression.mouth_openness(mesh) < expression.MOUTH_SHUT
    assert np.abs(expression.gaze(mesh)).max() < 0.01


def test_measures_do_not_change_with_size_place_or_in_plane_angle() -> None:
    mesh = template_mesh()
    moved = placed(mesh, 412.0, 0.3, (900.0, 520.0))
    base, other = expression.measures(mesh), expression.measures(moved)
    assert np.allclose(base[:5], other[:5], atol=1e-6)  # openness, yaw, pitch
    assert other[5] - base[5] == pytest.approx(np.degrees(0.3), abs=1e-6)  # roll follows the turn (clockwise)
    assert np.allclose(expression.gaze(mesh), expression.gaze(moved), atol=1e-9)


def test_lids_closing_and_mouth_opening_are_measured() -> None:
    mesh = template_mesh().copy()
    for upper, lower in zip(expression.EYE_UPPER[0], expression.EYE_LOWER[0]):
        mesh[upper, :2] = mesh[lower, :2] + [0.0, -0.002]  # the image-left eye nearly shut
    for lower in expression.MOUTH_LOWER:
        mesh[lower, 1] += 0.08  # jaw dropped
    left, right = expression.eye_openness(mesh)
    assert left < expression.EYE_SHUT < expression.EYE_OPEN < right
    assert expression.mouth_openness(mesh) > expression.MOUTH_OPEN


def test_batches_measure_each_face() -> None:
    mesh = template_mesh()
    batch = np.stack([mesh, rotated(mesh, yaw=20.0), placed(mesh, 100.0, 0.0, (0.0, 0.0))])
    out = expression.measures(batch)
    assert out.shape == (3, len(expression.FIELDS))
    for k in range(3):
        assert np.allclose(out[k], expression.measures(batch[k]))


@pytest.mark.parametrize("yaw, pitch, roll", [(15, 0, 0), (-20, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 20), (10, -10, 5)])
def test_head_pose_recovers_a_known_turn(yaw: float, pitch: float, roll: float) -> None:
    mesh = placed(template_mesh(), 300.0, 0.0, (400.0, 300.0))
    start = expression.head_pose(mesh)
    turned = expression.head_pose(rotated(mesh, yaw, pitch, roll)) - start
    assert turned[0] == pytest.approx(yaw, abs=1.0) and turned[1] == pytest.approx(pitch, abs=1.0)
    if yaw == pitch == 0:
        assert turned[2] == pytest.approx(roll, abs=0.5)
    # without depth (facesets store 2-D points) the estimate stays within a few degrees
    flat = expression.head_pose(rotated(mesh, yaw, pitch, roll)[:, :2]) - expression.head_pose(mesh[:, :2])
    assert np.abs(flat[:2] - [yaw, pitch]).max() < 4.0


def test_gaze_follows_the_iris_along_and_across_the_eye() -> None:
    mesh = template_mesh().copy()
    a, b = mesh[33, :2], mesh[133, :2]
    width = float(np.linalg.norm(b - a))
    along = (b - a) / width
    down = np.array([-along[1], along[0]])
    mesh[468, :2] += width * (0.1 * along + 0.05 * down)  # image-left iris: towards 133 and down
    g = expression.gaze(mesh)
    assert g[0] == pytest.approx([0.1, 0.05], abs=0.01) and np.abs(g[1]).max() < 0.01


def test_openness_takes_torch_tensors_and_passes_gradients() -> None:
    torch = pytest.importorskip("torch")
    mesh = template_mesh()
    points = torch.tensor(mesh, dtype=torch.float64, requires_grad=True)
    eyes = expression.eye_openness(points)
    mouth = expression.mouth_openness(points)
    assert np.allclose(eyes.detach().numpy(), expression.eye_openness(mesh))
    assert float(mouth.detach()) == pytest.approx(float(expression.mouth_openness(mesh)))
    (eyes.sum() + mouth).backward()
    assert points.grad is not None and float(points.grad.abs().sum()) > 0


def test_records_round_trip() -> None:
    mesh = template_mesh()
    shut = mesh.copy()
    for upper, lower in zip(sum(expression.EYE_UPPER, ()), sum(expression.EYE_LOWER, ())):
        shut[upper, :2] = shut[lower, :2]
    record = expression.record(mesh, raw=shut)  # openness from the raw points, pose from the smoothed
    assert set(record) == set(expression.FIELDS)
    assert record["eye_left"] < expression.EYE_SHUT and record["yaw"] == pytest.approx(expression.head_pose(mesh)[0], abs=1e-3)
    back = expression.from_record(record)
    assert back.shape == (len(expression.FIELDS),) and np.isnan(expression.from_record({"yaw": 1.0})[0])
    assert expression.record(np.zeros((478, 3)))["yaw"] is None  # a collapsed mesh measures nothing
