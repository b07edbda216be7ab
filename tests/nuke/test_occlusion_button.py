"""Train occlusion: the node's holdout input trains the shot's occlusion model from its keyframes (the
button, through the worker bridge with progress, the real FaceGraft CLI) and the render uses it; the
keyframes from the 'occlusion keyframes' knob, the holdout's Roto shapes or its animated knobs; the
occlusion menu on the command lines; what is refused."""
from __future__ import annotations

import sys
from pathlib import Path

import nk_graph
import nuke
import numpy as np
import pytest
from facegraft_nuke import bridge, commands, knobs, model_info, node_settings, occlusion, paths, rendering
from facegraft_nuke.errors import NodeError
from nuke_support import gizmo_tree, plate_read, save_script, set_range

from facegraft.cli.main import build_parser
from facegraft.inference.io import exr
from facegraft.inference.io.frames import open_source
from facegraft.inference.models import occlusion as occlusion_file
from facegraft.inference.render.stamp import read_stamp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from occluders import glasses_shot_on  # type: ignore[import-not-found]  # noqa: E402
from render_models import build_identity_model  # type: ignore[import-not-found]  # noqa: E402

WIDTH, HEIGHT = 640, 360
KEYS = [1002, 1006, 1010]
SCRIPT_COLOUR = ["--plate-colorspace", "scene_linear", "--ocio-config", "ocio://studio-config-latest"]


def _keyed(name: str, cls: str, knob: str, keys: list[int], upstream: nuke.Node | None) -> nuke.Node:
    """A node with ``knob`` keyed (at 1.0) on ``keys``, as an artist animates it."""
    node = nuke.Node(cls, name)
    animated = nuke.Array_Knob(knob, value=1.0)
    node.addKnob(animated)
    for frame in keys:
        animated.setValueAt(1.0, frame)
    node.setInput(0, upstream)
    nuke.root().add_node(node)
    return node


def _roto(name: str, shape_keys: list[float], stroke_keys: list[float], background: nuke.Node | None) -> nuke.Node:
    """A Roto node with a keyed shape in its root layer and a keyed paint stroke in a sub-layer."""
    roto = nuke.Node("Roto", name)
    curves = nuke.CurveKnob("curves")
    roto.addKnob(curves)
    shape = nuke.Shape()
    for _ in range(4):
        point = nuke.ShapeControlPoint()
        for frame in shape_keys:
            point.center.addKey(frame, 2, "main")
        shape.append(point)
    stroke = nuke.AnimControlPoint()
    for frame in stroke_keys:
        stroke.addKey(frame, 2, "main")
    layer = nuke.Layer()
    layer.append([stroke])  # a paint stroke: an element holding its control points
    curves.rootLayer.append(shape)
    curves.rootLayer.append(layer)
    roto.setInput(0, background)
    nuke.root().add_node(roto)
    return roto


