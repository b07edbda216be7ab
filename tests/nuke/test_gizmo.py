"""FaceGraft.gizmo read as text: inputs, the internal graph, and every knob the Python touches."""
from __future__ import annotations

import ast
import importlib
import re

import nk_reader
import nuke
from facegraft_nuke import commands, knobs, nodes
from nuke_support import GIZMO, PLUGIN, build_facegraft, gizmo_tree

from facegraft.inference.render.settings import default

KNOB_HELPERS = {"value", "set_value", "text", "enum"}


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
    tree = gizmo_tree()
    names = {k.name for k in tree.user_knobs}
    used = _knob_names_used() | {"model_info"}
    internal_only = {"reload", "disable", "raw", "file", "showPanel"}  # knobs of internal/upstream nodes, or events
    missing = sorted(used - names - internal_only)
    assert len(used) > 15, used
    assert not missing, f"the Python reads knobs the gizmo lacks: {missing}"


def test_user_knob_names_are_unique() -> None:
    names = [k.name for k in gizmo_tree().user_knobs]
    assert len(names) == len(set(names))


def test_buttons_call_functions_that_exist() -> None:
    buttons = [k for k in gizmo_tree().user_knobs if k.type == 22]
    assert {b.name for b in buttons} >= {"render", "cancel", "submit_farm", "use_input_range"}
    for button in buttons:
        found = re.findall(r"(facegraft_nuke\.\w+)\.(\w+)\(", button.script)
        assert found, f"button {button.name} runs no FaceGraft function: {button.script!r}"
        for module, function in found:
            assert callable(getattr(importlib.import_module(module), function, None)), f"{module}.{function}"


def test_inputs_plate_and_optional_holdout() -> None:
    tree = gizmo_tree()
    assert tree.value("inputs") == "2"
    inputs = {n.name: n.value("number", "0") for n in tree.children if n.cls == "Input"}
    assert inputs == {"plate": "0", "holdout": "1"}


def test_plate_reaches_the_output_and_render_layers_are_switched() -> None:
    tree = gizmo_tree()
    output = next(n for n in tree.children if n.cls == "Output")
    names = [n.name for n in nk_reader.upstream(output)]
    assert "plate" in names and "RenderRead" in names and "SwapOnly" in names
    switch = tree.child("OutputSwitch")
    assert switch is not None and output.inputs[0] is switch
    assert [n.name if n else None for n in switch.inputs] == ["PlateWrite", "RenderRead", "SwapOnly"]
    assert "parent.rendered" in switch.value("which") and "parent.output" in switch.value("which")
    assert tree.user_knob("output").menu == ["composite", "swap only"]
    assert tree.child("SwapOnly").value("in") == "swap"
    assert tree.child(nodes.PLATE_WRITE).inputs[0].name == "plate"
    assert tree.child(nodes.HOLDOUT_WRITE).inputs[0].name == "holdout"


def test_internal_paths_match_the_python(fake: object) -> None:
    tree = gizmo_tree()
    node = build_facegraft("FG_sh010")
    node["cache_folder"].setValue("/shows/x/cache")
    for inner, name in ((nodes.PLATE_WRITE, nodes.PLATE_NAME), (nodes.HOLDOUT_WRITE, nodes.HOLDOUT_NAME),
                        (nodes.RENDER_READ, nodes.RENDER_NAME)):
        pattern = tree.child(inner).value("file")
        expanded = re.sub(r"\[value parent\.(\w+)\]",
                          lambda m: node.name() if m.group(1) == "name" else str(node[m.group(1)].value()), pattern)
        assert expanded == nodes.cache_path(node, "/shows/x/cache", name)
    read = tree.child(nodes.RENDER_READ)
    assert read.value("first") == "{parent.first_frame}" and read.value("last") == "{parent.last_frame}"


def test_old_scripts_without_newer_knobs_still_render_settings(fake: object, tmp_path: object) -> None:
    """A node saved before some knobs existed: the callbacks fall back to defaults."""
    model = tmp_path / "face.onnx"  # type: ignore[operator]
    model.write_bytes(b"x")
    node = nuke.Gizmo("FaceGraft", "Old1")
    for name, value in (("model_file", str(model)), ("cache_folder", str(tmp_path)), ("python", __import__("sys").executable)):
        node.addKnob(nuke.File_Knob(name, value=value))
    node.setInput(0, nuke.Node("Grade", "Grade1"))
    chosen = knobs.settings(node)
    for field, name in (("face", "face"), ("smoothing", "smooth"), ("erode", "erode"), ("feather", "feather"),
                        ("color_match", "color_match"), ("blend", "blend"), ("device", "device"),
                        ("on_error", "on_error"), ("holdout_channel", "holdout_channel")):
        assert getattr(chosen, field) == default(name), field
    assert (chosen.erode, chosen.feather, chosen.color_match) == (4, 12, "rct")
    assert chosen.first == nuke.root().firstFrame()


def test_gizmo_file_is_plain_text_with_only_stdlib_callbacks() -> None:
    text = GIZMO.read_text(encoding="utf-8")
    assert text.startswith("#! nuke") and "end_group" in text
    assert "knobChanged" not in text  # registered from menu.py, so saved scripts never carry it
