"""FaceMesh + iris landmarks through onnxruntime on real sample frames."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tracking_support import clip_frames, rotate

from facegraft.inference.track import detect, landmarks


@pytest.fixture(scope="module")
def models() -> landmarks.LandmarkModels:
    return landmarks.LandmarkModels(device="cpu", threads=1)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return clip_frames("single_face.mp4", 1)[0]


@pytest.fixture(scope="module")
def detection(frame: np.ndarray) -> detect.Detection:
    return detect.Detectors(device="cpu", threads=1).detect(frame, plate_space="ACEScg")[0]


def _refined(models: landmarks.LandmarkModels, frame: np.ndarray, det: detect.Detection,
             origin: tuple[float, float] = (0.0, 0.0)) -> landmarks.LandmarkResult:
    first = models.landmarks(frame, landmarks.roi_from_detection(det), origin, "ACEScg")
    return models.landmarks(frame, landmarks.roi_from_landmarks(first.points), origin, "ACEScg")


def test_478_points_inside_the_detector_box(models: landmarks.LandmarkModels, frame: np.ndarray,
                                            detection: detect.Detection) -> None:
    result = _refined(models, frame, detection)
    points = result.points
    assert points.shape == (478, 3) and np.isfinite(points).all()
    assert result.presence > 0.9
    x0, y0, x1, y1 = detection.box
    pad = 0.1 * (x1 - x0)
    assert (points[:, 0] > x0 - pad).all() and (points[:, 0] < x1 + pad).all()
    assert (points[:, 1] > y0 - pad).all() and (points[:, 1] < y1 + pad).all()
    # anatomy: eye corners on the image left/right, nose tip between, chin (152) below the mouth (13)
    assert points[33, 0] < points[133, 0] < points[1, 0] < points[362, 0] < points[263, 0]
    assert points[13, 1] < points[152, 1]
    # the detector's eye keypoints agree with the mesh eye centres
    assert np.linalg.norm(points[[33, 133], :2].mean(0) - detection.keypoints[0]) < 8
    assert np.linalg.norm(points[[362, 263], :2].mean(0) - detection.keypoints[1]) < 8


def test_iris_points_sit_in_their_eyes(models: landmarks.LandmarkModels, frame: np.ndarray,
                                       detection: detect.Detection) -> None:
    points = _refined(models, frame, detection).points
    for centre, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        ax, bx = sorted((points[a, 0], points[b, 0]))
        assert ax < points[centre, 0] < bx
        assert abs(points[centre, 1] - points[[a, b], 1].mean()) < 6
        ring = points[centre + 1:centre + 5, :2]
        radius = np.linalg.norm(ring - points[centre, :2], axis=1)
        assert (radius > 1).all() and (radius < 12).all()  # an iris a few pixels across


def test_following_from_the_previous_landmarks_converges(models: landmarks.LandmarkModels, frame: np.ndarray,
                                                         detection: detect.Detection) -> None:
    a = _refined(models, frame, detection)
    b = models.landmarks(frame, landmarks.roi_from_landmarks(a.points), (0, 0), "ACEScg")
    assert np.abs(a.points[:468, :2] - b.points[:468, :2]).mean() < 1.0


def test_rotated_face_is_followed_by_a_rotated_roi(models: landmarks.LandmarkModels, frame: np.ndarray,
                                                   detection: detect.Detection) -> None:
    upright = _refined(models, frame, detection).points
    turned = rotate(frame, 45, (295, 200))  # counter-clockwise on screen
    result = models.landmarks(turned, landmarks.roi_from_landmarks(upright), (0, 0), "ACEScg")
    for _ in range(3):  # follow as over frames
        result = models.landmarks(turned, landmarks.roi_from_landmarks(result.points), (0, 0), "ACEScg")
    lm = result.points
    angle = math.degrees(math.atan2(lm[263, 1] - lm[33, 1], lm[263, 0] - lm[33, 0]))
    assert result.presence > 0.9 and angle == pytest.approx(-45, abs=6)
    assert math.degrees(result.roi.angle) == pytest.approx(-45, abs=6)


def test_data_window_origin_shifts_landmarks_exactly(models: landmarks.LandmarkModels, frame: np.ndarray,
                                                     detection: detect.Detection) -> None:
    roi = landmarks.roi_from_detection(detection)
    base = models.landmarks(frame, roi, (0, 0), "ACEScg").points
    moved = landmarks.Roi(roi.cx + 30, roi.cy + 12, roi.size, roi.angle)
    shifted = models.landmarks(frame, moved, (30, 12), "ACEScg").points
    assert np.allclose(shifted[:, :2] - base[:, :2], [30, 12], atol=1e-3)


def test_black_crop_has_low_presence(models: landmarks.LandmarkModels, frame: np.ndarray,
                                     detection: detect.Detection) -> None:
    result = models.landmarks(np.zeros_like(frame), landmarks.roi_from_detection(detection), (0, 0), "ACEScg")
    assert result.presence < landmarks.PRESENCE_THRESHOLD


def test_roi_matrix_maps_centre_and_eye_line() -> None:
    roi = landmarks.Roi(100.0, 50.0, 40.0, math.radians(30))
    m = roi.matrix(192)
    centre = m @ [100.0, 50.0, 1.0]
    assert np.allclose(centre, [96, 96])
    along = m @ [100 + 20 * math.cos(roi.angle), 50 + 20 * math.sin(roi.angle), 1.0]
    assert np.allclose(along, [192, 96])  # the eye line runs along crop x
    mirrored = roi.matrix(64, mirror=True) @ [100 + 20 * math.cos(roi.angle), 50 + 20 * math.sin(roi.angle), 1.0]
    assert np.allclose(mirrored, [0, 32])


def test_batched_iris_graph_matches_the_converted_one(models: landmarks.LandmarkModels) -> None:
    """The iris graph re-shaped for a batch gives, on both outputs (eye contours, iris), what the file gives per eye."""
    from facegraft.inference import assets
    from facegraft.inference.models import runtime

    assert models.iris_batched
    original = runtime.create_session(assets.model_path("iris_landmark"), device="cpu", threads=1)
    name = original.get_inputs()[0].name
    crops = np.random.default_rng(1).random((2, 3, landmarks.IRIS_SIZE, landmarks.IRIS_SIZE), dtype=np.float32)
    together = models.iris.run(None, {models._iris_in: crops})
    assert [t.shape for t in together] == [(2, 213), (2, 15)]
    for i in range(2):
        alone = original.run(None, {name: crops[i:i + 1]})
        for output in (landmarks.CONTOUR_OUTPUT, landmarks.IRIS_OUTPUT):
            assert np.allclose(together[output][i], alone[output][0], atol=1e-5)


def test_iris_model_lids_replace_the_mesh_lids(models: landmarks.LandmarkModels, frame: np.ndarray,
                                              detection: detect.Detection) -> None:
    """Lid points move to the eye contour's in x and y; corners, depth and every other point stay."""
    first = _refined(models, frame, detection)
    mesh, presence = models.mesh_points(frame, first.roi, (0, 0), "ACEScg")
    points = models.with_iris(frame, mesh, presence, first.roi, (0, 0), "ACEScg").points
    lids = [i for eye in landmarks.LID_MESH for i in eye]
    others = np.setdiff1d(np.arange(468), lids)
    assert np.array_equal(points[others], mesh[others]) and np.array_equal(points[lids, 2], mesh[lids, 2])
    moved = np.linalg.norm(points[lids, :2] - mesh[lids, :2], axis=1)
    eye_width = np.linalg.norm(mesh[33, :2] - mesh[133, :2])
    assert moved.max() > 0 and moved.mean() < 0.25 * eye_width  # on the same eyes, not elsewhere
    eyes = models.eye_points(frame, mesh, (0, 0), "ACEScg")
    for indices, contour in zip(landmarks.LID_MESH, eyes.lids):  # lower lid below the upper, inside the corners
        assert contour[3, 1] > contour[11, 1]
        assert np.array_equal(points[list(indices), :2], contour[:, :2])
    # a face FaceMesh is unsure of keeps its own lids (and eye centres for irises), as the iris does
    weak = models.with_iris(frame, mesh, landmarks.PRESENCE_THRESHOLD / 2, first.roi, (0, 0), "ACEScg").points
    assert np.array_equal(weak[:468], mesh)


