"""The settings schema: one declaration per setting, and every front end built from it or checked against it."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

from facegraft.cli.main import build_parser
from facegraft.cli.settings import ALL
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.models import face_model, runtime
from facegraft.inference.render import blend, colormatch, renderer
from facegraft.inference.render import settings as schema
from facegraft.inference.render.settings import ON_ERROR, SETTINGS, RenderSettings, Setting, SettingError
from facegraft.inference.track import tracker

DOCS = Path(__file__).resolve().parents[2] / "docs" / "render_settings.md"
REQUIRED = ("plate_colorspace", "ocio_config", "face", "smooth", "device", "color_match", "blend", "erode", "feather",
            "on_error", "holdout", "holdout_channel", "compression", "layers", "batch", "threads", "plate_part")


def _command(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return parser._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]


def test_every_setting_is_declared_once() -> None:
    names = [s.name for s in ALL]
    assert len(names) == len(set(names))
    assert set(REQUIRED) <= {s.name for s in SETTINGS}
    assert {s.name for s in ALL} - {s.name for s in SETTINGS} == {"engine", "chunk", "gpu_device"}
    for s in SETTINGS:
        assert set(s.stages) <= {"track", "render"} and s.help and s.flag == "--" + s.name.replace("_", "-")


def test_the_unified_defaults() -> None:
    assert (schema.default("erode"), schema.default("feather")) == (4, 12)
    assert (schema.default("color_match"), schema.default("blend")) == ("rct", "alpha")
    assert (schema.default("plate_colorspace"), schema.default("ocio_config")) == (
        colour.DEFAULT_PLATE_SPACE, colour.DEFAULT_CONFIG)
    assert (schema.default("face"), schema.default("smooth"), schema.default("device")) == ("largest", 0.5, "auto")
    assert (schema.default("on_error"), schema.default("holdout_channel"), schema.default("layers")) == (
        "fail", "A", "all")
    assert (schema.default("holdout"), schema.default("compression")) == (None, None)
    assert (schema.default("batch"), schema.default("threads")) == (4, 2)
    assert schema.default("plate_part") == "" and schema.setting("plate_part").stages == ("track", "render")


def test_render_settings_take_their_defaults_from_the_schema() -> None:
    fields = {f.name: f for f in dataclasses.fields(RenderSettings)}
    shared = set(fields) & {s.name for s in SETTINGS if "render" in s.stages}
    assert shared == {"plate_colorspace", "ocio_config", "plate_part", "color_match", "blend", "erode", "feather",
                      "holdout", "holdout_channel", "occlusion", "compression", "layers", "precision"}
    for name in shared:
        assert fields[name].default == schema.default(name), name
    assert fields["face"].default is None  # render's own: a track id, None = the track file's target
    plain = RenderSettings()
    assert (plain.erode, plain.feather, plain.color_match, plain.blend) == (4.0, 12.0, "rct", "alpha")
    assert plain.params()["erode"] == 4.0 and plain.groups == ("swap", "matte", "stmap")


def test_choices_come_from_the_modules_that_own_them() -> None:
    assert schema.setting("color_match").choices == colormatch.MODES == tuple(colormatch.METHODS)
    assert schema.setting("blend").choices == blend.MODES == tuple(blend.METHODS)
    assert schema.setting("device").choices == runtime.DEVICES
    assert schema.setting("on_error").choices == ON_ERROR
    assert schema.default("color_match") == colormatch.DEFAULT and schema.default("blend") == blend.DEFAULT


def test_every_registered_method_runs() -> None:
    rng = np.random.default_rng(1)
    swap, plate = rng.random((32, 32, 3), np.float32), rng.random((32, 32, 3), np.float32) * 0.5 + 0.2
    matte = np.zeros((32, 32), np.float32)
    matte[8:24, 8:24] = 1.0
    for mode in colormatch.MODES:
        out = colormatch.match(swap, plate, matte, mode)
        assert out.shape == swap.shape and np.isfinite(out).all(), mode
        assert np.array_equal(out, swap) == (mode == "none"), mode
    for mode in blend.MODES:
        out = blend.face_colour(plate, swap, matte, mode)
        assert out.shape == swap.shape and np.isfinite(out).all(), mode
        assert np.array_equal(out, swap) == (mode == "alpha"), mode


def test_the_library_fallbacks_agree_with_the_schema() -> None:
    """Functions called without a setting fall back to the schema's default, not to one of their own."""
    track = inspect.signature(tracker.track_shot).parameters
    assert (track["face"].default, track["smooth"].default) == (schema.default("face"), schema.default("smooth"))
    load = inspect.signature(face_model.load).parameters
    assert load["batch"].default == schema.default("batch") and load["device"].default == schema.default("device")
    assert face_model.DEFAULT_CPU_THREADS == schema.default("threads")
    assert inspect.signature(renderer.render_shot).parameters["on_error"].default == schema.default("on_error")


