"""Synthetic blinks: the lid warp on faces the real tracker extracted from the sample footage, the
faces it adds to an identity, the coverage check's pointer to it and the training option."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facegraft.cli.main import build_parser, main
from facegraft.inference.track import expression
from facegraft.training import coverage, loop
from facegraft.training.blink import LOWER_LID, UPPER_LID, add_synthetic_blinks, close_eyes, eye_frame, move_points
from facegraft.training.checkpoint import load_checkpoint
from facegraft.training.coverage import check_coverage
from facegraft.training.data import MEASURES, IdentityData, split_validation
from facegraft.training.faceset import EXPRESSION, Faceset, FacesetWriter, open_faceset
from facegraft.training.landmark_loss import build_landmark_loss

EYES = [MEASURES.index("eye_left"), MEASURES.index("eye_right")]


@pytest.fixture(scope="module")
def man(man_extract) -> Faceset:
    """12 faces (64 px) of the man, eyes open (openness about 0.3), tracked by the real tracker."""
    return man_extract.faceset


def _face(fs: Faceset, i: int) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(fs.faces[i]), np.asarray(fs.landmarks[i], np.float64)


def _shut_copy(fs: Faceset, folder: Path, identity: str) -> Path:
    """``fs``'s faces with both eyes shut (``close_eyes``), as a faceset of another identity."""
    with FacesetWriter(folder, identity=identity, resolution=fs.resolution, coverage=fs.coverage,
                       colorspace=fs.colorspace, ocio_config=fs.ocio_config, template=fs.template, min_motion=0.0,
                       matte_names=tuple(fs.matte_names)) as writer:
        for i in range(len(fs)):
            face, points = close_eyes(*_face(fs, i), 1.0)
            mattes = {name: fs.matte(name)[i] for name in fs.matte_names}
            writer.add(face.astype(np.float32), mattes, points, source=fs.entries[i]["source"],
                       frame=fs.entries[i]["frame"], **{EXPRESSION: expression.record(points)})
    return folder


def test_the_upper_lid_comes_down_onto_the_lower_lid(man: Faceset) -> None:
    face, points = _face(man, 0)
    before = expression.eye_openness(points)
    assert (before > expression.EYE_OPEN).all()
    for amount in (0.25, 0.5, 1.0, (1.0, 0.0), (0.3, 0.9)):
        a = np.broadcast_to(amount, (2,))
        _, moved = close_eyes(face, points, amount)
        for eye in (0, 1):
            upper, lower = list(UPPER_LID[eye]), list(LOWER_LID[eye])
            np.testing.assert_allclose(moved[upper], points[upper] + a[eye] * (points[lower] - points[upper]), atol=1e-9)
            np.testing.assert_array_equal(moved[lower], points[lower])  # the lower lid stays
        # the corners stay and every upper lid point moves along the segment to the lower one below it,
        # so each lid gap, and the openness, shrink by exactly (1 - amount); the tolerance is the measure's
        # own guard against a zero distance (1e-6 px) over the eye width
        np.testing.assert_allclose(expression.eye_openness(moved), (1 - a) * before, atol=1e-6)
    _, shut = close_eyes(face, points, 1.0)
    assert (expression.eye_openness(shut) < expression.EYE_SHUT).all()
    for eye, iris in enumerate((468, 473)):  # the hidden iris follows the lid down, into the closed slit
        frame = eye_frame(points, eye)
        assert frame is not None
        u, v = frame.to_eye(shut[[iris]])
        lid_u, lid_v = frame.to_eye(shut[[*expression.EYE_CORNERS[eye], *UPPER_LID[eye]]])
        order = np.argsort(lid_u)
        assert v[0] >= np.interp(u, lid_u[order], lid_v[order])[0] and v[0] > frame.to_eye(points[[iris]])[1][0]


