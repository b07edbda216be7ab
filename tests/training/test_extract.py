"""Facesets cut from a real EXR plate with the real tracker: count, alignment, render parity."""
from __future__ import annotations

import numpy as np
import pytest

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.io.frames import open_source
from facegraft.inference.models.face_model import load as load_model
from facegraft.inference.render.renderer import FrameRenderer
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import align
from facegraft.inference.track.trackfile import load_track
from facegraft.training.extract import extract
from facegraft.training.faceset import open_faceset


def test_every_frame_becomes_one_aligned_face(man_extract) -> None:
    fs = man_extract.faceset
    assert len(fs) == 12 and man_extract.added == 12
    assert [e["frame"] for e in fs.entries] == list(range(1001, 1013))
    assert fs.faces.shape == (12, 64, 64, 3) and fs.resolution == 64 and fs.colorspace == "ACEScct"
    eyes_expected = align.template_points_in_crop(64, "whole_face")[:2]
    lm = fs.landmarks
    eyes = np.stack([lm[:, list(align.EYE_LEFT)].mean(1), lm[:, list(align.EYE_RIGHT)].mean(1)], 1)
    assert np.abs(eyes - eyes_expected).max() < 2.0  # px at 64 px
    face = fs.matte("face")
    assert face[:, 32, 32].min() == 1.0 and face[:, 1, 1].max() == 0.0  # centre in the matte, corner out
    assert fs.matte("left_eye").sum() > 0 and fs.matte("mouth").sum() > 0
    assert (fs.path / "preview.png").stat().st_size > 1000


def test_every_face_records_its_expression_from_the_unsmoothed_track(man_extract) -> None:
    """Openness comes from the raw lids (a blink survives the smoothing), as the tracker measured it."""
    from facegraft.inference.track import expression

    track = load_track(man_extract.track_path)
    for entry in man_extract.faceset.entries:
        found = track.face(entry["frame"])
        want = expression.measures(found.landmarks, found.landmarks_raw)
        got = expression.from_record(entry["expression"])
        assert np.allclose(got, want, atol=1e-3, equal_nan=True), (entry["frame"], got, want)  # saved rounded
    assert np.isfinite(man_extract.faceset.measures()[:, :3]).all()


def test_training_crops_are_the_renderers_model_input(man_extract, single_face_plate, tmp_path) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
    from render_models import build_identity_model

    model = load_model(build_identity_model(tmp_path / "m.onnx", res=64), device="cpu")
    source = open_source(single_face_plate)
    track = load_track(man_extract.track_path)
    renderer = FrameRenderer(source, track, model, str(tmp_path / "out.####.exr"), RenderSettings())
    for index in (0, 7):
        job = renderer.prepare(1001 + index)
        assert job.crop is not None
        np.testing.assert_array_equal(
            job.crop.transpose(1, 2, 0).astype(np.float16), man_extract.faceset.faces[index])


def test_extracting_again_appends_nothing_new_and_other_settings_are_refused(man_extract, single_face_plate) -> None:
    out = man_extract.faceset.path
    again = extract(single_face_plate, identity="man", out=out, res=64, min_motion=0.0, track=man_extract.track_path)
    assert again.added == 0 and again.already_there == 12 and len(open_faceset(out)) == 12
    with pytest.raises(FaceGraftError, match="cannot append"):
        extract(single_face_plate, identity="man", out=out, res=128, track=man_extract.track_path)


def test_near_duplicate_frames_are_dropped(man_extract, single_face_plate, tmp_path) -> None:
    report = extract(single_face_plate, identity="man", out=tmp_path / "fs", res=64, min_motion=0.5,
                     track=man_extract.track_path)
    assert report.added + report.duplicates == 12 and 1 <= report.added < 12


def test_a_plate_without_the_face_asked_for_says_so(man_extract, single_face_plate, tmp_path) -> None:
    with pytest.raises(FaceGraftError, match="empty"):
        extract(single_face_plate, identity="man", out=tmp_path / "fs", res=64, face="99", track=man_extract.track_path)
    with pytest.raises(FaceGraftError, match="neither 'largest' nor a track id"):
        extract(single_face_plate, identity="man", out=tmp_path / "fs2", res=64, face="biggest")


def test_model_space_is_acescct(man_extract) -> None:
    fs = man_extract.faceset
    assert fs.colorspace == colour.DEFAULT_MODEL_SPACE
    values = fs.faces[..., 0].astype(np.float32)
    assert 0.0 < values.mean() < 0.7  # log-encoded skin, not linear