@pytest.mark.parametrize(("name", "value", "parsed"), [
    ("smooth", "0.25", 0.25), ("smooth", 1, 1.0), ("erode", "-2.5", -2.5), ("erode", 4, 4.0), ("batch", "8", 8),
    ("batch", 8, 8), ("face", "largest", "largest"), ("face", 2, "2"), ("layers", "swap,stmap", "swap,stmap"),
    ("color_match", "hist", "hist"), ("holdout", None, None), ("holdout", Path("/r/h.####.exr"), "/r/h.####.exr"),
])
def test_parse_converts_what_users_write(name: str, value: object, parsed: object) -> None:
    result = schema.setting(name).parse(value)
    assert result == parsed and type(result) is type(parsed)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("smooth", "1.5", "--smooth must be between 0 and 1, got 1.5"),
    ("smooth", "soft", "--smooth must be a number, not 'soft'"),
    ("erode", "nan", "--erode must be a finite number, not 'nan'"),
    ("feather", -1, "--feather must be 0 or more, got -1"),
    ("batch", "0", "--batch must be 1 or more, got 0"),
    ("batch", "2.5", "--batch must be a whole number, not '2.5'"),
    ("batch", "--4", "--batch must be a whole number, not '--4'"),
    ("threads", 2.0, "--threads must be a whole number, not 2.0"),
    ("color_match", "warm", "--color-match must be one of none, rct, lct, hist, not 'warm'"),
    ("device", True, "--device takes one of auto, cuda, tensorrt, cpu, not True"),
    ("face", "biggest", "--face must be 'largest' or a track id (a whole number), not 'biggest'"),
    ("layers", "swap,depth", "--layers must be all, none or a comma list of swap, matte, stmap, not 'swap,depth'"),
    ("ocio_config", ["a"], "--ocio-config takes text, not ['a']"),
])
def test_parse_refuses_with_a_readable_message(name: str, value: object, message: str) -> None:
    with pytest.raises(SettingError) as err:
        schema.setting(name).parse(value)
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.setting is schema.setting(name)


def test_a_declaration_that_contradicts_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="default 'soft'"):
        Setting("blend", "choice", "soft", "x", ("render",), choices=("alpha",))
    with pytest.raises(ValueError, match="kind 'colour'"):
        Setting("x", "colour", None, "x", ("render",))
    with pytest.raises(ValueError, match="stages"):
        Setting("x", "str", None, "x", ("comp",))
    with pytest.raises(ValueError, match="lists its choices"):
        Setting("x", "str", "a", "x", ("render",), choices=("a",))
    with pytest.raises(ValueError, match="default 20"):
        Setting("x", "int", 20, "x", ("render",), maximum=10)
    with pytest.raises(KeyError, match="no setting 'blur'"):
        schema.setting("blur")


def test_render_settings_refuse_bad_values_naming_the_flag() -> None:
    for kwargs, words in (({"blend": "poisson"}, "--blend must be one of alpha, multiband"),
                          ({"color_match": "warm"}, "--color-match must be one of"),
                          ({"feather": -2}, "--feather must be 0 or more"),
                          ({"layers": "swap,depth"}, "--layers")):
        with pytest.raises(FaceGraftError, match=re.escape(words)):
            RenderSettings(**kwargs)
    assert RenderSettings(erode=6, feather=0).params()["erode"] == 6.0