def test_the_landmark_models_read_the_warped_eyes_as_shut(man: Faceset) -> None:
    """The tracker's own instruments (FaceMesh and the iris model, as the landmark loss runs them) read
    the pictures: the openness they see falls with the amount, and a shut eye reads as one."""
    reader = build_landmark_loss([man], man.resolution).reader

    def read(amount: float) -> float:
        faces = [close_eyes(*_face(man, i), amount)[0].astype(np.float32) for i in range(len(man))]
        with torch.no_grad():
            marks = reader(torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2))
        lids, corners = marks.lids.numpy(), marks.corners.numpy().reshape(-1, 2, 2, 2)
        gap = np.linalg.norm(lids[:, :, 9:12] - lids[:, :, 2:5], axis=-1).mean(-1)  # contour 11-13 over 3-5
        return float((gap / np.linalg.norm(corners[:, :, 1] - corners[:, :, 0], axis=-1)).mean())

    opened, half, shut = read(0.0), read(0.5), read(1.0)
    assert opened > expression.EYE_OPEN
    assert opened > half > shut
    # real shut eyes read 0.04-0.08 on the sample footage; the warped lid leaves a slit and some lash
    # above it, so its reading is looser, but well under half the open one and under EYE_SHUT
    assert shut < min(expression.EYE_SHUT, 0.5 * opened)


def test_pixels_away_from_the_eyes_are_untouched(man: Faceset) -> None:
    face, points = _face(man, 3)
    out, _ = close_eyes(face, points, 1.0)
    assert out.dtype == face.dtype == np.float16 and out.shape == face.shape
    res = man.resolution
    yy, xx = np.mgrid[0:res, 0:res] + 0.5
    changed = np.any(out != face, axis=-1)
    near = np.zeros((res, res), bool)
    lowest = -np.inf
    for eye in (0, 1):
        frame = eye_frame(points, eye)
        assert frame is not None
        distance = np.hypot(xx - frame.centre[0], yy - frame.centre[1])
        near |= distance < 1.2 * frame.width  # the fade above the lid ends within an eye width of the eye
        assert changed[distance < 0.3 * frame.width].any()
        lowest = max(lowest, points[list(LOWER_LID[eye]), 1].max() + 0.1 * frame.width)
    assert not changed[~near].any()
    assert not changed[yy > lowest].any()  # nothing below the lower lids moves
    out32, _ = close_eyes(face.astype(np.float32), points, 1.0)
    np.testing.assert_array_equal(out32[~near], face.astype(np.float32)[~near])


def test_amount_zero_is_the_identity_and_one_eye_can_wink(man: Faceset) -> None:
    face, points = _face(man, 5)
    same, kept = close_eyes(face, points, 0.0)
    np.testing.assert_array_equal(same, face)
    np.testing.assert_array_equal(kept, points)
    winked, moved = close_eyes(face, points, (0.0, 1.0))
    left, right = eye_frame(points, 0), eye_frame(points, 1)
    assert left is not None and right is not None
    yy, xx = np.mgrid[0:man.resolution, 0:man.resolution] + 0.5
    changed = np.any(winked != face, axis=-1)
    assert not changed[xx < left.centre[0] + left.width / 2].any()  # the image-left eye stays open
    assert changed[np.hypot(xx - right.centre[0], yy - right.centre[1]) < 0.3 * right.width].any()
    openness = expression.eye_openness(moved)
    assert openness[0] == pytest.approx(expression.eye_openness(points)[0]) and openness[1] < 1e-6
    with pytest.raises(ValueError, match="not within 0"):
        close_eyes(face, points, 1.5)
    with pytest.raises(ValueError, match="478 points"):
        move_points(points[:468], 1.0)