# 0-based frames of WolfgangLanger_Pexels.mp4 (every 10th decoded), judged on the picture: eyes shut
# (16-95, 441-471) and open (most of 140-380)
SHUT_FRAMES = (20, 50, 80, 450, 460)
OPEN_FRAMES = (160, 220, 300, 350)


@pytest.fixture(scope="module")
def woman_landmarks(models: landmarks.LandmarkModels) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per frame: (478 points with the iris model's lids, the mesh's own 468 points)."""
    every_tenth = clip_frames("WolfgangLanger_Pexels.mp4", 47, step=10)
    frames = {i: every_tenth[i // 10] for i in SHUT_FRAMES + OPEN_FRAMES}
    detectors = detect.Detectors(device="cpu", threads=1)
    out = {}
    for index, rgb in frames.items():
        result = _refined(models, rgb, detectors.detect(rgb, plate_space="ACEScg")[0])
        mesh, _ = models.mesh_points(rgb, result.roi, (0, 0), "ACEScg")
        out[index] = (result.points, mesh)
    return out


def test_eye_openness_separates_shut_from_open_eyes_on_real_footage(
        woman_landmarks: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    from facegraft.inference.track import expression

    shut = np.array([expression.eye_openness(woman_landmarks[i][0]) for i in SHUT_FRAMES])
    opened = np.array([expression.eye_openness(woman_landmarks[i][0]) for i in OPEN_FRAMES])
    assert (shut < expression.EYE_SHUT).all(), shut
    assert (opened > expression.EYE_OPEN).all(), opened
    # FaceMesh's own lids do not close: the reason the iris model's lids replace them
    mesh_shut = np.array([expression.eye_openness(woman_landmarks[i][1]) for i in SHUT_FRAMES])
    assert (mesh_shut > expression.EYE_SHUT).all(), mesh_shut


def test_a_graph_with_a_batch_dependent_reshape_is_left_alone(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [2, -1])  # batch hard-wired to 2
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])], [shape])
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert landmarks.batched_graph(path) is None
