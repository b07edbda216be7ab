"""The per-shot occlusion model: trained from roto keyframes of sunglasses composited over the man's
plate, exported as an occlusion model file, applied to other frames; and the refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from occluders import glasses_shot_on

from facegraft.cli.main import main as cli_main
from facegraft.inference.errors import FaceGraftError, ModelFileError
from facegraft.inference.io import colour, exr
from facegraft.inference.io.frames import open_source
from facegraft.inference.io.sequence import SequencePattern
from facegraft.inference.models import formats
from facegraft.inference.models import occlusion as occlusion_file
from facegraft.inference.track import align, tracker
from facegraft.inference.track.trackfile import load_track, save_track
from facegraft.training import occlusion

KEYS = (1002, 1006, 1010)
RES = 64


@pytest.fixture(scope="module")
def glasses_shot(tmp_path_factory: pytest.TempPathFactory, single_face_plate: str) -> dict:
    """The man's 12 frames with sunglasses sliding on over frames 1005-1007, their roto, the track."""
    folder = tmp_path_factory.mktemp("glasses")
    made = glasses_shot_on(open_source(single_face_plate), folder)
    track = str(folder / "sh010.fgtrack.json")
    save_track(made.track, track)
    return {"folder": folder, "plate": made.plate, "roto": made.roto, "track": track, "alphas": made.alphas}


@pytest.fixture(scope="module")
def trained(glasses_shot: dict) -> occlusion.OcclusionReport:
    cfg = occlusion.OcclusionConfig(res=RES, steps=160)
    return occlusion.train_occlusion(open_source(glasses_shot["plate"]), load_track(glasses_shot["track"]),
                                     glasses_shot["roto"], frames=KEYS, out=glasses_shot["folder"] / "occ.onnx",
                                     cfg=cfg, plate_path=glasses_shot["plate"])


def test_the_model_file_describes_itself(trained: occlusion.OcclusionReport, glasses_shot: dict) -> None:
    info = occlusion_file.read(trained.path)
    assert (info.kind, info.resolution, info.coverage, info.template) == ("occlusion", RES, "whole_face", align.TEMPLATE_NAME)
    assert info.colorspace == colour.DEFAULT_MODEL_SPACE
    assert info.provenance["plate"]["display_window"] == [0, 0, 640, 360]
    assert info.provenance["plate"]["keyframes"] == list(KEYS) and info.provenance["steps"] == 160
    # the model-file registry knows the kind, and refuses it as a face model
    adapter, described = formats.read(trained.path)
    assert adapter.kind == "occlusion" and described.content_hash == info.content_hash
    with pytest.raises(ModelFileError, match="occlusion model, not a face model"):
        adapter.unpack([np.zeros((1, 1, RES, RES), np.float32)])
    assert trained.preview is not None and trained.preview.stat().st_size > 10_000
    assert trained.preview_frames and not set(trained.preview_frames) & set(KEYS)


def test_it_finds_the_glasses_on_frames_it_was_not_shown(trained: occlusion.OcclusionReport, glasses_shot: dict) -> None:
    model = occlusion_file.load(trained.path, device="cpu")
    source, track = open_source(glasses_shot["plate"]), load_track(glasses_shot["track"])
    to_model = colour.converter(colour.DEFAULT_PLATE_SPACE, colour.DEFAULT_MODEL_SPACE)
    worn, bare = [], []
    for i, frame in enumerate(source.frames):
        if frame in KEYS:
            continue
        plate, face = source.read(frame), track.face(frame)
        h, w = plate.shape
        predicted = model.matte(plate.rgb, plate.origin, face.transform, to_model, (0, h, 0, w))
        truth = glasses_shot["alphas"][i]
        if truth.max() > 0.5:
            worn.append(occlusion.iou(predicted, truth))
        else:
            bare.append(float((predicted >= 0.5).sum()) / float(predicted.size))
    assert len(worn) >= 4 and len(bare) >= 3
    assert np.mean(worn) > 0.6, worn  # 160 steps at 64 px; bench/occlusion.py measures the defaults
    assert max(bare) < 0.005, bare  # nothing found where nothing is


def test_the_model_runs_by_the_contract(trained: occlusion.OcclusionReport) -> None:
    model = occlusion_file.load(trained.path, device="cpu")
    crops = np.random.default_rng(0).uniform(0.1, 0.6, (3, 3, RES, RES)).astype(np.float32)
    out = model.predict(crops)
    assert out.shape == (3, RES, RES) and out.min() >= 0.0 and out.max() <= 1.0
    assert np.allclose(model.predict(crops[1:2])[0], out[1], atol=1e-6)  # alone or in a stack


