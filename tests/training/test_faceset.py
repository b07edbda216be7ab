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