def test_keyframes_come_from_the_knob_the_roto_shapes_or_the_animated_knobs(fake: object, tmp_path: Path) -> None:
    save_script(tmp_path / "sh010.nk", 1001, 1012)
    plate = _keyed("PlateGrade", "Grade", "multiply", [1003, 1004], plate_read("/plates/sh010.####.exr", 1001, 1012))
    roto = _roto("Roto1", [1002, 1006], [1010, 1012.5], plate)  # drawn over the plate (its bg input)
    blur = _keyed("Blur1", "Blur", "size", [1001, 1012], roto)
    node = nuke.createNode("FaceGraft")
    node.setInput(0, plate)
    node.setInput(1, blur)
    # the shapes' keys first (a fractional key is not a frame); never the plate's keys, though the roto sees the plate
    assert occlusion.holdout_keys(node) == (KEYS, ["Roto1.curves"])
    assert occlusion.keyframes(node, 1001, 1012) == KEYS

    roto["curves"].rootLayer = nuke.Layer()  # type: ignore[attr-defined]  # no keyed shape: the animated knobs
    assert occlusion.holdout_keys(node) == ([1001, 1012], ["Blur1.size"])
    node["occlusion_keys"].setValue("1004, 1008-1009")  # typed keyframes win
    assert occlusion.keyframes(node, 1001, 1012) == [1004, 1008, 1009]

    for typed, message in (("10a", "'10a' is not a frame or a range"), ("1009-1004", "the range 1009-1004 ends before"),
                           ("1000,1004", "keyframe.s. 1000 from 'occlusion keyframes' are outside the frame range "
                                         "1001-1012"),
                           ("1001-1012,1013", "1013 from 'occlusion keyframes' are outside")):
        node["occlusion_keys"].setValue(typed)
        with pytest.raises(NodeError, match=message):
            occlusion.keyframes(node, 1001, 1012)
    node["occlusion_keys"].setValue("")
    tracked = _keyed("Transform1", "Transform", "translate", list(range(1001, 1101)), blur)  # keyed on every frame
    node.setInput(1, tracked)
    with pytest.raises(NodeError, match=r"the keys of Blur1.size, Transform1.translate give 100 keyframes \(1001-1100\)"):
        occlusion.keyframes(node, 1001, 1100)
    node.setInput(1, plate_read("/roto/sh010_glasses.####.exr", 1001, 1012, name="RotoRead"))
    with pytest.raises(NodeError, match="no keyframes to learn from .* type the frames you rotoed"):
        occlusion.keyframes(node, 1001, 1012)


def test_the_occlusion_menu_reaches_the_cli_and_the_shot_model_must_be_trained(fake: object, tmp_path: Path) -> None:
    save_script(tmp_path / "comp" / "sh010.nk", 1001, 1010)
    model = tmp_path / "face.onnx"
    model.write_bytes(b"only its existence is checked here")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, plate_read("/plates/sh010.####.exr", 1001, 1010))
    node.setInput(1, _roto("Roto1", KEYS, [], None))
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    parser = build_parser()
    tree = gizmo_tree()
    assert tree.user_knob("occlusion").menu == list(commands.OCCLUSION_MENU)  # type: ignore[union-attr]
    train = parser._subparsers._group_actions[0].choices["occlusion"]  # type: ignore[union-attr]
    train = train._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    defaults = {a.dest: a.default for a in train._actions}
    assert (int(tree.knobs["occlusion_steps"][0]), int(tree.knobs["occlusion_res"][0])) == (
        defaults["steps"], defaults["res"]) == (occlusion.STEPS_DEFAULT, occlusion.RES_DEFAULT)

    for mode in ("auto", "none"):
        node["occlusion"].setValue(mode)
        chosen = node_settings.read(node)
        render = parser.parse_args(commands.render_argv(chosen)[len(chosen.cli):])
        farm = parser.parse_args(commands.farm_argv(chosen, commands.FarmOptions("openjd", 5, "x", "/j"))[len(chosen.cli):])
        assert render.occlusion == farm.occlusion == mode and render.holdout == farm.holdout == chosen.holdout
        assert chosen.holdout is not None and chosen.holdout.endswith("/holdout.####.exr")

    node["occlusion"].setValue(commands.SHOT_MODEL)
    with pytest.raises(NodeError, match="'shot model', but the shot's occlusion model is not trained yet"):
        node_settings.read(node)
    assert knobs.render(node) is None and "press Train occlusion" in nuke.recorded("message")[-1][1]
    trained = Path(node_settings.shot_model(node_settings.node_folder(node_settings.read(node, training=True))))
    trained.parent.mkdir(parents=True)
    trained.write_bytes(b"x")
    chosen = node_settings.read(node)
    render = parser.parse_args(commands.render_argv(chosen)[len(chosen.cli):])
    farm = parser.parse_args(commands.farm_argv(chosen, commands.FarmOptions("openjd", 5, "x", "/j"))[len(chosen.cli):])
    assert render.occlusion == farm.occlusion == str(trained) == chosen.occlusion
    assert render.holdout is None and farm.holdout is None  # the roto trained the model: it is not held out as well
    assert node_settings.read(node, training=True).holdout is not None

    node.setInput(1, None)
    with pytest.raises(NodeError, match="connect the roto of what passes in front of the face"):
        node_settings.read(node, training=True)
    assert knobs.train_occlusion(node) is None and "'holdout' input" in nuke.recorded("message")[-1][1]
    assert commands.describe_model({"kind": "occlusion", "keyframes": KEYS}).startswith(
        "an occlusion model (keyframes 1002, 1006, 1010), not a face model")


