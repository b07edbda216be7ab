"""FaceGraft.gizmo as Nuke sees it: its knobs, its TCL paths evaluated, its internal Writes as a farm
submitter finds them, and its output rendered through the node graph (nk_graph) from real EXRs."""
from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import nk_graph
import nk_reader
import nuke
import numpy as np
import pytest
import scenes
from facegraft_nuke import commands, node_settings, nodes, paths, rendering
from nuke_support import (
    APPLY_GIZMO,
    GIZMO,
    PLUGIN,
    REPO,
    build_facegraft,
    gizmo_tree,
    plate_read,
    save_script,
    set_range,
)

from facegraft.cli.main import build_parser
from facegraft.inference.io import layers
from facegraft.inference.render.settings import default

KNOB_HELPERS = {"value", "set_value", "text", "enum", "raw", "constant"}
SCENE = nk_graph.Scene(scenes.WIDTH, scenes.HEIGHT, "ocio://studio-config-latest", "scene_linear")


def _knob_names_used() -> set[str]:
    """String knob names in ``nodes.value(node, "x")``-style calls, ``x.knob("x")`` and the knob-to-setting map."""
    used = set(commands.KNOB_SETTINGS)
    for path in (PLUGIN / "facegraft_nuke").glob("*.py"):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
                continue
            args = call.args
            if call.func.attr in KNOB_HELPERS and len(args) >= 2 and isinstance(args[1], ast.Constant):
                used.add(args[1].value)
            if call.func.attr == "knob" and args and isinstance(args[0], ast.Constant):
                used.add(args[0].value)
    return {u for u in used if isinstance(u, str)}


def test_every_knob_the_python_touches_exists() -> None:
    names = {k.name for k in gizmo_tree(GIZMO).user_knobs} | {k.name for k in gizmo_tree(APPLY_GIZMO).user_knobs}
    used = _knob_names_used() | {"model_info"}
    # knobs of internal, upstream or root nodes, and Nuke's own events
    elsewhere = {"reload", "disable", "raw", "file", "showPanel", "colorspace", "proxy", "in_colorspace",
                 "out_colorspace", "customOCIOConfigPath"}
    missing = sorted(used - names - elsewhere)
    assert len(used) > 25, used
    assert not missing, f"the Python reads knobs the gizmos lack: {missing}"


@pytest.mark.parametrize("gizmo", [GIZMO, APPLY_GIZMO], ids=lambda p: p.stem)
def test_knob_names_unique_and_buttons_call_functions_that_exist(gizmo: Path) -> None:
    tree = gizmo_tree(gizmo)
    names = [k.name for k in tree.user_knobs]
    assert len(names) == len(set(names))
    buttons = [k for k in tree.user_knobs if k.type == 22]
    assert buttons
    for button in buttons:
        found = re.findall(r"(facegraft_nuke\.\w+)\.(\w+)\(", button.script)
        assert found, f"button {button.name} runs no FaceGraft function: {button.script!r}"
        for module, function in found:
            assert callable(getattr(importlib.import_module(module), function, None)), f"{module}.{function}"
    inputs = {n.name: n.value("number", "0") for n in tree.children if n.cls == "Input"}
    assert tree.value("inputs") == "2" and inputs == {"plate": "0", "holdout": "1"}
    assert "knobChanged" not in gizmo.read_text(encoding="utf-8")  # registered from menu.py, never saved
    assert (gizmo.parent / tree.value("icon")).is_file()


@pytest.mark.parametrize("gizmo", [GIZMO, APPLY_GIZMO], ids=lambda p: p.stem)
def test_the_facegraft_layers_are_declared_as_the_cli_names_them(gizmo: Path) -> None:
    """add_layer lines, so Shuffles downstream resolve swap/matte/stmap before anything is rendered."""
    declared = nk_reader.parse(gizmo.read_text(encoding="utf-8")).layers
    for exr_name in layers.FACEGRAFT:
        layer, channel = nk_graph.nuke_channel(exr_name).split(".")
        assert channel in declared.get(layer, []), f"{exr_name} is not in an add_layer line of {gizmo.name}"


def test_icons_are_small_pngs() -> None:
    import OpenImageIO as oiio

    for name in ("FaceGraft.png", "FaceGraftApply.png"):
        found = oiio.ImageInput.open(str(REPO / "gizmos" / name))
        assert found is not None, name
        spec = found.spec()
        found.close()
        assert (spec.width, spec.height) == (24, 24) and spec.nchannels == 4, name