def test_coverage_and_plate_checks(trained: occlusion.OcclusionReport) -> None:
    model = occlusion_file.load(trained.path, device="cpu")
    model.check_coverage("whole_face", "the face model")
    model.check_coverage("face", "the face model")
    with pytest.raises(ModelFileError, match="'whole_face' crops, smaller than the 'head' crops") as info:
        model.check_coverage("head", "face.onnx")
    assert str(trained.path) in str(info.value) and "--coverage head" in str(info.value)
    model.check_plate((0, 0, 640, 360), "plate.####.exr", 1001)
    with pytest.raises(ModelFileError, match="trained on a 640x360 plate, but frame 1003 of p.####.exr is 1280x720"):
        model.check_plate((0, 0, 1280, 720), "p.####.exr", 1003)


def test_a_face_model_is_refused_as_an_occlusion_model(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
    from render_models import build_identity_model

    path = build_identity_model(tmp_path / "face.onnx", res=64)
    with pytest.raises(ModelFileError, match="is a facegraft face model, not an occlusion model"):
        occlusion_file.read(path)


def test_a_changed_model_is_refused(trained: occlusion.OcclusionReport, tmp_path: Path) -> None:
    model = onnx.load(str(trained.path))
    meta = {p.key: p for p in model.metadata_props}
    meta["facegraft.resolution"].value = "96"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError, match="metadata says resolution 96"):
        occlusion_file.read(bad)


def _train(shot: dict, tmp_path: Path, **kwargs: object) -> occlusion.OcclusionReport:
    args: dict = {"frames": KEYS, "out": tmp_path / "x.onnx", "cfg": occlusion.OcclusionConfig(res=RES, steps=1),
                  "plate_path": shot["plate"], "roto": shot["roto"]}
    args.update(kwargs)
    roto = args.pop("roto")
    return occlusion.train_occlusion(open_source(shot["plate"]), load_track(shot["track"]), roto, **args)


def test_keyframes_outside_the_plate_are_named(glasses_shot: dict, tmp_path: Path) -> None:
    with pytest.raises(FaceGraftError, match="keyframe 1077 is outside the plate's frames") as info:
        _train(glasses_shot, tmp_path, frames="1002,1077")
    assert info.value.frame == 1077 and info.value.path == glasses_shot["plate"]


def test_a_roto_empty_on_every_keyframe_is_refused(glasses_shot: dict, tmp_path: Path) -> None:
    with pytest.raises(FaceGraftError, match=r"the roto is empty over the face on every keyframe \(1001-1003\)"):
        _train(glasses_shot, tmp_path, frames="1001-1003")


def test_a_roto_of_another_resolution_is_named(glasses_shot: dict, tmp_path: Path) -> None:
    folder = tmp_path / "roto"
    folder.mkdir()
    for frame in KEYS:
        exr.write_image(str(folder / f"r.{frame:04d}.exr"), np.ones((180, 320, 1), np.float16),
                        exr.new_spec(320, 180, ["A"], np.float16))
    with pytest.raises(FaceGraftError, match="the roto is 320x180 .* but the plate is 640x360") as info:
        _train(glasses_shot, tmp_path, roto=str(folder / "r.####.exr"))
    assert info.value.frame == KEYS[0] and info.value.path == str(folder / f"r.{KEYS[0]}.exr")


def test_a_missing_roto_frame_or_channel_is_named(glasses_shot: dict, tmp_path: Path) -> None:
    with pytest.raises(FaceGraftError, match="no channel 'matte'") as info:
        _train(glasses_shot, tmp_path, channel="matte")
    assert info.value.frame == KEYS[0]
    folder = tmp_path / "partial"
    folder.mkdir()
    source = SequencePattern(glasses_shot["roto"])
    (folder / Path(source.path(1002)).name).write_bytes(Path(source.path(1002)).read_bytes())
    with pytest.raises(FaceGraftError, match="no file for this keyframe") as info:
        _train(glasses_shot, tmp_path, roto=str(folder / "sh010_roto.####.exr"))
    assert info.value.frame == 1006


