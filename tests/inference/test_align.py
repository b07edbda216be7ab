"""Face space: similarity fit, crops at any resolution/coverage, exact inverse, STMap."""
from __future__ import annotations

import cv2
import dfl_reference
import numpy as np
import pytest
from tracking_support import synthetic_landmarks, template_mesh

from facegraft.inference.track import align


def _transform(scale=120.0, angle=0.3, tx=300.0, ty=180.0) -> np.ndarray:
    """Plate -> face space for a face of ``scale`` px, rotated by ``angle``, centred near (tx, ty)."""
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    rot = np.array([[c, -s], [s, c]])
    return np.hstack([rot, (np.array([0.5, 0.5]) - rot @ [tx, ty])[:, None]])


def test_similarity_recovers_a_known_transform():
    truth = _transform()
    landmarks = synthetic_landmarks(truth)
    assert np.allclose(align.face_transform(landmarks), truth, atol=1e-9)


def test_template_points_land_where_the_template_says():
    truth = _transform(angle=-0.6)
    landmarks = synthetic_landmarks(truth)
    for coverage in align.COVERAGES:
        pts = align.apply(align.crop_matrix(truth, 256, coverage), align.template_points(landmarks))
        expected = align.apply(align.coverage_matrix(256, coverage), align.template_points(template_mesh()))
        assert np.allclose(pts, expected, atol=1e-6)
        # and the fit puts them near the nominal template positions
        assert np.abs(pts - align.template_points_in_crop(256, coverage)).max() < 0.05 * 256


def _gradient_plate(h=360, w=640) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs / w, ys / h, np.sin(xs / 17.0) * np.cos(ys / 23.0)], axis=-1)


def test_crop_samples_the_right_plate_positions():
    plate = _gradient_plate()
    truth = _transform(scale=150.0, angle=0.0)
    face = align.crop(plate, truth, 64, "face", interpolation="linear")
    # Crop pixel centre (i + 0.5, j + 0.5) maps back to a plate position; R channel is x / w.
    inv = align.invert(align.crop_matrix(truth, 64, "face"))
    centre = align.apply(inv, np.array([[32.5, 10.5]]))[0]
    assert face[10, 32, 0] == pytest.approx((centre[0] - 0.5) / 640, abs=1e-4)
    assert face[10, 32, 1] == pytest.approx((centre[1] - 0.5) / 360, abs=1e-4)


def test_data_window_origin_is_respected():
    plate = _gradient_plate()
    truth = _transform()
    whole = align.crop(plate, truth, 128)
    window = align.crop(plate[20:, 30:], truth, 128, origin=(30, 20))
    assert np.abs(whole - window)[16:-16, 16:-16].max() < 1e-5


def test_crop_then_uncrop_reproduces_the_plate():
    plate = _gradient_plate()
    truth = _transform(scale=100.0, angle=0.25)
    face = align.crop(plate, truth, 512, "whole_face")  # upsampling: the inverse is nearly lossless
    back, footprint = align.uncrop(face, truth, "whole_face", plate.shape[:2])
    inside = footprint > 0.999
    assert inside.sum() > 10000
    assert np.abs(back - plate)[inside].max() < 2e-3
    assert footprint[0, 0] == 0.0  # far from the face: untouched


def test_no_half_pixel_shift():
    """A single bright plate pixel comes back centred on the same pixel after crop -> uncrop."""
    plate = np.zeros((200, 200, 1), np.float32)
    plate[101, 87] = 1.0
    truth = _transform(scale=60.0, angle=0.0, tx=100, ty=100)
    face = align.crop(plate, truth, 256, "head", interpolation="linear")
    back, _ = align.uncrop(face, truth, "head", (200, 200), interpolation="linear")
    ys, xs = np.mgrid[0:200, 0:200]
    weight = back[..., 0]
    # sampling a tent on a finer grid moves the centroid by <0.1 px; a half-pixel bug moves it 0.5
    assert (weight * xs).sum() / weight.sum() == pytest.approx(87, abs=0.1)
    assert (weight * ys).sum() / weight.sum() == pytest.approx(101, abs=0.1)


def test_stmap_lookup_lands_on_the_crop_pixel():
    plate = _gradient_plate()
    truth = _transform(angle=0.4)
    res = 256
    face = align.crop(plate, truth, res, "whole_face", interpolation="linear")
    st = align.stmap(truth, res, "whole_face", plate.shape[:2])
    for y, x in [(180, 300), (150, 280), (200, 330)]:
        s, t = st[y, x]
        cx, cy = s * res - 0.5, (1.0 - t) * res - 0.5  # Nuke convention: t grows upwards
        i, j = int(round(cy)), int(round(cx))
        assert np.allclose(face[i, j], plate[y, x], atol=0.02)