# -- paths -------------------------------------------------------------------------------------------------


def _node_with_model(tmp_path: Path, cache: str, script: str = "comp/sh010_comp_v003.nk") -> nuke.Gizmo:
    save_script(tmp_path / script)
    model = tmp_path / "face.onnx"
    model.write_bytes(b"only its existence is checked here")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, nuke.Node("Grade", "Grade1"))
    node.setInput(1, nuke.Node("Roto", "Roto1"))
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    node["cache_folder"].setValue(cache)
    return node


@pytest.mark.parametrize("cache", ["", "set"])
def test_internal_nodes_read_and_write_the_paths_the_cli_gets(fake: object, tmp_path: Path, cache: str) -> None:
    node = _node_with_model(tmp_path, str(tmp_path / "cache") if cache else "")
    chosen = node_settings.read(node)
    evaluated = {name: nuke.filename(node.node(name)) for name in (nodes.PLATE_WRITE, nodes.HOLDOUT_WRITE,
                                                                   nodes.RENDER_READ)}
    # the Writes write into incoming/, from where a frame moves up to what the CLI reads when it changed
    assert chosen.holdout is not None
    assert evaluated == {nodes.PLATE_WRITE: rendering.staged(chosen.plate),
                         nodes.HOLDOUT_WRITE: rendering.staged(chosen.holdout), nodes.RENDER_READ: chosen.out}
    expected_root = str(tmp_path / "cache") if cache else str(tmp_path / "comp" / "facegraft")
    folder = f"{expected_root}/sh010_comp/{node['node_id'].value()}"
    assert chosen.out == folder + "/render.####.exr" and chosen.track == folder + "/shot.fgtrack.json"
    parser, cli = build_parser(), len(chosen.cli)
    track = parser.parse_args(commands.track_argv(chosen)[cli:])
    render = parser.parse_args(commands.render_argv(chosen)[cli:])
    assert (track.plate, track.out) == (folder + "/plate.####.exr", chosen.track)
    assert (render.plate, render.out, render.holdout) == (
        folder + "/plate.####.exr", evaluated[nodes.RENDER_READ], folder + "/holdout.####.exr")


def test_an_unsaved_script_is_refused_with_what_to_do(fake: object, tmp_path: Path) -> None:
    node = _node_with_model(tmp_path, "")
    nuke.root()["name"].setValue("")
    with pytest.raises(rendering.NodeError, match="save the script first"):
        node_settings.read(node)


def test_renaming_keeps_the_render_and_a_copy_gets_its_own(fake: object, tmp_path: Path) -> None:
    node = _node_with_model(tmp_path, "")
    out = node_settings.read(node).out
    node.setName("FG_hero")
    assert node_settings.read(node).out == out == nuke.filename(node.node(nodes.RENDER_READ))

    def paste() -> nuke.Gizmo:  # a copy arrives with the original's knobs, then Nuke runs onCreate
        copy = build_facegraft(f"FaceGraft{len(nuke.allNodes('FaceGraft')) + 1}")
        for name in ("node_id", "model_file", "python", "cache_folder"):
            copy[name].setValue(node[name].value())
        copy.setInput(0, node.input(0))
        nuke.run_callbacks("OnCreate", copy)
        return copy

    copy = paste()
    assert copy["node_id"].value() != node["node_id"].value()
    assert node_settings.read(copy).out != out and node_settings.read(node).out == out
    again = copy["node_id"].value()
    nuke.delete(copy)
    assert paste()["node_id"].value() == again  # the same copy made again gets the same id (no drift on reload)
    nuke.run_callbacks("OnCreate", node)  # reopening the script: the original keeps its id
    assert node_settings.read(node).out == out


# -- the internal Writes -------------------------------------------------------------------------------------


def enabled_writes() -> list[str]:
    """What a farm submitter or 'render all' finds: Deadline's Nuke submitter walks every group and gizmo
    for Write nodes and submits those whose 'disable' knob is off."""
    return [w.fullName() for w in nuke.allNodes("Write", nuke.root(), True) if not w["disable"].value()]