def test_the_json_dump_holds_every_declaration() -> None:
    doc = json.loads(schema.schema_json(ALL))
    assert doc["format"] == schema.FORMAT
    assert doc["settings"] == [json.loads(json.dumps(s.as_dict())) for s in ALL]
    entry = next(e for e in doc["settings"] if e["name"] == "color_match")
    assert entry["choices"] == list(colormatch.MODES) and entry["default"] == "rct" and entry["stages"] == ["render"]
    with pytest.raises(ValueError, match="declared twice"):
        schema.schema_json(SETTINGS + SETTINGS[:1])


@pytest.mark.parametrize("command", ["track", "render"])
def test_the_commands_build_their_options_from_the_schema(command: str) -> None:
    actions = {a.dest: a for a in _command(build_parser(), command)._actions}
    for s in schema.for_stage(command):
        action = actions[s.name]
        assert action.option_strings == [s.flag] and action.default == s.default, s.name
        assert tuple(action.choices or ()) == s.choices and action.metavar == s.metavar, s.name
        assert f"(default: {s.shown_default})" in action.help, action.help
    if command == "render":  # render's --face is its own option: a track id, not the track's target
        assert actions["face"].type is int and actions["face"].default is None
    else:
        assert tuple(actions["on_error"].choices) == ("fail", "skip")


@pytest.mark.parametrize(("argv", "message"), [
    (["--erode", "lots"], "argument --erode: --erode must be a number, not 'lots'"),
    (["--batch", "0"], "argument --batch: --batch must be 1 or more, got 0"),
    (["--feather", "-3"], "argument --feather: --feather must be 0 or more, got -3"),
    (["--blend", "poisson"], "argument --blend: --blend must be one of alpha, multiband, not 'poisson'"),
    (["--layers", "depth"], "argument --layers: --layers must be all, none or a comma list of swap, matte, stmap"),
])
def test_bad_render_options_are_refused_by_the_parser(argv: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["render", "p.####.exr", "--track", "t", "--model", "m", "--out", "o", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_docs_table_is_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert schema.markdown_table(ALL) in text, (
        "docs/render_settings.md is out of date with the settings schema: replace its table with the output of\n"
        "  facegraft settings --markdown")
    from facegraft.cli.main import main

    assert main(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out == schema.markdown_table(ALL)
    assert main(["settings"]) == 0
    listed = capsys.readouterr().out
    assert all(s.flag in listed for s in ALL) and "rct" in listed


def test_the_ocio_config_alias_is_stamped_as_the_versioned_config_it_stands_for() -> None:
    """``ocio://studio-config-latest`` means another config under another OpenColorIO: the stamp
    names the versioned URI, so such a frame on disk counts as rendered with other settings."""
    plain = RenderSettings()
    assert plain.ocio_config == colour.resolve_config(colour.DEFAULT_CONFIG) != colour.DEFAULT_CONFIG
    assert plain.ocio_config.startswith("ocio://studio-config-v") and plain.params()["ocio_config"] == plain.ocio_config
    assert RenderSettings(ocio_config=plain.ocio_config).params() == plain.params()  # resolving again changes nothing
    assert RenderSettings(ocio_config="/shows/x/config.ocio").ocio_config == "/shows/x/config.ocio"
    assert renderer.render_settings({"plate_part": "beauty"}).params()["plate_part"] == "beauty"


def test_the_help_says_what_compression_and_layers_apply_to() -> None:
    assert "of the plate's part holding the RGB; the FaceGraft layer parts are always ZIP" in (
        schema.setting("compression").help)
    assert schema.setting("layers").help.startswith("FaceGraft layer parts written besides the plate's parts")
    help_text = _command(build_parser(), "render").format_help()
    assert "--plate-part PART" in help_text and "--compression NAME" in help_text


def test_the_farm_settings_include_the_gpu_tasks_device() -> None:
    from facegraft.farm.job import GPU_DEVICES
    from facegraft.farm.settings import FARM_SETTINGS, GPU_DEVICE

    assert GPU_DEVICE in FARM_SETTINGS and GPU_DEVICE.choices == GPU_DEVICES and GPU_DEVICE.default == "cuda"
    assert json.loads(schema.schema_json(ALL))["settings"][-1]["name"] == "gpu_device"
