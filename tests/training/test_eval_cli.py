"""The quality report and the extract / train / export / eval commands end to end (tiny sizes)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import clip_faceset

from facegraft.cli.main import main
from facegraft.training.evaluate import evaluate, eye_metrics, follows, masked_psnr, masked_ssim, summary


def test_image_metrics_rank_closer_images_higher() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.6, (32, 32, 3)).astype(np.float32)
    matte = np.ones((32, 32), np.float32)
    near, far = a + 0.01 * rng.standard_normal(a.shape), a + 0.1 * rng.standard_normal(a.shape)
    assert masked_psnr(a, near, matte) > masked_psnr(a, far, matte)
    assert masked_ssim(a, a, matte) > 0.999 > masked_ssim(a, near, matte) > masked_ssim(a, far, matte)


def test_cli_extract_train_export_eval(man_extract, single_face_plate: str, clip_facesets, tmp_path: Path, capsys) -> None:
    track = man_extract.track_path
    man = str(tmp_path / "man")
    assert main(["extract", single_face_plate, "--identity", "man", "--out", man, "--res", "64", "--track", track,
                 "--min-motion", "0", "--frames", "1001-1006"]) == 0
    woman = clip_faceset(tmp_path / "woman", "woman", res=64)
    run = str(tmp_path / "run")
    common = ["--faceset", man, "--faceset", str(woman), "--out", run, "--res", "64", "--width", "4",
              "--latent", "8", "--batch", "2", "--preview-every", "0", "--no-tensorboard", "--threads", "1"]
    assert main(["train", *common, "--steps", "2"]) == 0
    assert main(["train", *common, "--steps", "3"]) == 2  # run exists, no --resume: refused, nothing lost
    assert main(["train", *common, "--steps", "3", "--resume"]) == 0
    model = str(tmp_path / "m.onnx")
    assert main(["export", run, "--source", "woman", "--target", "nobody", "--out", model]) == 2
    assert "no identity 'nobody'" in capsys.readouterr().err and not Path(model).exists()
    assert main(["export", run, "--source", "woman", "--target", "man", "--out", model, "--fp16"]) == 0
    assert "max abs difference" in capsys.readouterr().out
    assert main(["eval", "--model", model, "--plate", single_face_plate, "--track", track, "--out",
                 str(tmp_path / "report"), "--frames", "1001-1003", "--no-identity", "--no-expression"]) == 0
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["model"]["steps"] == 3 and saved["frames"] == [1001, 1002, 1003]


def test_eval_report(tiny_run: Path, man_extract, single_face_plate: str, clip_facesets, wolfgang_plate: str,
                     wolfgang_track: str, tmp_path: Path) -> None:
    from facegraft.training.export import export_model

    model = export_model(tiny_run, source="woman", target="man", out=tmp_path / "m.onnx").path
    report = evaluate(model, single_face_plate, man_extract.track_path, tmp_path / "report",
                      faceset=clip_facesets[1], frames="1001-1004", source_plate=wolfgang_plate,
                      source_track=wolfgang_track)
    m = report.metrics
    assert report.frames == [1001, 1002, 1003, 1004]
    assert m["self_reconstruction"]["faces"] == 12 and np.isfinite(m["self_reconstruction"]["psnr_db"])
    assert m["identity"]["status"] == "ok" and m["identity"]["swap_to_source"] > 0
    assert m["identity"]["margin"] == pytest.approx(m["identity"]["swap_to_target"] - m["identity"]["swap_to_source"])
    assert m["identity"]["frames"] == 4 and "full-resolution" in m["identity"]["measured_on"]
    assert m["identity"]["plate_to_source"] > 0.6  # the man and the woman, on dlib's own chips, are two people
    assert 0 < m["expression"]["nme_mean"] < 1 and m["flicker"]["ratio"] >= 0
    # a model trained for 8 steps paints no face FaceMesh can find: those frames are counted, not measured
    found = m["landmarks"]["face_found_on_swap"]
    assert m["landmarks"]["face_found_on_plate"] == 4 and m["eyes"]["frames"] == m["mouth"]["frames"] == found
    assert (m["expression"]["nme_composite"] is None) == (found == 0)
    assert len(report.per_frame["eye_left_swap"]) == 4 and len(report.per_frame["yaw_plate"]) == 4
    assert any("used in training" in n for n in report.notes)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["metrics"]["identity"] == m["identity"]
    for name in ("identity.png", "expression.png", "flicker.png", "swaps.png", "eyes.png", "mouth.png", "gaze.png",
                 "pose.png", "blinks.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
    assert any(line.startswith("eyes: correlation") for line in summary(report))


# -- following the plate: blinks, a frozen face, the plate itself ---------------------------------------------------
def test_events_count_a_blink_once_and_see_whether_the_swap_shows_it() -> None:
    plate = np.array([0.3, 0.3, 0.14, 0.16, 0.14, 0.05, 0.18, 0.3, 0.3, 0.05, 0.05, 0.3])  # wavers at 0.15: one blink
    shows = plate.copy()
    frozen = np.full_like(plate, 0.3)
    late = np.array([0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1, 0.3, 0.3])  # shows only the second
    assert follows(plate, shows, 0.15, 0.2, below=True)["events"] == 2
    assert follows(plate, shows, 0.15, 0.2, below=True)["events_shown"] == 2
    assert follows(plate, frozen, 0.15, 0.2, below=True)["events_shown"] == 0
    assert follows(plate, frozen, 0.15, 0.2, below=True)["correlation"] is None  # a swap that never moves
    m = follows(plate, late, 0.15, 0.2, below=True)
    assert m["events_shown"] == 1 and m["event_frames"] == 5 and m["event_frames_shown"] == 1
    eyes = eye_metrics(np.stack([plate, plate], 1), np.stack([shows, frozen], 1))
    assert eyes["left"]["correlation"] == pytest.approx(1.0) and eyes["right"]["correlation"] is None
    assert eyes["blinks_on_plate"] == 2


def _constant_face_model(path: Path, face: np.ndarray) -> Path:
    """A FaceGraft model whose swap is always ``face`` (``[R, R, 3]`` model space), mask ones."""
    from onnx import TensorProto, helper, numpy_helper

    from facegraft.inference.models import modelfile

    res = face.shape[0]
    inits = [numpy_helper.from_array(np.ascontiguousarray(face.transpose(2, 0, 1)[None], np.float32), "const"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "s0"), numpy_helper.from_array(np.array([1], np.int64), "s1")]
    nodes = [helper.make_node("Mul", ["face", "zero"], ["zeros"]), helper.make_node("Add", ["zeros", "const"], ["swap"]),
             helper.make_node("Slice", ["zeros", "s0", "s1", "s1"], ["first"]),
             helper.make_node("Add", ["first", "one"], ["mask"])]
    graph = helper.make_graph(nodes, "constant_face", [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 3, res, res])],
                              [helper.make_tensor_value_info("swap", TensorProto.FLOAT, ["N", 3, res, res]),
                               helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, res, res])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    stamped = modelfile.stamp(model, resolution=res, coverage="whole_face", colorspace="ACEScct", source="man",
                              target="woman", provenance={"steps": 0, "shots": ["test"], "date": "2024-01-01"})
    return modelfile.save(stamped, path)


@pytest.fixture(scope="module")
def wolfgang_track(wolfgang_plate: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The woman's plate tracked (frames 1001-1024 = clip frames 0-23: eyes half open, then shut from 1017)."""
    from facegraft.inference.io.frames import open_source
    from facegraft.inference.track.tracker import track_shot
    from facegraft.inference.track.trackfile import save_track

    path = str(tmp_path_factory.mktemp("wolfgang_track") / "w.fgtrack.json")
    save_track(track_shot(open_source(wolfgang_plate)), path)
    return path


