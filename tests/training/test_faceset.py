"""Facesets on disk: writing, appending, refusing, near duplicates, damage."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facegraft.inference.errors import FaceGraftError
from facegraft.training.faceset import FacesetWriter, open_faceset

RES = 16


def _face(value: float) -> tuple[np.ndarray, dict, np.ndarray]:
    face = np.full((RES, RES, 3), value, np.float32)
    mattes = {n: np.full((RES, RES), 0.5, np.float32) for n in ("face", "left_eye", "right_eye", "mouth")}
    return face, mattes, np.zeros((478, 2), np.float32)


def _writer(path: Path, **kw) -> FacesetWriter:
    args = dict(identity="a", resolution=RES, coverage="whole_face", colorspace="ACEScct", min_motion=0.0)
    return FacesetWriter(path, **{**args, **kw})


def test_write_then_append_keeps_order_and_skips_faces_already_there(tmp_path: Path) -> None:
    with _writer(tmp_path / "fs") as w:
        for i in range(3):
            face, mattes, marks = _face(0.1 * i)
            w.add(face, mattes, marks + i, source="clip.mp4", frame=i)
    fs = open_faceset(tmp_path / "fs")
    assert len(fs) == 3 and fs.faces.shape == (3, RES, RES, 3) and fs.faces.dtype == np.float16
    assert (tmp_path / "fs" / "preview.png").stat().st_size > 0
    with _writer(tmp_path / "fs") as w:
        face, mattes, marks = _face(0.9)
        assert not w.add(face, mattes, marks, source="clip.mp4", frame=1)  # already there
        assert w.add(face, mattes, marks + 50, source="clip.mp4", frame=7)
    fs = open_faceset(tmp_path / "fs")
    assert [e["frame"] for e in fs.entries] == [0, 1, 2, 7]
    assert np.allclose(fs.faces[:, 0, 0, 0].astype(np.float32), [0.0, 0.1, 0.2, 0.9], atol=1e-3)
    assert np.allclose(fs.matte("face"), 128 / 255)


def test_append_with_other_settings_is_refused(tmp_path: Path) -> None:
    with _writer(tmp_path / "fs") as w:
        w.add(*_face(0.2), source="clip.mp4", frame=0)
    with pytest.raises(FaceGraftError, match="cannot append.*identity.*'a'.*'b'"):
        _writer(tmp_path / "fs", identity="b")
    with pytest.raises(FaceGraftError, match="resolution"):
        _writer(tmp_path / "fs", resolution=32)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(FaceGraftError, match="not a faceset"):
        _writer(tmp_path / "other")


def test_near_duplicates_are_dropped(tmp_path: Path) -> None:
    with _writer(tmp_path / "fs", min_motion=0.05) as w:  # 0.8 px at 16 px
        face, mattes, marks = _face(0.3)
        kept = [w.add(face, mattes, marks + shift, source="c", frame=i) for i, shift in enumerate([0, 0.2, 0.5, 2.0, 2.1])]
    assert kept == [True, False, False, True, False]
    assert len(open_faceset(tmp_path / "fs")) == 2


def test_empty_and_damaged_facesets_say_so(tmp_path: Path) -> None:
    _writer(tmp_path / "empty").close()
    with pytest.raises(FaceGraftError, match="holds no faces"):
        open_faceset(tmp_path / "empty")
    with pytest.raises(FaceGraftError, match="not a faceset"):
        open_faceset(tmp_path)
    with _writer(tmp_path / "fs") as w:
        w.add(*_face(0.2), source="clip.mp4", frame=0)
    (tmp_path / "fs" / "faces.f16").write_bytes(b"12")
    with pytest.raises(FaceGraftError, match="faces.f16 is shorter"):
        open_faceset(tmp_path / "fs")
    index = tmp_path / "fs" / "faceset.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "version": 99}))
    with pytest.raises(FaceGraftError, match="version 99"):
        open_faceset(tmp_path / "fs")


def test_an_interrupted_append_leaves_the_faceset_as_it_was(tmp_path: Path) -> None:
    with _writer(tmp_path / "fs") as w:
        w.add(*_face(0.2), source="clip.mp4", frame=0)
    w = _writer(tmp_path / "fs")
    w.add(*_face(0.4), source="clip.mp4", frame=1)
    for handle in w._files.values():  # killed before the index was committed
        handle.close()
    assert len(open_faceset(tmp_path / "fs")) == 1
    with _writer(tmp_path / "fs") as w:
        w.add(*_face(0.6), source="clip.mp4", frame=2)
    fs = open_faceset(tmp_path / "fs")
    assert [e["frame"] for e in fs.entries] == [0, 2]
    assert np.allclose(fs.faces[:, 0, 0, 0].astype(np.float32), [0.2, 0.6], atol=1e-3)


def _mesh(eyes: float = 0.3) -> np.ndarray:
    """478 landmarks with the lids ``eyes`` x the eye width apart (every other point at the origin)."""
    from facegraft.inference.track import expression

    points = np.zeros((478, 2), np.float32)
    for upper, lower, (a, b) in zip(expression.EYE_UPPER, expression.EYE_LOWER, expression.EYE_CORNERS):
        points[a], points[b] = (0.0, 5.0), (6.0, 5.0)
        points[list(upper)] = [(2.0, 5.0 - 3 * eyes), (3.0, 5.0 - 3 * eyes), (4.0, 5.0 - 3 * eyes)]
        points[list(lower)] = [(2.0, 5.0 + 3 * eyes), (3.0, 5.0 + 3 * eyes), (4.0, 5.0 + 3 * eyes)]
    return points


def test_a_blink_is_never_a_near_duplicate(tmp_path: Path) -> None:
    """A blink moves 12 of 478 points: far under the mean-motion threshold, but kept."""
    face, mattes, _ = _face(0.3)
    with _writer(tmp_path / "fs", min_motion=0.05) as w:  # 0.8 px at 16 px
        kept = [w.add(face, mattes, _mesh(eyes), source="c", frame=i) for i, eyes in enumerate([0.3, 0.3, 0.05, 0.3, 0.31])]
    assert kept == [True, False, True, True, False]
    record = {"eye_left": 0.3, "eye_right": 0.3, "mouth": 0.0}
    with _writer(tmp_path / "rec", min_motion=0.05) as w:  # the stored expression record decides when there is one
        kept = [w.add(face, mattes, _mesh(), source="c", frame=i, expression={**record, "mouth": mouth})
                for i, mouth in enumerate([0.0, 0.01, 0.3])]
    assert kept == [True, False, True]
    assert open_faceset(tmp_path / "rec").entries[1]["expression"]["mouth"] == 0.3


def test_balanced_draws_lift_the_rare_expressions() -> None:
    from facegraft.training.data import MEASURES, balanced_weights

    rng = np.random.default_rng(0)
    measures = np.zeros((100, len(MEASURES)))
    measures[:, :2] = rng.normal(0, 1.0, (100, 2))  # yaw, pitch: a few degrees of jitter, one bin or two
    measures[:, 2:4] = 0.32 + rng.normal(0, 0.005, (100, 2))  # eyes open (one 0.05 bin) ...
    measures[:5, 2:4] = 0.05  # ... but for a 5-frame blink
    measures[:, 4] = 0.02
    measures[90:, 4] = np.nan  # unknown mouth openness for ten faces: a bin of their own
    uniform = balanced_weights(measures, 0.0)
    assert np.allclose(uniform, 0.01)
    for amount in (0.5, 1.0):
        w = balanced_weights(measures, amount)
        assert w.sum() == pytest.approx(1.0) and (w > 0).all()
        # the blink, 5% of the faces, has half the bins of two measures of five: drawn 12% (0.5) to 20% (1) of the time
        assert w[:5].sum() > 0.04 + 0.16 * amount
        assert np.allclose(w[5:90].max(), w[5:90].min(), rtol=0.8)
    assert balanced_weights(measures, 1.0)[:5].sum() > balanced_weights(measures, 0.5)[:5].sum()


def test_the_loop_draws_a_faceset_by_its_weights(tmp_path: Path) -> None:
    import torch

    from facegraft.training.data import IdentityData

    with _writer(tmp_path / "fs") as w:
        for i in range(20):
            face, mattes, marks = _face(0.01 * i)
            w.add(face, mattes, marks + i, source="c", frame=i, expression={"eye_left": 0.05 if i < 2 else 0.3,
                                                                             "eye_right": 0.3, "mouth": 0.0, "yaw": 0.0,
                                                                             "pitch": 0.0, "roll": 0.0})
    data = IdentityData("a", [open_faceset(tmp_path / "fs")]).measure().balance(1.0)
    assert data.notes == []  # every face has its expression record
    g = torch.Generator().manual_seed(0)
    drawn = torch.cat([data.sample(g, 50, RES).measures[:, 2] for _ in range(20)])
    shut = float((drawn < 0.1).float().mean())
    assert 0.1 < shut < 0.3  # 2 of 20 faces, drawn a fifth of the time (one measure of five has a shut bin)
    assert data.sample(g, 4, RES).faces.shape == (4, 3, RES, RES)


def test_the_eye_weight_covers_a_shut_eye_as_much_as_an_open_one() -> None:
    from facegraft.training.data import feature_regions

    open_eye, shut_eye = _mesh(0.3) * 4, _mesh(0.02) * 4  # eyes 24 px wide in a 64 px crop
    regions = [feature_regions(points, 64) for points in (open_eye, shut_eye)]
    assert regions[0].sum() > 100 and regions[0].sum() == pytest.approx(regions[1].sum())
    assert feature_regions(np.zeros((478, 2)), 64).sum() == 0  # degenerate landmarks: no region