def test_the_warp_is_deterministic_and_its_inverse_is_exact(man: Faceset) -> None:
    face, points = _face(man, 7)
    first, second = close_eyes(face, points, (0.7, 0.9)), close_eyes(face.copy(), points.copy(), (0.7, 0.9))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    from facegraft.training.blink import backward_v, forward_v

    frame = eye_frame(points, 0)
    assert frame is not None
    rng = np.random.default_rng(0)
    u = rng.uniform(-frame.width / 2, frame.width / 2, 2000)
    v = rng.uniform(-frame.width, frame.width / 2, 2000)
    for amount in (0.3, 0.9):
        np.testing.assert_allclose(backward_v(frame, amount, u, forward_v(frame, amount, u, v)), v, atol=1e-9)


def test_synthetic_blinks_join_the_training_faces_only(man: Faceset, capsys) -> None:
    data = {"man": IdentityData("man", [man]).measure()}
    train, held = split_validation(data, 0.25)
    before = train["man"]
    added = add_synthetic_blinks(before, 1.0, np.random.default_rng(3))
    n = len(before)
    assert len(added) == 2 * n and added.synthetic is not None and len(added.synthetic) == n
    assert f"{n} faces of 'man' with synthetic blinks" in capsys.readouterr().err
    assert before.synthetic is None and len(before) == n  # the input is left as it was
    assert held["man"].synthetic is None and (held["man"].rows[:, 0] == 0).all()  # validation stays real
    assert added.measures is not None and before.measures is not None
    synthetic = added.synthetic
    origins = {tuple(r) for r in synthetic.picks.tolist()}
    assert origins <= {tuple(r) for r in before.rows.tolist()}  # made from training faces only
    assert not origins & {tuple(r) for r in held["man"].rows.tolist()}

    new = added.measures[n:]
    picks = [int(np.flatnonzero((before.rows == row).all(1))[0]) for row in synthetic.picks]
    np.testing.assert_allclose(new[:, EYES], expression.eye_openness(synthetic.landmarks.astype(np.float64)))
    others = [k for k in range(len(MEASURES)) if k not in EYES]
    np.testing.assert_array_equal(new[:, others], before.measures[picks][:, others])
    amounts = synthetic.amounts
    assert ((amounts >= 0) & (amounts <= 1)).all() and len({tuple(a) for a in amounts.round(6)}) > 1
    blinks = (amounts > 0.8).all(1)
    assert blinks.any() and (new[blinks][:, EYES] < expression.EYE_SHUT).all()
    origin_points = np.stack([man.landmarks[i] for _, i in synthetic.picks]).astype(np.float64)
    assert (new[:, EYES] <= expression.eye_openness(origin_points) + 1e-9).all()  # no eye opens

    # a synthetic face is its origin with the eyes closed; its mattes are the origin's
    j = int(np.flatnonzero(blinks)[0])
    k, i = synthetic.picks[j]
    expected = close_eyes(man.faces[i], man.landmarks[i], amounts[j])[0]
    np.testing.assert_array_equal(synthetic.faces[j], expected)
    faces, mattes = added.load([n + j, picks[j]], man.resolution)
    np.testing.assert_array_equal(faces[0].permute(1, 2, 0).numpy(), expected.astype(np.float32))
    assert not torch.equal(faces[0], faces[1])
    torch.testing.assert_close(mattes[0], mattes[1])
    remeasured = added.subset(np.arange(len(added))).measure()  # from the synthetic faces' own records
    np.testing.assert_allclose(remeasured.measures, added.measures, atol=1e-4)
    assert added.balance(1.0).weights is not None and len(added.weights) == 2 * n

    again = add_synthetic_blinks(before, 1.0, np.random.default_rng(3))
    assert again.synthetic is not None
    np.testing.assert_array_equal(again.synthetic.amounts, amounts)
    np.testing.assert_array_equal(again.synthetic.picks, synthetic.picks)
    assert add_synthetic_blinks(before, 0.0, np.random.default_rng(3)) is before


