"""`facegraft coverage` on facesets extracted from the sample footage with the real tracker."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import pytest

from facegraft.cli.main import main
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.track import expression
from facegraft.training.coverage import check_coverage
from facegraft.training.faceset import EXPRESSION, Faceset, FacesetWriter, open_faceset


@pytest.fixture(scope="module")
def woman(wolfgang_plate: str, tmp_path_factory: pytest.TempPathFactory) -> Faceset:
    """64 px faces of the woman's plate (1001-1024 = clip frames 0-23: eyes half open, then shut from 1017)."""
    from facegraft.training.extract import extract

    out = tmp_path_factory.mktemp("coverage") / "woman"
    return extract(wolfgang_plate, identity="woman", out=out, res=64, min_motion=0.0).faceset


def copy_faceset(fs: Faceset, folder: Path, *, res: Optional[int] = None, count: Optional[int] = None,
                 move: Optional[Callable[[np.ndarray], np.ndarray]] = None, records: Optional[bool] = None) -> Path:
    """A copy of ``fs`` (its first ``count`` faces), resized to ``res``, landmarks changed by ``move``;
    expression records measured on the copied landmarks (True), none (False), or as stored (None,
    without ``move``)."""
    res = res or fs.resolution
    k = res / fs.resolution
    with FacesetWriter(folder, identity=fs.identity + "_copy", resolution=res, coverage=fs.coverage,
                       colorspace=fs.colorspace, ocio_config=fs.ocio_config, template=fs.template, min_motion=0.0,
                       matte_names=tuple(fs.matte_names)) as writer:
        for i in range(count or len(fs)):
            face = cv2.resize(np.asarray(fs.faces[i], np.float32), (res, res), interpolation=cv2.INTER_AREA)
            marks = np.asarray(fs.landmarks[i], np.float64) * k
            if move is not None:
                marks = move(marks)
            mattes = {name: cv2.resize(fs.matte(name)[i], (res, res)) for name in fs.matte_names}
            stored = fs.entries[i].get(EXPRESSION) if records is None and move is None else None
            extra = {EXPRESSION: expression.record(marks)} if records else {EXPRESSION: stored} if stored else {}
            writer.add(face, mattes, marks, source=fs.entries[i]["source"], frame=fs.entries[i]["frame"], **extra)
    return folder


def test_shut_eyes_the_source_never_shows_are_reported(man_extract, woman: Faceset, tmp_path: Path) -> None:
    report = check_coverage([man_extract.faceset.path], [woman.path], tmp_path / "report")
    faces = report.data["plate_faces"]
    assert report.faces == len(woman) == len(faces)
    shut = [f for f in faces if f["frame"] >= 1017]
    assert shut and all(not f["covered"] and f["missing"][0] == "eyes shut" for f in shut)
    assert all(f["measures"]["eyes"] < expression.EYE_SHUT for f in shut)
    assert "eyes shut" in report.verdict and f"of {report.faces})" in report.verdict
    assert report.data["ranges"]["source"]["eyes"][0] > expression.EYE_OPEN  # the man keeps his eyes open
    saved = json.loads((tmp_path / "report" / "coverage.json").read_text())
    assert saved["verdict"] == report.verdict and len(saved["plate_faces"][0]["nearest"]) == 3
    for name in ("worst.png", "coverage.png"):
        assert (tmp_path / "report" / name).stat().st_size > 5000


def test_a_faceset_covers_itself(woman: Faceset, tmp_path: Path) -> None:
    report = check_coverage([woman.path], [woman.path])
    assert report.covered == report.faces and report.verdict.startswith("Covered")
    assert all(f["distance"] == 0 for f in report.data["plate_faces"])


def test_an_open_mouth_nowhere_in_the_source_is_named_with_the_faceset(man_extract, tmp_path: Path) -> None:
    def jaw_dropped(marks: np.ndarray) -> np.ndarray:
        out = marks.copy()
        width = np.linalg.norm(out[expression.MOUTH_CORNERS[0]] - out[expression.MOUTH_CORNERS[1]])
        out[list(expression.MOUTH_LOWER)] += [0.0, 0.6 * width]
        return out

    target = copy_faceset(man_extract.faceset, tmp_path / "open", move=jaw_dropped)
    report = check_coverage([man_extract.faceset.path], [target])
    assert report.covered == 0 and set(report.reasons) == {"mouth open"}
    assert "mouth open" in report.verdict and str(man_extract.faceset.path) in report.verdict
    assert any("covers none" in w and str(man_extract.faceset.path) in w for w in report.warnings)