# -- the button, with the real CLI -----------------------------------------------------------------

@pytest.fixture(scope="module")
def glasses_shot(tmp_path_factory: pytest.TempPathFactory, single_face_plate: str) -> dict:
    """The man's frames 1001-1010 with sunglasses sliding on mid-shot, and their roto (alpha)."""
    made = glasses_shot_on(open_source(single_face_plate, "1001-1010"), tmp_path_factory.mktemp("nuke_glasses"))
    return {"plate": made.plate, "roto": made.roto}


def test_the_button_trains_the_shot_model_and_the_render_uses_it(fake: object, glasses_shot: dict,
                                                                 tmp_path: Path) -> None:
    graph = nk_graph.Renderer(nk_graph.Scene(WIDTH, HEIGHT, "ocio://studio-config-latest", "scene_linear"))
    nk_graph.nuke_executes_writes(graph)
    save_script(tmp_path / "comp" / "sh010_comp_v001.nk", 1001, 1010)
    model = build_identity_model(tmp_path / "face.onnx", res=64, shift=(0.2, -0.1, 0.1))
    roto = plate_read(glasses_shot["roto"], 1001, 1010, name="RotoRead")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, plate_read(glasses_shot["plate"], 1001, 1010))
    node.setInput(1, _keyed("RotoKeys", "Grade", "multiply", KEYS, roto))  # the frames the artist keyed
    for knob, value in (("model_file", str(model)), ("python", sys.executable), ("device", "cpu"),
                        ("color_match", "none"), ("occlusion_steps", 40), ("occlusion_res", 32)):
        node[knob].setValue(value)
    assert node["occlusion"].value() == "auto" and node["occlusion_status"].value() == "no occlusion model"
    key = rendering.job_key(node)

    def press(button: str) -> bridge.Job:
        node[button].execute()  # the gizmo's own button script
        job = bridge.running(key)
        assert job is not None, nuke.recorded("message")
        job.join(600)
        assert job.result is not None and job.result.ok, job.result
        return job

    job = press("train_occlusion")
    folder = node_settings.node_folder(node_settings.read(node, training=True))
    shot_model = folder + "/occlusion.onnx"
    chosen = node_settings.read(node)
    assert [s.label for s in job.steps] == ["track", "occlusion"]
    argv = job.steps[1].argv
    assert argv == chosen.cli + [
        "occlusion", "train", glasses_shot["plate"], "--track", folder + "/shot.fgtrack.json",
        "--roto", folder + "/holdout.####.exr", "--roto-channel", "A", "--frames", "1002,1006,1010",
        "--out", shot_model, "--model", str(model), "--steps", "40", "--res", "32", *SCRIPT_COLOUR, "--json-progress"]
    assert build_parser().parse_args(argv[len(chosen.cli):]).frames == "1002,1006,1010"
    # the holdout was written into the cache on the keyframes only, as the roto's alpha
    writes = [c for c in nuke.recorded("execute") if len(c) > 3 and c[1] == "HoldoutWrite"]
    assert [(c[2], c[3]) for c in writes] == [(k, k) for k in KEYS]
    assert sorted(Path(folder).glob("holdout.*.exr")) == [Path(paths.frame_path(folder + "/holdout.####.exr", k))
                                                          for k in KEYS]
    cached = exr.read_image(paths.frame_path(folder + "/holdout.####.exr", 1010)).get(["A"])[..., 0]
    truth = exr.read_image(paths.frame_path(glasses_shot["roto"], 1010)).get(["A"])[..., 0]
    assert truth.max() == pytest.approx(1.0) and np.array_equal(cached, truth)
    # the model file in the node's cache, trained on those keyframes; the node switched to it
    info = occlusion_file.read(shot_model)
    assert (info.kind, info.resolution, info.coverage) == ("occlusion", 32, "whole_face")
    assert info.provenance["plate"]["keyframes"] == KEYS and info.provenance["steps"] == 40
    assert Path(folder, "occlusion.preview.png").stat().st_size > 1000
    assert node["occlusion"].value() == commands.SHOT_MODEL
    assert node["occlusion_status"].value().startswith("trained on keyframes 1002, 1006, 1010 in ")
    (task,) = [t for t in nuke.ProgressTask.instances if t.title.endswith("occlusion")]
    assert any(m.startswith("train occlusion (") for m in task.messages) and task.progress[-1] == 100
    assert task.progress == sorted(task.progress) and len(set(task.progress)) > 10  # the bar moves with the steps
    assert (Path(folder) / "logs" / "occlusion.log").read_text().startswith("$ ")
    assert model_info.describe(sys.executable, shot_model) == (
        True, commands.describe_model({"kind": "occlusion", "keyframes": KEYS}))

    # Render: the shot model, not the roto; tracked already
    job = press("render")
    assert [s.label for s in job.steps] == ["render"]
    argv = job.steps[0].argv
    assert argv[argv.index("--occlusion") + 1] == shot_model and "--holdout" not in argv
    frames = range(1001, 1011)
    stamped = read_stamp(paths.frame_path(chosen.out, 1006))
    assert stamped is not None and stamped["occlusion_hash"] == info.content_hash
    assert str(stamped["occlusion"]).endswith("model occlusion.onnx")
    shown, written = graph.render(node, 1010), nk_graph.read_exr(paths.frame_path(chosen.out, 1010), WIDTH, HEIGHT)
    np.testing.assert_array_equal(shown["matte.occlusion"], written["matte.occlusion"])  # the layer comes through
    rendered = {f: Path(paths.frame_path(chosen.out, f)).stat().st_mtime_ns for f in frames}
    press("render")
    assert {f: Path(paths.frame_path(chosen.out, f)).stat().st_mtime_ns for f in frames} == rendered  # nothing changed

    # trained again (other weights in the same file): the next render renders every frame again
    node["occlusion_steps"].setValue(41)
    job = press("train_occlusion")
    assert [s.label for s in job.steps] == ["occlusion"]  # the shot track is up to date
    again = occlusion_file.read(shot_model)
    assert again.content_hash != info.content_hash
    press("render")
    assert all(Path(paths.frame_path(chosen.out, f)).stat().st_mtime_ns != rendered[f] for f in frames)
    stamped = read_stamp(paths.frame_path(chosen.out, 1006))
    assert stamped is not None and stamped["occlusion_hash"] == again.content_hash


def test_a_node_busy_rendering_refuses_to_train(fake: object, tmp_path: Path) -> None:
    """One job per node: training and rendering share the shot track and the cache."""
    save_script(tmp_path / "comp" / "sh010.nk", 1001, 1010)
    model = tmp_path / "face.onnx"
    model.write_bytes(b"x")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, nuke.Node("Grade", "Grade1"))
    node.setInput(1, _roto("Roto1", KEYS, [], None))
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    set_range(node, 1001, 1010)
    blocker = bridge.Job(rendering.job_key(node), "busy", lambda job: bridge.StepResult(True))
    blocker._register()
    try:
        assert knobs.train_occlusion(node) is None
        assert "busy (rendering or training)" in nuke.recorded("message")[-1][1]
    finally:
        blocker._unregister()
    assert node["occlusion_status"].value() == "no occlusion model"
