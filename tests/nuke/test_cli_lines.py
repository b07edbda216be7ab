"""Every command line the node builds is accepted by the real FaceGraft CLI parser, with every knob value.

The menus are read from FaceGraft.gizmo itself, so a menu entry the CLI does not offer (or a
flag the CLI does not know) fails here, not in front of a compositor. Values are compared
after parsing: the plugin must not silently swap a knob's value for a default.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import nuke
import pytest
from facegraft_nuke import commands, config, node_settings
from nuke_support import gizmo_tree, plate_read, save_script, set_range

from facegraft.cli.main import build_parser

MENUS = ("color_match", "blend", "device", "on_error", "holdout_channel", "output", "farm_engine")
ERODE = (0, 4, -3)
FEATHER = (0, 12, 40)
RANGES = ((1001, 1100), (1, 1), (-5, 10), (0, 24))
FACES = ("largest", "2")
SMOOTHING = ((0.0, 0.0), (0.5, 0.5), (1.0, 1.0), (1.7, 1.0))  # knob value, what the CLI gets (0..1)
# knob values; empty: the script's (the fake script: scene_linear in FaceGraft's own config)
COLOUR = (("", ""), ("ACEScg", "ocio://studio-config-latest"), ("Linear Rec.709 (sRGB)", "/shows/aces.ocio"))
SCRIPT_COLOUR = {"plate_colorspace": "scene_linear", "ocio_config": "ocio://studio-config-latest"}


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def menus() -> dict[str, list[str]]:
    found = {k.name: k.menu for k in gizmo_tree().user_knobs if k.type == 4}
    assert set(MENUS) <= set(found), sorted(found)
    return {name: found[name] for name in MENUS}


def _parse(parser: argparse.ArgumentParser, argv: list[str], cli: list[str]) -> argparse.Namespace:
    assert argv[:len(cli)] == cli
    try:
        return parser.parse_args(argv[len(cli):])
    except SystemExit as exc:  # argparse prints why on stderr
        raise AssertionError(f"the CLI refuses {argv[len(cli):]}") from exc


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return parser._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]


def test_gizmo_menus_are_what_the_cli_offers(parser: argparse.ArgumentParser) -> None:
    found = menus()
    render = _subcommand(parser, "render")
    choices = {a.dest: list(a.choices) for a in render._actions if a.choices}
    for knob in ("color_match", "blend", "device", "on_error"):
        assert found[knob] == choices[knob], f"gizmo '{knob}' {found[knob]} != facegraft render {choices[knob]}"
    farm = _subcommand(parser, "farm")._subparsers._group_actions[0].choices["submit"]  # type: ignore[union-attr]
    assert found["farm_engine"] == list(next(a for a in farm._actions if a.dest == "engine").choices)
    assert found["holdout_channel"] == list(commands.HOLDOUT_CHANNELS)


def test_every_knob_combination_parses_with_the_real_cli(fake: object, parser: argparse.ArgumentParser,
                                                         tmp_path: Path) -> None:
    save_script(tmp_path / "comp" / "sh010_comp.nk")
    model = tmp_path / "face.onnx"
    model.write_bytes(b"only its existence is checked here")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, plate_read(str(tmp_path / "plates" / "sh010.####.exr")))
    node["model_file"].setValue(str(model))
    node["cache_folder"].setValue(str(tmp_path / "cache"))
    node["python"].setValue(sys.executable)
    cli = config.cli_command(sys.executable)
    found = menus()
    combos = list(itertools.product(*(found[name] for name in MENUS)))
    assert len(combos) >= 4 * 2 * 4 * 3 * 4 * 2 * 3  # every menu entry with every other
    for i, values in enumerate(combos):
        chosen_menu = dict(zip(MENUS, values))
        for name, value in chosen_menu.items():
            node[name].setValue(value)
        erode, feather, (first, last) = ERODE[i % 3], FEATHER[i // 3 % 3], RANGES[i % 4]
        face, (smooth, smooth_cli), (space, ocio) = FACES[i % 2], SMOOTHING[i // 2 % 4], COLOUR[i % 3]
        holdout = i % 2 == 0
        node.setInput(1, nuke.Node("Roto", "Roto1") if holdout else None)
        for name, value in (("erode", erode), ("feather", feather), ("face", face), ("smoothing", smooth),
                            ("plate_colorspace", space), ("ocio_config", ocio), ("farm_chunk", 1 + i % 12)):
            node[name].setValue(value)
        set_range(node, first, last)
        chosen = node_settings.read(node)
        where = f"combination {i}: {chosen_menu}, erode {erode}, feather {feather}, frames {first}-{last}"
        colour = {"plate_colorspace": space or SCRIPT_COLOUR["plate_colorspace"],
                  "ocio_config": ocio or SCRIPT_COLOUR["ocio_config"]}
        channel = commands.HOLDOUT_CHANNELS[chosen_menu["holdout_channel"]]

        track = _parse(parser, commands.track_argv(chosen), cli)
        assert (track.command, track.out, track.frames, track.face, track.smooth, track.device, track.json_progress) == (
            "track", chosen.track, f"{first}-{last}", face, smooth_cli, chosen_menu["device"], True), where
        assert track.on_error == ("skip" if chosen_menu["on_error"] in ("skip", "hold") else "fail"), where
        assert {k: getattr(track, k) for k in colour} == colour, where

        for overwrite in (False, True):
            render = _parse(parser, commands.render_argv(chosen, overwrite=overwrite), cli)
            assert (render.command, render.plate, render.track, render.model, render.out, render.frames) == (
                "render", chosen.plate, chosen.track, str(model), chosen.out, f"{first}-{last}"), where
            assert (render.color_match, render.blend, render.device, render.on_error) == (
                chosen_menu["color_match"], chosen_menu["blend"], chosen_menu["device"], chosen_menu["on_error"]), where
            assert (render.erode, render.feather, render.overwrite, render.json_progress) == (
                erode, feather, overwrite, True), where
            assert (render.holdout, render.holdout_channel) == (
                (chosen.holdout, channel) if holdout else (None, "A")), where
            assert {k: getattr(render, k) for k in colour} == colour, where

        options = commands.FarmOptions(engine=chosen_menu["farm_engine"], chunk=1 + i % 12, name=f"job{i}",
                                       job_dir=str(tmp_path / "jobs"), priority=i % 101, pool="gpu" if i % 2 else "",
                                       dry_run=chosen_menu["farm_engine"] == "openjd")
        farm = _parse(parser, commands.farm_argv(chosen, options), cli)
        assert (farm.command, farm.farm_command, farm.plate, farm.model, farm.out, farm.track, farm.frames) == (
            "farm", "submit", chosen.plate, str(model), chosen.out, chosen.track, f"{first}-{last}"), where
        assert (farm.engine, farm.chunk, farm.face, farm.smooth, farm.device) == (
            chosen_menu["farm_engine"], 1 + i % 12, face, smooth_cli, chosen_menu["device"]), where
        assert (farm.color_match, farm.blend, farm.on_error, farm.erode, farm.feather) == (
            chosen_menu["color_match"], chosen_menu["blend"], chosen_menu["on_error"], erode, feather), where
        assert (farm.holdout, farm.holdout_channel) == ((chosen.holdout, channel) if holdout else (None, None)), where
        assert (farm.plate_colorspace, farm.ocio_config) == (colour["plate_colorspace"], colour["ocio_config"]), where
        assert (farm.name, farm.priority, farm.pool, farm.dry_run) == (
            f"job{i}", i % 101, "gpu" if i % 2 else None, chosen_menu["farm_engine"] == "openjd"), where

        # the output knob switches what the node shows; it never changes what is rendered
        node["output"].setValue(found["output"][(found["output"].index(chosen_menu["output"]) + 1) % 2])
        assert commands.render_argv(node_settings.read(node)) == commands.render_argv(chosen), where

    info = _parse(parser, commands.model_info_argv(cli, str(model)), cli)
    assert (info.command, info.model, info.json) == ("model-info", str(model), True)


def test_a_saved_script_with_a_retired_blend_mode_renders_with_alpha(fake: object, tmp_path: Path) -> None:
    """A script saved when the menu had 'poisson' (never implemented) still renders: alpha, not a CLI error."""
    save_script(tmp_path / "sh010.nk")
    model = tmp_path / "face.onnx"
    model.write_bytes(b"x")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, plate_read(str(tmp_path / "sh010.####.exr")))
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    node["blend"]._value = "poisson"  # as a saved script sets it, bypassing the menu
    argv = commands.render_argv(node_settings.read(node))
    assert argv[argv.index("--blend") + 1] == "alpha"


def test_fractional_erode_and_feather_reach_render_and_farm(parser: argparse.ArgumentParser) -> None:
    settings = commands.Settings(cli=["facegraft"], plate="/p/sh010.####.exr", model="/m/face.onnx",
                                 track="/c/sh010.fgtrack.json", out="/c/r.####.exr", first=1001, last=1010,
                                 erode=-1.5, feather=2.25)
    render = _parse(parser, commands.render_argv(settings), ["facegraft"])
    farm = _parse(parser, commands.farm_argv(settings, commands.FarmOptions("openjd", 10, "x", "/c/jobs/x")),
                  ["facegraft"])
    assert (render.erode, render.feather) == (farm.erode, farm.feather) == (-1.5, 2.25)
    whole = commands.render_argv(settings._replace(erode=4.0, feather=12.0))
    assert whole[whole.index("--erode") + 1] == "4" and whole[whole.index("--feather") + 1] == "12"