def test_no_write_inside_the_gizmo_is_enabled_outside_a_facegraft_render(fake: object, tmp_path: Path) -> None:
    node = _node_with_model(tmp_path, "")
    nuke.createNode("FaceGraftApply")
    comp_write = nuke.Node("Write", "WriteComp")
    comp_write.addKnob(nuke.Boolean_Knob("disable", value=False))
    nuke.root().add_node(comp_write)
    assert enabled_writes() == ["WriteComp"]
    assert {w.name() for w in nuke.allNodes("Write", nuke.root(), True)} >= {"PlateWrite", "HoldoutWrite"}

    seen: list[tuple[str, list[str], bool]] = []
    nuke.execute_hook = lambda write, first, last, incr: seen.append(
        (write.name(), enabled_writes(), bool(nuke.root()["proxy"].value())))
    nuke.root()["proxy"].setValue(True)
    rendering.write_inputs(node, node_settings.read(node))
    assert seen == [("PlateWrite", ["WriteComp", "FaceGraft1.PlateWrite"], False),
                    ("HoldoutWrite", ["WriteComp", "FaceGraft1.HoldoutWrite"], False)]
    assert enabled_writes() == ["WriteComp"] and nuke.root()["proxy"].value() is True

    def fails(write: nuke.Node, first: int, last: int, incr: int) -> None:
        raise RuntimeError("Read1: missing frame 1005")
    nuke.execute_hook = fails
    with pytest.raises(rendering.NodeError, match="missing frame 1005"):
        rendering.write_inputs(node, node_settings.read(node))
    assert enabled_writes() == ["WriteComp"] and nuke.root()["proxy"].value() is True


# -- the output, rendered through the graph ---------------------------------------------------------------------


def _rendered_scene(tmp_path: Path, multipart: bool = False, frames: range = range(1002, 1005)) -> nuke.Gizmo:
    save_script(tmp_path / "comp" / "sh010_comp_v002.nk", 1001, 1005)
    plate = scenes.write_plate(str(tmp_path / "plates" / "sh010.####.exr"), range(1001, 1006))
    read = plate_read(plate, 1001, 1005)
    node = nuke.createNode("FaceGraft")
    node.setInput(0, read)
    out = paths.in_folder(nodes.folder(node, "FaceGraft"), paths.RENDER_NAME)
    scenes.write_render(out, frames, multipart=multipart)
    rendering.show_render(node, "scene_linear", rendering.Rendered(out, frames[0], frames[-1]))
    return node


def _channels(image: nk_graph.Image, names: list[str]) -> np.ndarray:
    return np.stack([image.get(n, np.zeros((scenes.HEIGHT, scenes.WIDTH), np.float32)) for n in names])


STREAM = [nk_graph.nuke_channel(c) for c in ("R", "G", "B", "A", *scenes.PLATE_EXTRA)]
FACEGRAFT = [nk_graph.nuke_channel(c) for c in scenes.FACEGRAFT_CHANNELS]


@pytest.mark.parametrize("multipart", [False, True], ids=["one part", "layers in a second part"])
def test_the_output_is_the_live_stream_with_the_swap_merged_and_the_layers_added(
        fake: object, tmp_path: Path, multipart: bool) -> None:
    node = _rendered_scene(tmp_path, multipart)
    graph = nk_graph.Renderer(SCENE)
    for frame in (1002, 1004):
        stream = graph.render(node.input(0), frame)
        out = graph.render(node, frame)
        render = nk_graph.read_exr(scenes.frame_file(nuke.filename(node.node(nodes.RENDER_READ)), frame),
                                   scenes.WIDTH, scenes.HEIGHT)
        alpha = render["swap.alpha"]
        for channel in ("red", "green", "blue", "alpha"):
            expected = render[f"swap.{channel}"] + stream[f"rgba.{channel}"] * (1 - alpha)
            np.testing.assert_allclose(out[f"rgba.{channel}"], expected, atol=1e-6)
        np.testing.assert_array_equal(_channels(out, STREAM[4:]), _channels(stream, STREAM[4:]))  # Z, motion, crypto
        # the swap went through unpremultiply / colour / premultiply (float rounding); mattes and STMap untouched
        np.testing.assert_allclose(_channels(out, FACEGRAFT[:4]), _channels(render, FACEGRAFT[:4]), rtol=1e-6)
        np.testing.assert_array_equal(_channels(out, FACEGRAFT[4:]), _channels(render, FACEGRAFT[4:]))
        off_face = alpha == 0
        np.testing.assert_array_equal(_channels(out, STREAM)[:, off_face], _channels(stream, STREAM)[:, off_face])
    node["output"].setValue("swap only")
    out = graph.render(node, 1003)
    np.testing.assert_array_equal(_channels(out, ["rgba.red", "rgba.alpha"]), _channels(out, ["swap.red", "swap.alpha"]))
    np.testing.assert_array_equal(_channels(out, STREAM[4:]), _channels(graph.render(node.input(0), 1003), STREAM[4:]))