def test_identities_without_open_eyes_or_landmarks_are_left_as_they_are(man: Faceset, clip_facesets, capsys) -> None:
    squinting = IdentityData("man", [man]).measure()
    assert squinting.measures is not None
    squinting.measures[:, EYES] = 0.12
    assert add_synthetic_blinks(squinting, 0.5, np.random.default_rng(0)) is squinting
    assert "no synthetic blinks for 'man'" in capsys.readouterr().err
    fake = IdentityData("woman", [open_faceset(clip_facesets[1])]).measure()  # landmarks all on one point
    assert add_synthetic_blinks(fake, 0.5, np.random.default_rng(0)) is fake
    assert "no synthetic blinks for 'woman'" in capsys.readouterr().err


def test_the_coverage_check_points_a_rarely_shut_source_to_synthetic_blinks(man: Faceset, tmp_path: Path) -> None:
    plate = _shut_copy(man, tmp_path / "plate", "double")
    report = check_coverage([man.path], [plate])
    assert any("shuts its eyes" in w and "--synthetic-blinks" in w and str(man.path) in w for w in report.warnings)
    assert report.data["source_rarely_shuts_eyes"] is True
    both = check_coverage([man.path, plate], [plate])  # a source that shuts its eyes often is not told so
    assert len(open_faceset(plate)) >= coverage.FEW_SHUT
    assert not any("--synthetic-blinks" in w for w in both.warnings) and both.data["source_rarely_shuts_eyes"] is False


def test_the_training_option_closes_the_source_s_eyes(man: Faceset, tmp_path: Path, monkeypatch, capsys) -> None:
    assert build_parser().parse_args(["train", "--faceset", "a", "--faceset", "b", "--out", "r"]).synthetic_blinks == \
        loop.TrainConfig(facesets=[], out="").synthetic_blinks == 0.0
    plate = _shut_copy(man, tmp_path / "plate", "double")
    fed: dict[str, IdentityData] = {}
    feeder_for = loop.feeder_for

    def watch(data, *args, **kwargs):
        fed.update(data)
        return feeder_for(data, *args, **kwargs)

    monkeypatch.setattr(loop, "feeder_for", watch)
    run = tmp_path / "run"
    common = ["--faceset", str(man.path), "--faceset", str(plate), "--out", str(run), "--width", "4", "--latent", "8",
              "--batch", "2", "--preview-every", "0", "--no-tensorboard", "--threads", "1", "--val", "0.25"]
    assert main(["train", *common, "--steps", "2", "--synthetic-blinks", "0.5"]) == 0
    assert "synthetic blinks added" in capsys.readouterr().err
    # the source (the first faceset's identity, no --source given) trains on its faces and as many
    # again half; the plate's identity and the held-out faces are as they were
    added = round(0.5 * 9)
    assert fed["man"].synthetic is not None and len(fed["man"]) == 9 + added and fed["double"].synthetic is None
    saved = json.loads((run / "train.json").read_text())
    assert saved["train"]["synthetic_blinks"] == 0.5 and saved["synthetic_blinks"] == {"man": added}
    assert saved["held_out"] == {"man": 3, "double": 3}
    assert load_checkpoint(run)["train"]["synthetic_blinks"] == 0.5
    assert main(["train", *common, "--steps", "3", "--synthetic-blinks", "0.5", "--resume"]) == 0  # the same faces again
    assert len(fed["man"].synthetic) == added  # type: ignore[arg-type]

    fed.clear()  # --source names the identity; the plate's faces all have their eyes shut: none are made
    assert main(["train", *common[:5], str(tmp_path / "other"), *common[6:], "--steps", "1",
                 "--synthetic-blinks", "0.5", "--source", "double"]) == 0
    assert fed["double"].synthetic is None and fed["man"].synthetic is None
    assert "no synthetic blinks for 'double'" in capsys.readouterr().err
    assert main(["train", *common[:5], str(tmp_path / "bad"), *common[6:], "--steps", "1",
                 "--synthetic-blinks", "2"]) == 2
    assert "--synthetic-blinks 2.0 is not a fraction" in capsys.readouterr().err