def test_area_filter_for_big_downscales():
    rng = np.random.default_rng(0)
    plate = rng.uniform(size=(2000, 2000, 3)).astype(np.float32)  # pure noise averages to 0.5
    truth = _transform(scale=1200.0, angle=0.0, tx=1000, ty=1000)
    face = align.crop(plate, truth, 32, "face")
    assert abs(float(face.std()) - 0.0) < 0.05  # aliasing would keep the noise's 0.29 std


def _dfl_face(angle=0.2, scale=70.0, centre=(150.0, 120.0), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A FaceMesh (plate px, centres at +0.5) placed and jittered, and its 68 points in
    DeepFaceLab's convention (pixel centres at 0; the points DeepFaceLab does not use stay NaN)."""
    mesh = synthetic_landmarks(_transform(scale=scale, angle=angle, tx=centre[0], ty=centre[1]))
    mesh[:, :2] += np.random.default_rng(seed).normal(0.0, 0.8, (len(mesh), 2))  # no exact fit
    lm68 = np.full((68, 2), np.nan)
    for i68, i_mesh in align.MESH_OF_68.items():
        lm68[i68] = mesh[i_mesh, :2] - 0.5
    return mesh, lm68


@pytest.mark.parametrize("angle, res", [(0.2, 128), (-0.5, 96), (0.0, 224)])
def test_dfl_whole_face_is_deepfacelabs_crop(angle, res):
    mesh, lm68 = _dfl_face(angle=angle)
    expected = dfl_reference.whole_face_matrix(lm68, res)  # pixel index -> crop pixel index
    transform = align.model_transform(align.DFL_WHOLE_FACE, np.eye(2, 3), mesh, res, "whole_face")
    got = align.array_matrix(align.crop_matrix(transform, res, "whole_face"))
    probe = np.array([[100.0, 80.0], [150.0, 120.0], [210.0, 170.0]])
    assert np.abs(align.apply(got, probe) - align.apply(expected, probe)).max() < 1e-3  # crop px
    # and the pixels: DeepFaceLab's warp of the plate is the crop the renderer cuts
    plate = _gradient_plate(300, 320)
    theirs = cv2.warpAffine(plate, expected, (res, res), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    ours = align.crop(plate, transform, res, "whole_face", interpolation="cubic")
    assert np.abs(ours - theirs).max() < 1e-4  # half a pixel off would be 0.03


def test_dfl_whole_face_is_larger_and_lower_than_facegrafts():
    mesh, _ = _dfl_face(angle=0.3, seed=1)
    tracked = align.face_transform(mesh)
    dfl = align.model_transform(align.DFL_WHOLE_FACE, tracked, mesh, 256, "whole_face")
    # both crops are "whole_face" of their face space: compare the face spaces' units in plate px
    unit = np.array([[0.0, 0.0], [1.0, 0.0]])
    size = np.linalg.norm(np.diff(align.apply(align.invert(dfl), unit), axis=0))
    fg_size = np.linalg.norm(np.diff(align.apply(align.invert(tracked), unit), axis=0))
    assert 1.03 < size / fg_size < 1.15  # DeepFaceLab's square is about 1.36 FaceGraft face units wide
    centre = align.apply(align.compose(tracked, align.invert(dfl)), np.array([[0.5, 0.5]]))[0]
    assert abs(centre[0] - 0.5) < 0.02 and 0.55 < centre[1] < 0.62  # lower: the chin in, less forehead
    np.testing.assert_array_equal(align.model_transform(align.TEMPLATE_NAME, tracked, mesh, 256, "head"), tracked)


def test_the_68_point_subset_fits_deepfacelabs_mean_face():
    """On a neutral FaceMesh, the mapped points sit where DeepFaceLab's mean face has them; mapping
    the face's sides the wrong way round would not fit."""
    mesh = template_mesh()
    points = align.dfl_points(mesh)
    fit = align.estimate_similarity(points, dfl_reference.MEAN_FACE)
    residual = np.linalg.norm(align.apply(fit, points) - dfl_reference.MEAN_FACE, axis=1)
    assert np.sqrt((residual ** 2).mean()) < 0.05 and residual.max() < 0.08  # of the unit face
    mirrored = points.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    bad = align.estimate_similarity(mirrored, dfl_reference.MEAN_FACE)
    assert np.linalg.norm(align.apply(bad, mirrored) - dfl_reference.MEAN_FACE, axis=1).mean() > 3 * residual.mean()


def test_templates_by_name():
    assert set(align.TEMPLATES) == {align.TEMPLATE_NAME, align.DFL_WHOLE_FACE}
    assert align.template(align.DFL_WHOLE_FACE).coverages == ("whole_face",)
    with pytest.raises(ValueError, match="'insightface-112' is not implemented.*facegraft-5pt-v1, deepfacelab-wf"):
        align.template("insightface-112")
    with pytest.raises(ValueError, match="no coverage 'head'"):
        align.template(align.DFL_WHOLE_FACE, "head")