def test_the_command_line_trains_and_reports(glasses_shot: dict, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.onnx"
    code = cli_main(["occlusion", "train", glasses_shot["plate"], "--track", glasses_shot["track"],
                     "--roto", glasses_shot["roto"], "--frames", "1002,1010", "--out", str(out), "--res", "32",
                     "--steps", "3", "--json-progress"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events][0] == "start" and events[0]["total"] == 3
    result = events[-1]
    assert result["event"] == "result" and result["keyframes"] == [1002, 1010] and Path(result["model"]) == out
    assert (tmp_path / "cli.preview.png").is_file()
    code = cli_main(["occlusion", "train", glasses_shot["plate"], "--track", glasses_shot["track"],
                     "--roto", glasses_shot["roto"], "--frames", "999", "--out", str(out)])
    assert code == 2


# -- facesets: faces with a hand over them ------------------------------------------------------

@pytest.fixture(scope="module")
def woman_track(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Video frames 100-103 (her hand over her face) and 300-303 (no hand) of the woman's clip, tracked."""
    from facegraft.inference import assets

    clip = str(assets.footage_path("WolfgangLanger_Pexels.mp4"))
    shot = tracker.track_shot(open_source(clip, "100-103,300-303"),
                              tracker=tracker.FrameTracker(tracker.TrackerOptions(device="cpu")))
    path = str(tmp_path_factory.mktemp("woman") / "woman.fgtrack.json")
    save_track(shot, path)
    return clip, path


def test_extract_leaves_out_faces_a_hand_covers(woman_track: tuple[str, str], tmp_path: Path) -> None:
    from facegraft.training.extract import MAX_OCCLUSION, extract

    clip, track = woman_track
    shot = load_track(track)
    assert all(shot.face(n).occlusion > MAX_OCCLUSION for n in range(100, 104))
    report = extract(clip, identity="woman", out=tmp_path / "fs", res=64, frames="100-103,300-303", track=track,
                     min_motion=0.0)
    assert report.occluded == [100, 101, 102, 103] and report.masked == []
    assert [e["frame"] for e in report.faceset.entries] == [300, 301, 302, 303]
    loose = extract(clip, identity="woman", out=tmp_path / "loose", res=64, frames="100-103", track=track,
                    min_motion=0.0, max_occlusion=1.0)
    assert loose.occluded == [] and len(loose.faceset) == 4


def test_extract_can_mask_the_hands_from_the_loss_instead(woman_track: tuple[str, str], tmp_path: Path) -> None:
    from facegraft.inference.track import hands
    from facegraft.training.extract import extract

    clip, track = woman_track
    shot = load_track(track)
    report = extract(clip, identity="woman", out=tmp_path / "fs", res=64, frames="100-103,300-303", track=track,
                     min_motion=0.0, mask_occlusion=True)
    assert report.occluded == [] and report.masked == [100, 101, 102, 103] and len(report.faceset) == 8
    faces = report.faceset.matte("face")
    for i, entry in enumerate(report.faceset.entries):
        frame = entry["frame"]
        face = shot.face(frame)
        to_crop = align.crop_matrix(face.transform, 64, "whole_face")
        hand = hands.hands_matte([align.apply(to_crop, h.landmarks[:, :2]) for h in shot.frames[frame].hands], (64, 64))
        if frame < 300:
            assert hand.max() == 1.0 and faces[i][hand == 1.0].max() == 0.0  # the hand cut out of the face matte
            assert faces[i].sum() < 0.9 * faces[4:].sum(axis=(1, 2)).mean()
        else:
            assert hand.max() == 0.0


# -- model-info, and the face-model loader ----------------------------------------------------------

def test_model_info_describes_an_occlusion_model(trained: occlusion.OcclusionReport,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import re

    assert cli_main(["model-info", str(trained.path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["kind"], data["resolution"], data["coverage"], data["keyframes"]) == (
        "occlusion", RES, "whole_face", list(KEYS))
    assert data["provenance"]["plate"]["display_window"] == [0, 0, 640, 360] and data["provenance"]["steps"] == 160
    assert cli_main(["model-info", str(trained.path)]) == 0
    rows = dict(re.match(r"^(.*?)\s{2,}(.*)$", line).groups() for line in capsys.readouterr().out.splitlines())  # type: ignore[union-attr]
    assert rows["kind"] == "occlusion" and rows["resolution"] == f"{RES} x {RES}" and rows["coverage"] == "whole_face"
    assert rows["use"].startswith("an occlusion model: pass it to `facegraft render --occlusion`")
    assert rows["trained on"].startswith("a 640 x 360 plate: ") and rows["trained on"].endswith("sh010.####.exr")
    assert rows["roto"].endswith("sh010_roto.####.exr (channel A)") and rows["keyframes"] == "1002, 1006, 1010"
    assert re.match(r"^160 steps in [\d.]+ s$", rows["training"]) and "identities" not in rows
    assert rows["content hash"] == occlusion_file.read(trained.path).content_hash


def test_a_face_model_load_refuses_the_trained_occlusion_model(trained: occlusion.OcclusionReport) -> None:
    from facegraft.inference.models import face_model

    with pytest.raises(ModelFileError, match=r"this is an occlusion model \(from `facegraft occlusion train`\), not a "
                                             "face model") as info:
        face_model.load(trained.path, device="cpu")
    assert info.value.path == str(trained.path)


def test_the_crop_holds_the_face_model_s(tmp_path: Path, trained: occlusion.OcclusionReport) -> None:
    """`occlusion train --model FACE`: the coverage follows a larger face model; a smaller one is refused."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
    from render_models import build_identity_model

    from facegraft.cli.occlusion import coverage_for

    head = build_identity_model(tmp_path / "head.onnx", res=64, coverage="head")
    small = build_identity_model(tmp_path / "face.onnx", res=64, coverage="face")
    assert coverage_for(None, None) == "whole_face" and coverage_for("face", None) == "face"
    assert coverage_for(None, str(head)) == "head" and coverage_for(None, str(small)) == "whole_face"
    assert coverage_for("head", str(small)) == "head"
    with pytest.raises(FaceGraftError, match="--coverage whole_face does not hold the 'head' crops") as info:
        coverage_for("whole_face", str(head))
    assert info.value.path == str(head)
    with pytest.raises(FaceGraftError, match="--model takes the face model"):
        coverage_for(None, str(trained.path))