def test_stored_records_come_first_and_old_facesets_are_warned_about(man_extract, tmp_path: Path) -> None:
    fs = open_faceset(copy_faceset(man_extract.faceset, tmp_path / "old", records=False))  # as an older FaceGraft wrote
    with_records = open_faceset(copy_faceset(fs, tmp_path / "records", records=True))
    assert with_records.unmeasured() == 0 and fs.unmeasured() == len(fs)
    assert np.allclose(with_records.measures(), fs.measures(), atol=1e-3)
    # the record wins over the stored landmarks (it was measured on the raw, unsmoothed ones)
    entries = json.loads((with_records.path / "faceset.json").read_text())
    entries["faces"][0][EXPRESSION]["eye_left"] = 0.01
    (with_records.path / "faceset.json").write_text(json.dumps(entries))
    assert open_faceset(with_records.path).measures()[0, 0] == pytest.approx(0.01)
    report = check_coverage([fs.path], [with_records.path])
    old = [w for w in report.warnings if "no stored expression record" in w]
    assert len(old) == 1 and str(fs.path) in old[0]


def test_one_face_and_another_resolution_are_warned_about(man_extract, tmp_path: Path) -> None:
    fs = man_extract.faceset
    single = copy_faceset(fs, tmp_path / "single", count=1)
    bigger = copy_faceset(fs, tmp_path / "bigger", res=128, records=False)
    report = check_coverage([single], [fs.path])
    assert any("single face" in w and str(single) in w for w in report.warnings)
    report = check_coverage([bigger], [fs.path])
    assert any("128 px" in w and str(bigger) in w for w in report.warnings)
    # measures are ratios and angles: the same faces at twice the size measure the same
    same = copy_faceset(fs, tmp_path / "same", records=False)
    assert np.allclose(open_faceset(bigger).measures(), open_faceset(same).measures(), atol=1e-3)


def test_degenerate_landmarks_are_refused_naming_the_faceset(clip_facesets: list[Path], man_extract) -> None:
    with pytest.raises(FaceGraftError) as caught:  # the clip facesets' landmarks are placeholders
        check_coverage([man_extract.faceset.path], [clip_facesets[1]])
    assert caught.value.path == str(clip_facesets[1]) and "target" in caught.value.message


def test_cli(man_extract, woman: Faceset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert main(["coverage", "--source", str(man_extract.faceset.path), "--target", str(woman.path), "--out", str(out),
                 "--worst", "4"]) == 0
    printed = capsys.readouterr()
    assert "have no source face within 1" in printed.out and "worst.png" in printed.out
    assert (out / "coverage.json").is_file()
    assert main(["coverage", "--source", str(tmp_path / "nothing"), "--target", str(woman.path), "--out", str(out)]) != 0
    assert "not a faceset" in capsys.readouterr().err



def test_training_warns_before_any_step_when_the_source_covers_no_plate_face(man_extract, tmp_path: Path,
                                                                             capsys) -> None:
    from synthetic import tiny_config

    from facegraft.training.loop import train

    def jaw_dropped(marks: np.ndarray) -> np.ndarray:
        out = marks.copy()
        width = np.linalg.norm(out[expression.MOUTH_CORNERS[0]] - out[expression.MOUTH_CORNERS[1]])
        out[list(expression.MOUTH_LOWER)] += [0.0, 0.6 * width]
        return out

    source = copy_faceset(man_extract.faceset, tmp_path / "source", res=32)
    plate = copy_faceset(man_extract.faceset, tmp_path / "plate", res=32, move=jaw_dropped)
    same = copy_faceset(man_extract.faceset, tmp_path / "same", res=32)
    for folder in (plate, same):  # the copies share an identity: make the plate's another person
        index = json.loads((folder / "faceset.json").read_text())
        index["identity"] = "double"
        (folder / "faceset.json").write_text(json.dumps(index))
    capsys.readouterr()
    train(tiny_config([source, plate], tmp_path / "run", steps=1, source="man_copy"))
    err = capsys.readouterr().err
    assert "warning:" in err and "covers none of the plate's" in err and str(source) in err

    train(tiny_config([source, same], tmp_path / "run2", steps=1, source="man_copy"))  # the same faces: covered
    assert "covers none" not in capsys.readouterr().err