def test_a_swap_that_keeps_the_plates_eyes_shows_its_blink(wolfgang_plate: str, wolfgang_track: str,
                                                            tmp_path: Path) -> None:
    """A model passing the plate's face through (at 256 px) follows it; measuring the plate itself as
    the render follows it exactly."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
    from render_models import build_identity_model

    model = build_identity_model(tmp_path / "through.onnx", res=256, mask="ellipse")
    report = evaluate(model, wolfgang_plate, wolfgang_track, tmp_path / "through", frames="1008-1024",
                      identity_frames=3)
    eyes = report.metrics["eyes"]
    assert eyes["blinks_on_plate"] == 1 and eyes["blinks_shown"] == 1
    assert eyes["correlation"] > 0.8 and eyes["mean_error"] < 0.03
    assert report.metrics["head_pose"]["mean_error_deg"] < 1.5
    assert report.metrics["identity"]["swap_to_target"] < 0.2 and report.metrics["identity"]["frames"] == 3
    exact = evaluate(model, wolfgang_plate, wolfgang_track, tmp_path / "plate", frames="1008-1024", identity=False,
                     render=wolfgang_plate)
    assert exact.metrics["eyes"]["mean_error"] == 0.0 and exact.metrics["eyes"]["correlation"] == pytest.approx(1.0)
    assert exact.metrics["head_pose"]["mean_error_deg"] == 0.0


def test_a_frozen_open_eyed_face_shows_no_blink(wolfgang_plate: str, wolfgang_track: str, single_face_plate: str,
                                                man_extract, tmp_path: Path) -> None:
    from facegraft.inference.io import colour
    from facegraft.inference.io.frames import open_source
    from facegraft.inference.track.trackfile import load_track
    from facegraft.training.extract import model_crop

    man = load_track(man_extract.track_path)
    frame = open_source(single_face_plate).read(1001)
    found = man.face(1001)
    assert found is not None
    face = model_crop(frame, found, 256, "whole_face", colour.converter(colour.DEFAULT_PLATE_SPACE, "ACEScct"))
    model = _constant_face_model(tmp_path / "frozen.onnx", face)
    report = evaluate(model, wolfgang_plate, wolfgang_track, tmp_path / "frozen", frames="1008-1024", identity=False)
    eyes = report.metrics["eyes"]
    assert eyes["blinks_on_plate"] == 1 and eyes["blinks_shown"] == 0 and eyes["shut_frames_shown"] == 0
    assert eyes["mean_error"] > 0.1
    assert (tmp_path / "frozen" / "blinks.png").stat().st_size > 1000