def test_the_stream_stays_live_after_a_render(fake: object, tmp_path: Path) -> None:
    """An upstream change shows at once off the face: the node merges, it does not replace the plate."""
    node = _rendered_scene(tmp_path)
    brighter = scenes.write_plate(str(tmp_path / "plates2" / "sh010.####.exr"), range(1001, 1006), gain=2.0)
    node.input(0)["file"].setValue(brighter)
    graph = nk_graph.Renderer(SCENE)
    out, stream = graph.render(node, 1003), graph.render(node.input(0), 1003)
    off_face = scenes.face_matte() == 0
    np.testing.assert_array_equal(out["rgba.red"][off_face], stream["rgba.red"][off_face])


def test_frames_outside_the_render_pass_the_plate_through(fake: object, tmp_path: Path) -> None:
    """Before and after the rendered frames the Read gives black, so nothing is merged (not a held swap)."""
    node = _rendered_scene(tmp_path)
    graph = nk_graph.Renderer(SCENE)
    for frame in (1001, 1005):
        out, stream = graph.render(node, frame), graph.render(node.input(0), frame)
        np.testing.assert_array_equal(_channels(out, STREAM), _channels(stream, STREAM))
        assert not _channels(out, FACEGRAFT).any(), frame
    read = gizmo_tree(GIZMO).child(nodes.RENDER_READ)
    assert (read.value("before"), read.value("after"), read.value("on_error")) == ("black", "black", "error")


def test_a_missing_frame_inside_the_render_is_an_error_not_black(fake: object, tmp_path: Path) -> None:
    node = _rendered_scene(tmp_path)
    Path(scenes.frame_file(nuke.filename(node.node(nodes.RENDER_READ)), 1003)).unlink()
    graph = nk_graph.Renderer(SCENE)
    graph.render(node, 1002)
    with pytest.raises(nk_graph.ReadError, match="missing frame 1003"):
        graph.render(node, 1003)


def test_before_a_render_the_stream_passes_through_untouched(fake: object, tmp_path: Path) -> None:
    save_script(tmp_path / "comp" / "sh010_comp_v002.nk", 1001, 1005)
    read = plate_read(scenes.write_plate(str(tmp_path / "plates" / "sh010.####.exr"), range(1001, 1003)), 1001, 1002)
    node = nuke.createNode("FaceGraft")
    node.setInput(0, read)
    graph = nk_graph.Renderer(SCENE)
    out = graph.render(node, 1001)
    assert out.keys() == graph.render(read, 1001).keys()
    assert not [r for r in graph.reads if "facegraft" in r[0]]  # the render Read is not even opened


def test_frame_range_defaults_to_the_script_and_from_input_takes_the_plate(fake: object, tmp_path: Path) -> None:
    node = nuke.createNode("FaceGraft")
    nuke.root().set_frame_range(990, 1240)
    assert nodes.frame_range(node) == [990, 1240]
    read = plate_read("/plates/sh010.####.exr", 1001, 1100)
    node.setInput(0, read)
    from facegraft_nuke import knobs

    knobs.use_input_range(node)
    nuke.root().set_frame_range(1, 10)
    assert nodes.frame_range(node) == [1001, 1100]
    set_range(node, 5, 6)
    assert nodes.frame_range(node) == [5, 6]


def test_old_scripts_without_newer_knobs_still_read_their_settings(fake: object, tmp_path: Path) -> None:
    """A node saved before some knobs existed: the callbacks fall back to defaults (and say what they need)."""
    save_script(tmp_path / "sh010.nk")
    model = tmp_path / "face.onnx"
    model.write_bytes(b"x")
    node = nuke.Gizmo("FaceGraft", "Old1")
    for name, value in (("model_file", str(model)), ("cache_folder", str(tmp_path)), ("python", sys.executable),
                        ("node_id", "")):
        node.addKnob(nuke.File_Knob(name, value=value))
    nuke.root().add_node(node)
    node.setInput(0, nuke.Node("Grade", "Grade1"))
    chosen = node_settings.read(node)
    for field, name in (("face", "face"), ("smoothing", "smooth"), ("erode", "erode"), ("feather", "feather"),
                        ("color_match", "color_match"), ("blend", "blend"), ("device", "device"),
                        ("on_error", "on_error"), ("holdout_channel", "holdout_channel"), ("occlusion", "occlusion")):
        assert getattr(chosen, field) == default(name), field
    assert chosen.first == nuke.root().firstFrame() and node["node_id"].value()
