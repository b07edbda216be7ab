"""Occlusion in a render: the woman's hand kept in front of the swap (--occlusion auto, from the
real tracker on her clip), an occlusion model's matte, the matte.occlusion layer, the plate bit for
bit where the swap is held off, and the refusals."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from render_fixtures import DISPLAY, FIRST, aligned_transform, make_plate, make_track
from render_models import OPSET, build_identity_model

from facegraft.inference import assets
from facegraft.inference.errors import ModelFileError
from facegraft.inference.io import exr
from facegraft.inference.io.frames import open_source
from facegraft.inference.io.ingest import ingest
from facegraft.inference.models import face_model
from facegraft.inference.models import occlusion as occlusion_file
from facegraft.inference.render import composite
from facegraft.inference.render.renderer import render_shot
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import hands, tracker
from facegraft.inference.track.trackfile import save_track

POINTS = json.loads((Path(__file__).with_name("data") / "hand_points.json").read_text())["frames"]
TINT = [0.3, -0.2, 0.1]  # the test model's swap: the face tinted (model space), so the swap shows
PLAIN = {"erode": 0.0, "feather": 4.0, "color_match": "none", "blend": "alpha"}


def read_layers(path: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Every channel of a render frame placed over the beauty's data window (0 off a layer part's
    window), and the beauty's header attributes."""
    images, index = exr.read_plate_parts(path)
    beauty = images[index]
    bx, by, bw, bh = beauty.data_window
    out: dict[str, np.ndarray] = {}
    for image in images:
        x, y, w, h = image.data_window
        for name in image.channels:
            plane = np.zeros((bh, bw), np.float32)
            plane[y - by:y - by + h, x - bx:x - bx + w] = image.get([name])[..., 0]
            out[name] = plane
    attrs = {a.name: a.value for a in beauty.spec.extra_attribs}
    return out, attrs


# -- the pure composite -----------------------------------------------------------------------

def test_the_swap_matte_is_the_face_matte_minus_occlusion_and_holdout() -> None:
    raw = np.full((20, 30), 1.0, np.float32)
    footprint = np.ones_like(raw)
    occlusion = np.zeros_like(raw)
    occlusion[:, :10] = 1.0
    occlusion[:, 10:15] = 0.5
    holdout = np.zeros_like(raw)
    holdout[:5] = 1.0
    matte = composite.shape_matte(raw, footprint, 0.0, 0.0, holdout, np.float32, occlusion)
    assert matte[10, :10].max() == 0.0 and matte[:5].max() == 0.0
    assert matte[10, 12] == pytest.approx(0.5) and matte[10, 20] == 1.0
    assert np.array_equal(matte, raw * (1 - occlusion) * (1 - holdout))


# -- hands on the woman's clip ----------------------------------------------------------------

