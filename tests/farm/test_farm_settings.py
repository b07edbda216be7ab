"""The farm passes on every track and render setting, declared once, checked as the commands check them."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from farm_support import facegraft, write_plate

from facegraft.cli.main import build_parser
from facegraft.farm import deadline, engines, opencue, openjd, shot_options
from facegraft.farm.batch import load_shots
from facegraft.farm.job import Shot
from facegraft.farm.settings import CHUNK, ENGINE
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.render.settings import SETTINGS

# A value for each setting that is not its default, as a user would type it.
GIVEN = {"plate_colorspace": "Linear Rec.709 (sRGB)", "ocio_config": "/shows/x/config.ocio", "face": "2",
         "smooth": "0.25", "device": "cpu", "color_match": "lct", "blend": "multiband", "erode": "-2.5",
         "feather": "3", "on_error": "hold", "holdout": "/roto/hands.####.exr", "holdout_channel": "R",
         "compression": "dwaa", "layers": "swap,stmap", "batch": "2", "threads": "3", "precision": "fp16",
         "plate_part": "beauty", "occlusion": "none"}


def _subparser(parser, *path: str):  # type: ignore[no-untyped-def]
    for name in path:
        parser = next(a for a in parser._actions if a.dest in ("command", "farm_command")).choices[name]
    return parser


def test_every_setting_is_passed_on_and_given_a_test_value() -> None:
    assert set(shot_options.NAMES) == {s.name for s in SETTINGS} == set(GIVEN)
    for s in SETTINGS:
        assert s.parse(GIVEN[s.name]) != s.default, s.name  # the value shows whether it was passed


def test_the_engine_registry_is_the_one_list_of_engines() -> None:
    assert [engines.engine_module(name) for name in engines.ENGINES] == [openjd, opencue, deadline]
    assert ENGINE.choices == tuple(engines.ENGINES) and ENGINE.default == engines.DEFAULT in engines.ENGINES
    for name in engines.ENGINES:
        module = engines.engine_module(name)
        assert callable(module.files) and callable(module.check_available) and callable(module.submit)
    with pytest.raises(FaceGraftError, match="unknown farm engine 'tractor'") as err:
        engines.engine_module("tractor")
    assert "openjd, opencue, deadline" in err.value.describe()


def test_farm_submit_options_come_from_the_schema_with_no_default_of_their_own() -> None:
    submit = _subparser(build_parser(), "farm", "submit")
    actions = {a.dest: a for a in submit._actions}
    for s in SETTINGS:
        action = actions[s.name]
        assert action.option_strings == [s.flag] and action.default is None, s.name
        assert tuple(action.choices or ()) == s.choices, s.name
        assert s.shown_default in action.help, (s.name, action.help)
    assert actions["chunk"].default == CHUNK.default and actions["engine"].default == ENGINE.default
    assert tuple(actions["engine"].choices) == tuple(engines.ENGINES)
    args = submit.parse_args(["p.####.exr", "--model", "m.onnx", "--out", "o.####.exr"])
    assert shot_options.shot_options(args) == {}
    argv = [item for name, text in GIVEN.items() for item in (f"--{name.replace('_', '-')}", text)]
    args = submit.parse_args(["p.####.exr", "--model", "m.onnx", "--out", "o.####.exr", *argv])
    assert shot_options.shot_options(args) == {s.name: s.parse(GIVEN[s.name]) for s in SETTINGS}


def test_each_stage_gets_exactly_its_settings_and_the_commands_accept_them() -> None:
    options = {s.name: s.parse(GIVEN[s.name]) for s in SETTINGS}
    shot = Shot(name="sh010", plate="/p/sh010.####.exr", model="/m/a.onnx", out="/r/sh010.####.exr",
                track="/r/sh010.fgtrack.json", frames=(1001, 1002), options=options)
    parser = build_parser()
    track = parser.parse_args(shot.track_args())
    render = parser.parse_args(shot.render_args("1001-1002"))
    for s in SETTINGS:
        if "track" in s.stages:
            assert getattr(track, s.name) == options[s.name], s.name
        if "render" in s.stages:
            assert getattr(render, s.name) == options[s.name], s.name
    # tracking never sees the render's settings, and render's --face (a track id) is not the track's
    assert "--holdout" not in shot.track_args() and "--color-match" not in shot.track_args()
    assert "--face" not in shot.render_args("1001-1002") and "--smooth" not in shot.render_args("1001-1002")


def test_unset_settings_are_left_out_so_the_stage_default_applies() -> None:
    shot = Shot(name="sh010", plate="/p/a.####.exr", model="/m/a.onnx", out="/r/a.####.exr",
                track="/r/a.fgtrack.json", frames=(1001,), options={"erode": 4.0})
    assert shlex.join(shot.render_args("1001")).endswith("--frames 1001 --erode 4 --json-progress")


@pytest.mark.parametrize(("options", "words"), [
    ({"threads": 0}, "option 'threads' must be 1 or more, got 0"),
    ({"feather": -1}, "option 'feather' must be 0 or more, got -1"),
    ({"device": "gpu"}, "option 'device' must be one of auto, cuda, tensorrt, cpu, not 'gpu'"),
    ({"layers": "swap,depth"}, "option 'layers' must be all, none or a comma list of swap, matte, stmap"),
    ({"on-error": True}, "option 'on-error' takes one of fail, skip, hold, not True"),
    ({"chunk": 5}, "unknown option 'chunk'"),
])
def test_batch_file_options_are_checked_by_the_schema(shot_files: dict[str, str], options: dict, words: str) -> None:
    root = Path(shot_files["root"])
    path = root / "bad.yaml"
    path.write_text(yaml.safe_dump({"shots": [{"plate": shot_files["plate"], "model": shot_files["model"],
                                               "out": shot_files["out"], "options": options}]}))
    with pytest.raises(FaceGraftError) as err:
        load_shots(str(path))
    assert words in err.value.describe(), err.value.describe()


def test_batch_command_line_settings_override_the_file_for_every_shot(shot_files: dict[str, str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(shot_files["root"])
    monkeypatch.chdir(root)  # a holdout given on the command line is relative to the working folder
    write_plate(root / "roto", range(1001, 1003), name="h")
    path = root / "shots.yaml"
    doc = {"defaults": {"plate": shot_files["plate"], "model": shot_files["model"],
                        "options": {"color_match": "hist", "erode": 1}},
           "shots": [{"name": "a", "out": "a/a.####.exr", "frames": "1001-1002", "options": {"blend": "multiband"}},
                     {"name": "b", "out": "b/b.####.exr", "frames": "1001-1002", "options": {"erode": 2}}]}
    path.write_text(yaml.safe_dump(doc))
    a, b = load_shots(str(path), overrides={"color_match": "none", "holdout": "roto/h.####.exr"})
    assert a.options["color_match"] == b.options["color_match"] == "none"
    assert (a.options["erode"], b.options["erode"], a.options["blend"]) == (1.0, 2.0, "multiband")
    assert "blend" not in b.options
    result = facegraft("batch", str(path), "--dry-run", "--color-match", "lct", "--erode", "0.5")
    assert result.returncode == 0, result.stderr
    renders = [line for line in result.stdout.splitlines() if " render " in line]
    assert len(renders) == 2 and all("--color-match lct" in r and "--erode 0.5" in r for r in renders), renders
    assert "--blend multiband" in renders[0] and "--blend" not in renders[1]
    refused = facegraft("batch", str(path), "--dry-run", "--color-match", "warm")
    assert refused.returncode == 2 and "--color-match must be one of none, rct, lct, hist" in refused.stderr



def test_make_job_checks_the_chunk_by_its_declaration(shot_files: dict[str, str]) -> None:
    from facegraft.farm.submit import make_job, make_shot

    shot = make_shot(shot_files["plate"], shot_files["model"], shot_files["out"], frames="1001-1010")
    assert make_job(shot, chunk=CHUNK.default, executable=["facegraft"]).chunk_size == 10
    with pytest.raises(FaceGraftError, match="--chunk must be 1 or more, got 0"):
        make_job(shot, chunk=0, executable=["facegraft"])
