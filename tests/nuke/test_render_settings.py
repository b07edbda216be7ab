"""The node's settings file, the gizmo's knobs and the plugin's defaults agree with the settings schema."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nuke
import pytest
from facegraft_nuke import commands, node_settings
from nuke_support import PLUGIN, REPO, gizmo_tree, save_script

from facegraft.cli.main import build_parser
from facegraft.cli.settings import ALL
from facegraft.inference.render.settings import schema_json

SETTINGS_JSON = PLUGIN / "facegraft_nuke" / "render_settings.json"
REGENERATE = "facegraft settings --json > nuke_plugin/facegraft_nuke/render_settings.json"
DECLARED = {s.name: s for s in ALL}
# Knobs whose empty value means "from the script" (its config, the Read's or working space): the tooltip says so.
EMPTY_MEANS_SCRIPT = {"plate_colorspace", "ocio_config"}


def _gizmo_default(knob: str) -> object:
    """What a new node holds: the gizmo's value line, else the knob type's own default."""
    tree = gizmo_tree()
    spec = tree.user_knob(knob)
    assert spec is not None, f"the gizmo has no knob '{knob}'"
    written = tree.knobs.get(knob)
    if spec.type == 4:
        return written[0] if written else spec.menu[0]
    convert = {3: int, 7: float}.get(spec.type, str)
    return convert(written[0]) if written else convert(0 if spec.type in (3, 7) else "")


def test_the_committed_settings_file_is_the_schema_dump() -> None:
    committed = SETTINGS_JSON.read_text(encoding="utf-8")
    assert committed == schema_json(ALL), (
        f"{SETTINGS_JSON.relative_to(REPO)} is out of date with the settings schema; regenerate it with\n  {REGENERATE}")


def test_facegraft_settings_json_prints_the_file() -> None:
    done = subprocess.run([sys.executable, "-m", "facegraft.cli.main", "settings", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == SETTINGS_JSON.read_text(encoding="utf-8")
    assert [s["name"] for s in json.loads(done.stdout)["settings"]] == list(DECLARED)


def test_the_plugin_reads_every_declaration() -> None:
    assert set(commands.SETTINGS) == set(DECLARED)
    for name, declared in DECLARED.items():
        assert commands.default(name) == declared.default, name
        assert commands.choices(name) == list(declared.choices), name
    assert commands.choices("engine") == ["openjd", "opencue", "deadline"]


def test_every_knob_maps_to_a_declared_setting() -> None:
    names = {k.name for k in gizmo_tree().user_knobs}
    assert set(commands.KNOB_SETTINGS) <= names
    assert set(commands.KNOB_SETTINGS.values()) <= set(DECLARED)
    offered_by_node = {"face", "smooth", "plate_colorspace", "ocio_config", "device", "color_match", "blend", "erode",
                       "feather", "on_error", "holdout_channel", "engine", "chunk"}
    assert set(commands.KNOB_SETTINGS.values()) == offered_by_node


@pytest.mark.parametrize("knob", sorted(commands.KNOB_SETTINGS))
def test_gizmo_knob_default_menu_and_range_follow_the_schema(knob: str) -> None:
    declared = DECLARED[commands.KNOB_SETTINGS[knob]]
    spec = gizmo_tree().user_knob(knob)
    assert spec is not None
    value = _gizmo_default(knob)
    if knob == "holdout_channel":  # the menu names channels by colour
        assert sorted(commands.HOLDOUT_CHANNELS) == sorted(spec.menu)
        assert commands.HOLDOUT_CHANNELS[str(value)] == declared.default
    elif knob in EMPTY_MEANS_SCRIPT:
        assert value == "" and "Empty:" in spec.tooltip and "script" in spec.tooltip, spec.tooltip
    else:
        assert value == declared.default, f"gizmo knob '{knob}' defaults to {value!r}, the CLI to {declared.default!r}"
    if declared.choices:
        assert spec.type == 4 and spec.menu == list(declared.choices), (knob, spec.menu)
    if spec.range is not None:
        low, high = spec.range
        assert declared.minimum is None or low >= declared.minimum, (knob, spec.range)
        assert declared.maximum is None or high <= declared.maximum, (knob, spec.range)


def test_a_new_node_renders_with_the_cli_defaults(fake: object, tmp_path: Path) -> None:
    """Render and farm command lines of an untouched node parse to exactly what a bare CLI command uses, except the
    colour, which comes from the script (see test_colour)."""
    save_script(tmp_path / "comp" / "sh010.nk")
    model = tmp_path / "face.onnx"
    model.write_bytes(b"x")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, nuke.Node("Grade", "Grade1"))
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    chosen = node_settings.read(node)
    from_script = {"plate_colorspace", "ocio_config"}
    parser = build_parser()
    cli = chosen.cli
    bare = parser.parse_args(["render", chosen.plate, "--track", "t.json", "--model", "m.onnx", "--out", "o.####.exr"])
    render = parser.parse_args(commands.render_argv(chosen)[len(cli):])
    for s in ALL:
        if "render" in s.stages and s.name not in from_script:
            assert getattr(render, s.name) == getattr(bare, s.name) == s.default, s.name
    bare_track = parser.parse_args(["track", chosen.plate, "--out", "t.fgtrack.json"])
    track = parser.parse_args(commands.track_argv(chosen)[len(cli):])
    for s in ALL:
        if "track" in s.stages and s.name not in from_script:
            assert getattr(track, s.name) == getattr(bare_track, s.name) == s.default, s.name
    assert (render.plate_colorspace, render.ocio_config) == ("scene_linear", "ocio://studio-config-latest")
    options = commands.FarmOptions(node_settings._enum(node, "farm_engine"), int(node["farm_chunk"].value()), "x",
                                   str(tmp_path / "jobs"))
    farm = parser.parse_args(commands.farm_argv(chosen, options)[len(cli):])
    assert (farm.engine, farm.chunk) == (DECLARED["engine"].default, DECLARED["chunk"].default)


def test_a_missing_or_foreign_settings_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(commands.SettingsFileError, match="Reinstall"):
        commands.load_settings(str(tmp_path / "nowhere.json"))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": 99, "settings": []}))
    with pytest.raises(commands.SettingsFileError, match="format 1"):
        commands.load_settings(str(other))
    assert commands.load_settings(str(SETTINGS_JSON)) == commands.SETTINGS