@pytest.fixture(scope="module")
def hand_render(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Video frames 103-106 of the woman's clip (her hand over her face) as an EXR plate, tracked
    with hands, rendered with a tinting model with --occlusion auto and none."""
    root = tmp_path_factory.mktemp("hand")
    plate = str(root / "plate" / "woman.####.exr")
    ingest(str(assets.footage_path("WolfgangLanger_Pexels.mp4")), plate, start=1, frames="103-106")
    source = open_source(plate)
    shot = tracker.track_shot(source, tracker=tracker.FrameTracker(tracker.TrackerOptions(device="cpu")))
    track = str(root / "woman.fgtrack.json")
    save_track(shot, track)
    model = face_model.load(build_identity_model(root / "tint.onnx", 64, shift=TINT), device="cpu")
    outs = {}
    for mode in ("auto", "none"):
        outs[mode] = str(root / mode / "r.####.exr")
        render_shot(source, shot, model, outs[mode], RenderSettings(occlusion=mode, **PLAIN))
    return {"plate": plate, "track": track, "out": outs, "shot": shot}


def test_her_hand_stays_in_front_of_the_swap(hand_render: dict) -> None:
    shot = hand_render["shot"]
    for frame in (103, 105):
        plate = exr.read_image(hand_render["plate"].replace("####", f"{frame:04d}"))
        auto, attrs = read_layers(hand_render["out"]["auto"].replace("####", f"{frame:04d}"))
        none, attrs_none = read_layers(hand_render["out"]["none"].replace("####", f"{frame:04d}"))
        assert attrs["facegraft/occlusion"] == "hands" and attrs_none["facegraft/occlusion"] == "none"
        hand = hands.hands_matte([h.landmarks for h in shot.frames[frame].hands], (360, 640))
        solid = hand == 1.0
        over_face = solid & (none["swap.A"] > 0.5)  # hand pixels the swap covers without occlusion
        assert over_face.sum() > 2000
        assert auto["swap.A"][over_face].max() == 0.0  # ... and does not touch with it
        for c in "RGB":  # the plate there, bit for bit
            assert np.array_equal(auto[c][over_face], plate.get([c])[..., 0][over_face])
        assert np.abs(none["R"][over_face] - plate.get(["R"])[..., 0][over_face]).mean() > 0.01
        # the layer: the hand matte over the face's region, 0 with --occlusion none
        region = auto["matte.face"] > 0
        assert np.abs(auto["matte.occlusion"][region] - hand[region]).max() < 2e-3  # stored as half
        softened = (hand > 0) & (hand < 1) & (none["swap.A"] > 0)  # the hand's soft edge: the swap fades
        assert np.allclose(auto["swap.A"][softened], none["swap.A"][softened] * (1 - hand[softened]), atol=2e-3)
        assert none["matte.occlusion"].max() == 0.0
        # the swap still covers the face the hand leaves free
        free = (hand == 0) & (none["swap.A"] > 0.5)
        assert np.array_equal(auto["swap.A"][free], none["swap.A"][free])
    points = POINTS["105"]["hand"]  # marked just inside her hand's edge: the swap is held off them
    auto, _ = read_layers(hand_render["out"]["auto"].replace("####", "0105"))
    none, _ = read_layers(hand_render["out"]["none"].replace("####", "0105"))
    assert all(auto["matte.occlusion"][y, x] >= 0.5 for x, y in points)
    assert all(auto["swap.A"][y, x] <= 0.5 * none["swap.A"][y, x] for x, y in points)


def test_a_track_without_hands_renders_with_a_warning(hand_render: dict, tmp_path: Path) -> None:
    data = json.loads(Path(hand_render["track"]).read_text())
    data["params"]["hands"] = False
    for record in data["frames"]:
        record["hands"] = []
    old = tmp_path / "nohands.fgtrack.json"
    old.write_text(json.dumps(data))
    model = build_identity_model(tmp_path / "tint.onnx", 64, shift=TINT)
    out = tmp_path / "r.####.exr"
    result = subprocess.run([sys.executable, "-m", "facegraft.cli.main", "render", hand_render["plate"], "--track",
                             str(old), "--model", str(model), "--out", str(out), "--frames", "105"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "warning: the track file has no hand data" in result.stderr
    _, attrs = read_layers(str(out).replace("####", "0105"))
    assert attrs["facegraft/occlusion"] == "none (no hand data)"


# -- an occlusion model in a render -----------------------------------------------------------

def build_band_model(path: Path, res: int = 64, rows: tuple[int, int] = (24, 40), coverage: str = "whole_face",
                     display_window: tuple[int, ...] = (0, 0, *DISPLAY)) -> Path:
    """An occlusion model that says rows ``rows`` of its crop are covered, whatever it sees."""
    band = np.zeros((1, 1, res, res), np.float32)
    band[..., rows[0]:rows[1], :] = 1.0
    inits = [numpy_helper.from_array(band, "band"), numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "s0"), numpy_helper.from_array(np.array([1], np.int64), "s1")]
    nodes = [helper.make_node("Slice", ["face", "s0", "s1", "s1"], ["first"]),
             helper.make_node("Mul", ["first", "zero"], ["zeros"]),
             helper.make_node("Add", ["zeros", "band"], ["occlusion"])]
    graph = helper.make_graph(nodes, "band", [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["N", 3, res, res])],
                              [helper.make_tensor_value_info("occlusion", TensorProto.FLOAT, ["N", 1, res, res])], inits)
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    stamped = occlusion_file.stamp(model, resolution=res, coverage=coverage,
                                   plate={"display_window": list(display_window), "keyframes": [FIRST]})
    return occlusion_file.save(stamped, path)


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("occ_model")
    plate = make_plate(root / "plate", frames=range(FIRST, FIRST + 2))
    track = make_track(range(FIRST, FIRST + 2), aligned_transform(64, "whole_face", (64, 40)))
    track.params["hands"] = True  # tracked with hands, none found
    model = face_model.load(build_identity_model(root / "tint.onnx", 64, shift=TINT), device="cpu")
    return {"root": root, "plate": plate, "track": track, "model": model}


def test_an_occlusion_model_holds_the_swap_off_what_it_finds(shot: dict) -> None:
    band = build_band_model(shot["root"] / "band.onnx")
    source = open_source(shot["plate"])
    outs = {}
    for mode in ("none", str(band)):
        outs[mode] = str(shot["root"] / ("with" if mode != "none" else "without") / "r.####.exr")
        render_shot(source, shot["track"], shot["model"], outs[mode], RenderSettings(occlusion=mode, **PLAIN))
    plate = exr.read_image(shot["plate"].replace("####", f"{FIRST:04d}"))
    got, attrs = read_layers(outs[str(band)].replace("####", f"{FIRST:04d}"))
    without, _ = read_layers(outs["none"].replace("####", f"{FIRST:04d}"))
    assert attrs["facegraft/occlusion"] == "hands + model band.onnx"  # hands looked for (none on these frames)
    assert json.loads(attrs["facegraft/params"])["occlusion"] == "band.onnx"
    # the crop maps onto plate px (x - 64, y - 40): its band rows 24-40 are display rows 64-80, array
    # rows 70-86 (6 rows of overscan)
    rows = np.nonzero(got["matte.occlusion"].max(1) > 0.999)[0]
    assert rows.min() >= 69 and rows.max() <= 86 and len(rows) >= 14
    held = (got["matte.occlusion"] > 0.999) & (without["swap.A"] > 0.5)  # swapped without the model
    assert held.sum() > 300 and got["swap.A"][held].max() == 0.0
    for c in "RGB":
        assert np.array_equal(got[c][held], plate.get([c])[..., 0][held])
    elsewhere = (got["matte.occlusion"] == 0) & (without["swap.A"] > 0)
    assert np.array_equal(got["swap.A"][elsewhere], without["swap.A"][elsewhere])


def test_an_occlusion_model_for_a_smaller_crop_or_another_plate_is_refused(shot: dict) -> None:
    source = open_source(shot["plate"])
    small = build_band_model(shot["root"] / "face_only.onnx", coverage="face")
    big_face = face_model.load(build_identity_model(shot["root"] / "head.onnx", 64, coverage="head"), device="cpu")
    with pytest.raises(ModelFileError, match="'face' crops, smaller than the 'whole_face' crops of tint.onnx") as info:
        render_shot(source, shot["track"], shot["model"], str(shot["root"] / "x" / "r.####.exr"),
                    RenderSettings(occlusion=str(small)))
    assert info.value.path == str(small)
    wide = build_band_model(shot["root"] / "wide.onnx", display_window=(0, 0, 1920, 1080))
    with pytest.raises(ModelFileError, match=r"trained on a 1920x1080 plate, but the plate of the shot track .* is 192x144"):
        render_shot(source, shot["track"], shot["model"], str(shot["root"] / "y" / "r.####.exr"),
                    RenderSettings(occlusion=str(wide)))
    band = build_band_model(shot["root"] / "band2.onnx")
    with pytest.raises(ModelFileError, match="'whole_face' crops, smaller than the 'head' crops of head.onnx"):
        render_shot(source, shot["track"], big_face, str(shot["root"] / "z" / "r.####.exr"),
                    RenderSettings(occlusion=str(band)))


def test_the_setting_takes_auto_none_or_a_model_file(shot: dict, tmp_path: Path) -> None:
    from facegraft.inference.errors import FaceGraftError

    assert RenderSettings().occlusion == "auto"
    with pytest.raises(FaceGraftError, match="--occlusion must be auto, none or an occlusion model file"):
        RenderSettings(occlusion="hands")
    face = build_identity_model(tmp_path / "face.onnx", 64)
    with pytest.raises(ModelFileError, match="face model, not an occlusion model"):
        render_shot(open_source(shot["plate"]), shot["track"], shot["model"], str(tmp_path / "r.####.exr"),
                    RenderSettings(occlusion=str(face)))


# -- the resume stamp: the occlusion model by its content -------------------------------------

def test_a_retrained_occlusion_model_renders_again_a_renamed_one_does_not(shot: dict, tmp_path: Path) -> None:
    from facegraft.inference.render import stamp

    frames = list(range(FIRST, FIRST + 2))
    source = open_source(shot["plate"])
    out = str(tmp_path / "r" / "r.####.exr")
    model = tmp_path / "sh010_occ.onnx"
    build_band_model(model, rows=(24, 40))

    def render(occlusion: str) -> object:
        return render_shot(source, shot["track"], shot["model"], out, RenderSettings(occlusion=occlusion, **PLAIN))

    def matte(frame: int) -> np.ndarray:
        return read_layers(out.replace("####", f"{frame:04d}"))[0]["matte.occlusion"]

    first = render(str(model))
    assert first.rendered == frames and first.stale == {}
    _, attrs = read_layers(out.replace("####", f"{FIRST:04d}"))
    assert attrs["facegraft/occlusion_hash"] == occlusion_file.read(model).content_hash
    before = matte(FIRST)
    assert render(str(model)).existing == frames  # nothing changed: every frame kept

    build_band_model(model, rows=(16, 48))  # trained again: other weights in the same file
    again = render(str(model))
    assert again.stale == {f: stamp.OCCLUSION_CHANGED for f in frames} and again.rendered == frames
    after = matte(FIRST)
    assert (after > 0.999).sum() > (before > 0.999).sum() + 100  # the wider band is in the frames now

    moved = tmp_path / "elsewhere" / "renamed_occ.onnx"
    moved.parent.mkdir()
    moved.write_bytes(model.read_bytes())  # the same model under another name and folder
    kept = render(str(moved))
    assert kept.existing == frames and kept.stale == {} and kept.rendered == []
    assert np.array_equal(matte(FIRST), after)

    assert render("none").stale == {f: stamp.OCCLUSION_CHANGED for f in frames}  # no model any more
    assert render("auto").stale == {f: stamp.SETTINGS_CHANGED for f in frames}


# -- an occlusion model is never a face model -------------------------------------------------

def test_a_face_model_load_refuses_an_occlusion_model_naming_it(shot: dict, tmp_path: Path) -> None:
    band = build_band_model(tmp_path / "sh010_occ.onnx")
    for probe in (True, False):  # refused at load, before any graph runs
        with pytest.raises(ModelFileError, match="is an occlusion model .*, not a face model") as info:
            face_model.load(band, device="cpu", probe=probe)
        assert info.value.path == str(band) and "--occlusion" in str(info.value.hint)
    track = tmp_path / "sh010.fgtrack.json"
    save_track(shot["track"], track)
    result = subprocess.run([sys.executable, "-m", "facegraft.cli.main", "render", shot["plate"], "--track",
                             str(track), "--model", str(band), "--out", str(tmp_path / "r.####.exr")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 5, result.stderr
    assert str(band) in result.stderr and "occlusion model" in result.stderr


# -- the model's matte is grown before it holds the swap off -----------------------------------

def test_grow_matte_moves_the_edge_out_and_keeps_partial_values() -> None:
    matte = np.zeros((11, 11), np.float32)
    matte[4:7, 4:7] = 0.6  # a tinted lens: 0.6 stays 0.6
    assert np.array_equal(occlusion_file.grow_matte(matte, 0.0), matte)
    whole = occlusion_file.grow_matte(matte, 1.0)
    assert whole.max() == pytest.approx(0.6) and (whole > 0).sum() == 9 + 12  # one pixel out (a cross-shaped disc)
    assert whole[3, 5] == pytest.approx(0.6) and whole[3, 3] == 0.0
    part = occlusion_file.grow_matte(matte, 0.75)  # a fractional grow: the ring between the two
    assert part[3, 5] == pytest.approx(0.45) and np.array_equal(part[4:7, 4:7], matte[4:7, 4:7])
    two = occlusion_file.grow_matte(matte, 2.0)
    assert two[2, 5] == pytest.approx(0.6) and two[3, 3] == pytest.approx(0.6) and two[2, 2] == 0.0


def test_a_render_applies_the_model_matte_grown(shot: dict, tmp_path: Path) -> None:
    """matte.occlusion is the model's matte grown by GROW of its pixels: the band held off a little
    wider than the model draws it, with a partial ring where the grow ends."""
    band = build_band_model(tmp_path / "band.onnx")
    source = open_source(shot["plate"])
    out = str(tmp_path / "r" / "r.####.exr")
    render_shot(source, shot["track"], shot["model"], out, RenderSettings(occlusion=str(band), **PLAIN))
    got, _ = read_layers(out.replace("####", f"{FIRST:04d}"))
    model = occlusion_file.load(band, device="cpu")
    plate = source.read(FIRST)
    h, w = plate.shape
    face = shot["track"].face(FIRST)
    to_model = lambda rgb: rgb  # noqa: E731  (the band model ignores its input)
    drawn = model.matte(plate.rgb, plate.origin, face.transform, to_model, (0, h, 0, w))
    grown = model.matte(plate.rgb, plate.origin, face.transform, to_model, (0, h, 0, w), grow=occlusion_file.GROW)
    assert occlusion_file.GROW > 0 and (grown >= drawn).all()
    region = got["matte.face"] > 0
    assert np.abs(got["matte.occlusion"][region] - grown[region]).max() < 2e-3  # stored as half
    columns = np.nonzero(region.any(0))[0]
    column = columns[len(columns) // 2]  # down the middle of the face
    held, drawn_rows = got["matte.occlusion"][:, column] >= 0.5, drawn[:, column] >= 0.5
    assert held.sum() == drawn_rows.sum() + 2  # a row wider each side (this crop is 1 px per plate px)
