"""Engine files: OpenJD validated by openjd-model and `openjd check`; OpenCue and Deadline
against golden files (paths normalised) plus structural checks of chunks and dependencies.

Set FACEGRAFT_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from xml.dom import minidom

import outline
import pytest
import yaml
from farm_support import EXPECTED
from openjd.model import create_job, decode_job_template, preprocess_job_parameters
from outline.modules.shell import Shell

from facegraft.farm import deadline, opencue, openjd
from facegraft.farm.chunking import parse_range
from facegraft.farm.job import FarmJob
from facegraft.farm.submit import make_job, make_shot, write_files
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.sequence import format_frames

EXE = ("/opt/facegraft/bin/facegraft",)
OPTIONS = {"color_match": "rct", "blend": "multiband", "erode": 4, "feather": 12, "face": "largest", "smooth": 0.5}
WHEN = time.mktime((2024, 3, 1, 14, 30, 5, 0, 0, -1))  # submitted at 2024-03-01 14:30:05 local time


def _job(shot_files: dict[str, str], frames: str = "1001-1024", chunk: int = 10,
         engine_options: dict | None = None, **kw: object) -> FarmJob:
    shot = make_shot(shot_files["plate"], shot_files["model"], shot_files["out"], frames=frames, options=OPTIONS)
    engine = {"user": "td", "show": "demo", "shot": "sh010", "pool": "faces", "group": "gpu", **(engine_options or {})}
    return make_job(shot, chunk=chunk, executable=EXE, tags=("gpu", "facegraft"), memory_gb=24,
                    engine_options=engine, when=WHEN, **kw)  # type: ignore[arg-type]


def _frames(spec: str) -> list[int]:
    return [int(f) for f in parse_range(spec)]


def _same_command(argv: list[str], task_argv: tuple[str, ...]) -> None:
    """Equal word for word, except that the --frames values are compared as frame sets."""
    at = argv.index("--frames") + 1
    assert argv[:at] + argv[at + 1:] == list(task_argv[:at]) + list(task_argv[at + 1:])
    assert _frames(argv[at]) == _frames(task_argv[at])


def _normalise(text: str, root: str) -> str:
    text = text.replace(root, "$ROOT")
    return re.sub(r"<uid>\d+</uid>", "<uid>UID</uid>", text)


def _golden(name: str, text: str) -> None:
    path = EXPECTED / name
    if os.environ.get("FACEGRAFT_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


# --- Open Job Description -------------------------------------------------------------------

def test_openjd_template_is_valid_and_instantiates(shot_files: dict[str, str], tmp_path: Path) -> None:
    job = _job(shot_files)
    files = openjd.files(job, tmp_path / "job")
    doc = yaml.safe_load(files[openjd.TEMPLATE])
    values = yaml.safe_load(files[openjd.RUN_VALUES])
    template = decode_job_template(template=doc)
    params = preprocess_job_parameters(job_template=template, job_parameter_values=values,
                                       job_template_dir=tmp_path, current_working_dir=tmp_path)
    created = create_job(job_template=template, job_parameter_values=params)
    assert [s.name for s in created.steps] == ["track", "render"]
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["render"]["dependencies"] == [{"dependsOn": "track"}]
    assert "dependencies" not in steps["track"]
    chunk_range = steps["render"]["parameterSpace"]["taskParameterDefinitions"][0]["range"]
    assert chunk_range == ["1001-1010", "1011-1020", "1021-1024"]
    amounts = {a["name"]: a["min"] for a in steps["render"]["hostRequirements"]["amounts"]}
    assert amounts == {"amount.worker.gpu": 1, "amount.worker.memory": 24 * 1024}
    assert steps["render"]["hostRequirements"]["attributes"] == [
        {"name": "attr.facegraft.tags", "allOf": ["gpu", "facegraft"]}]
    # tracking needs no GPU unless one was asked for
    assert "amount.worker.gpu" not in {a["name"] for a in steps["track"]["hostRequirements"]["amounts"]}
    bundle = yaml.safe_load(files[openjd.BUNDLE_VALUES])["parameterValues"]
    assert {p["name"]: p["value"] for p in bundle} == values


def test_openjd_check_accepts_the_written_template(shot_files: dict[str, str], tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    write_files(openjd.files(_job(shot_files, frames="1001-1024x2", chunk=3), job_dir), job_dir)
    exe = openjd.openjd_executable()
    assert exe, "openjd-cli is a test dependency"
    check = subprocess.run([exe, "check", str(job_dir / openjd.TEMPLATE)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    summary = subprocess.run([exe, "summary", str(job_dir / openjd.TEMPLATE), "-p",
                              f"file://{job_dir / openjd.RUN_VALUES}", "--output", "json"],
                             capture_output=True, text=True)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    steps = {s["name"]: s for s in json.loads(summary.stdout)["steps"]}
    assert steps["track"]["total_tasks"] == 1
    assert steps["render"]["total_tasks"] == 4  # 12 frames (x2) in chunks of 3
    assert steps["render"]["dependencies"] == [{"step_name": "track"}]


def test_openjd_task_command_lines_are_the_job_command_lines(shot_files: dict[str, str], tmp_path: Path) -> None:
    """Resolving the template's parameters gives exactly FarmJob's command line for each chunk."""
    job = _job(shot_files)
    files = openjd.files(job, tmp_path)
    doc = yaml.safe_load(files[openjd.TEMPLATE])
    values = yaml.safe_load(files[openjd.RUN_VALUES])
    steps = {s["name"]: s for s in doc["steps"]}

    def resolve(args: list[str], chunk: str) -> list[str]:
        out = []
        for arg in args:
            for name, value in values.items():
                arg = arg.replace("{{Param." + name + "}}", value)
            out.append(arg.replace("{{Task.Param.Chunk}}", chunk))
        return out

    run = steps["render"]["script"]["actions"]["onRun"]
    for task in job.tasks()[1:]:
        assert [values["FaceGraft"], *resolve(run["args"], str(task.frames))] == list(task.argv)
    track = steps["track"]["script"]["actions"]["onRun"]
    assert [values["FaceGraft"], *resolve(track["args"], "")] == list(job.tasks()[0].argv)


# --- OpenCue --------------------------------------------------------------------------------

def test_opencue_spec_matches_golden(shot_files: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RENDER_TO", "FACILITY", "OL_OS", "OL_TAG_OVERRIDE", "SHOW", "SHOT"):
        monkeypatch.delenv(var, raising=False)
    text = opencue.files(_job(shot_files), tmp_path)[opencue.SPEC]
    _golden("opencue_job.xml", _normalise(text, shot_files["root"]))


def test_opencue_spec_structure(shot_files: dict[str, str], tmp_path: Path) -> None:
    job = _job(shot_files, frames="1001-1024x2", chunk=5)
    dom = minidom.parseString(opencue.spec(job))
    layers = {el.getAttribute("name"): el for el in dom.getElementsByTagName("layer")}
    assert list(layers) == ["track", "render"]

    def text(layer: str, tag: str) -> str:
        return layers[layer].getElementsByTagName(tag)[0].firstChild.data  # type: ignore[union-attr]

    assert (text("track", "range"), text("track", "chunk")) == ("1001", "1")
    assert _frames(text("render", "range")) == list(range(1001, 1024, 2)) and text("render", "chunk") == "5"
    assert text("render", "gpus") == "1" and not layers["track"].getElementsByTagName("gpus")
    assert text("render", "memory") == "24g"
    assert text("render", "tags") == "gpu | facegraft"
    (depend,) = dom.getElementsByTagName("depend")
    assert depend.getAttribute("type") == "LAYER_ON_LAYER"
    assert [depend.getElementsByTagName(t)[0].firstChild.data for t in ("deplayer", "onlayer")] == ["render", "track"]  # type: ignore[union-attr]
    # Cuebot replaces #FRAMESPEC# with each chunk's frames, as pyoutline computes them.
    cmd = text("render", "cmd")
    ol = outline.Outline("x", frame_range=text("render", "range"), serialize=False, current=False, show="s", shot="s", user="u")
    layer = Shell("render", command=["true"], range=text("render", "range"), chunk=5)
    ol.add_layer(layer)
    for task in job.tasks()[1:]:
        frames = layer.get_local_frame_set(int(task.frames[0]))
        spec = format_frames(parse_range(",".join(str(int(f)) for f in frames)))
        _same_command(shlex.split(cmd.replace(opencue.FRAMES_TOKEN, spec)), task.argv)
    assert shlex.split(text("track", "cmd")) == list(job.tasks()[0].argv)


# --- Deadline -------------------------------------------------------------------------------

def _info(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_deadline_files_match_golden(shot_files: dict[str, str], tmp_path: Path) -> None:
    files = deadline.files(_job(shot_files), Path(shot_files["root"]) / "jobs" / "sh010")
    assert deadline.plugin_files().items() <= files.items()  # the plugin to install (tested on its own)
    for name, text in files.items():
        if name not in deadline.PLUGIN_FILES:
            _golden(f"deadline/{name}", _normalise(text, shot_files["root"]))


@pytest.mark.parametrize(("frames", "chunk"), [("1001-1024", 10), ("1001-1024x3", 2), ("1001-1024", 1)])
def test_deadline_tasks_run_exactly_the_chunks(shot_files: dict[str, str], tmp_path: Path, frames: str, chunk: int) -> None:
    job = _job(shot_files, frames=frames, chunk=chunk)
    files = deadline.files(job, tmp_path)
    render, plugin = _info(files[deadline.RENDER_JOB]), _info(files[deadline.RENDER_PLUGIN])
    track = _info(files[deadline.TRACK_JOB])
    assert render["Plugin"] == track["Plugin"] == "FaceGraft"
    assert (track["Frames"], track["ChunkSize"]) == ("1001", "1")
    assert _frames(render["Frames"]) == list(job.shot.frames) and render["ChunkSize"] == str(chunk)
    assert render["LimitGroups"] == "gpu,facegraft" and render["Pool"] == "faces"
    # Deadline substitutes each task's first and last frame; that must give back the chunk.
    for task in job.tasks()[1:]:
        args = plugin["Arguments"].replace("<STARTFRAME>", str(task.frames[0])).replace("<ENDFRAME>", str(task.frames[-1]))
        argv = [plugin["Executable"], *shlex.split(args.replace("<QUOTE>", '"'))]
        _same_command(argv, task.argv)
    command = files[deadline.SUBMIT_SCRIPT].splitlines()[-1]
    assert shlex.split(command)[1:3] == ["-SubmitMultipleJobs", "-dependent"]
    assert shlex.split(command)[3:] == ["-job", str(tmp_path / deadline.TRACK_JOB), str(tmp_path / deadline.TRACK_PLUGIN),
                                        "-job", str(tmp_path / deadline.RENDER_JOB), str(tmp_path / deadline.RENDER_PLUGIN)]


def test_deadline_quotes_paths_with_spaces(tmp_path: Path) -> None:
    from farm_support import write_plate
    from render_models import build_identity_model

    root = tmp_path / "my shots"
    plate = write_plate(root / "plates", range(1, 4))
    build_identity_model(root / "m.onnx", res=64)
    shot = make_shot(plate, str(root / "m.onnx"), str(root / "out" / "o.####.exr"))
    job = make_job(shot, chunk=2, executable=EXE)
    plugin = _info(deadline.files(job, tmp_path)[deadline.RENDER_PLUGIN])
    args = shlex.split(plugin["Arguments"].replace("<QUOTE>", '"'))
    assert args[1] == plate and "<QUOTE>" in plugin["Arguments"]


def test_deadline_refuses_irregular_frames(shot_files: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(FaceGraftError, match="first and last frame"):
        deadline.files(_job(shot_files, frames="1001-1005,1010-1012"), tmp_path)


def test_opencue_import_is_lazy() -> None:
    """Importing facegraft.farm (and the CLI) must not import pyoutline/pycue."""
    code = "import sys, facegraft.farm.submit, facegraft.cli.main; print(any(m.split('.')[0] in ('outline', 'opencue') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


# --- job names, devices, commands ------------------------------------------------------------

def test_default_job_names_name_the_shot_the_model_and_the_time(shot_files: dict[str, str]) -> None:
    shot = make_shot(shot_files["plate"], shot_files["model"], shot_files["out"], frames="1001-1010")
    first = make_job(shot, chunk=5, executable=EXE, when=WHEN)
    later = make_job(shot, chunk=5, executable=EXE, when=WHEN + 61)
    assert first.name == "facegraft_sh010_swap_sh010_actor_20240301-143005"
    assert later.name == "facegraft_sh010_swap_sh010_actor_20240301-143106"
    odd = make_shot(shot_files["plate"], shot_files["model"], shot_files["out"], frames="1001-1010")
    odd = type(odd)(**{**odd.__dict__, "model": "/m/actor v2 (final).onnx"})
    assert make_job(odd, chunk=5, executable=EXE, when=WHEN).name == "facegraft_sh010_swap_actor_v2_final_20240301-143005"
    assert make_job(shot, chunk=5, executable=EXE, name="mine").name == "mine"


def test_gpu_render_tasks_name_their_device(shot_files: dict[str, str]) -> None:
    def device(job: FarmJob) -> str | None:
        argv = job.tasks()[1].argv
        return argv[argv.index("--device") + 1] if "--device" in argv else None

    shot = make_shot(shot_files["plate"], shot_files["model"], shot_files["out"], frames="1001-1010")
    assert device(make_job(shot, chunk=5, executable=EXE)) == "cuda"
    assert device(make_job(shot, chunk=5, executable=EXE, gpu_device="tensorrt")) == "tensorrt"
    assert device(make_job(shot, chunk=5, executable=EXE, gpu=False)) is None  # a CPU job keeps auto
    chosen = make_shot(shot_files["plate"], shot_files["model"], shot_files["out"], frames="1001-1010",
                       options={"device": "cpu"})
    assert device(make_job(chosen, chunk=5, executable=EXE)) == "cpu"  # --device given wins
    assert "--device" not in make_job(shot, chunk=5, executable=EXE).tasks()[0].argv  # tracking is unchanged
    with pytest.raises(FaceGraftError, match="--gpu-device must be one of cuda, tensorrt"):
        make_job(shot, chunk=5, executable=EXE, gpu_device="cpu")


def test_opencue_commands_keep_spaces_and_quotes_whatever_pyoutline_does_with_them(tmp_path: Path) -> None:
    from farm_support import write_plate
    from render_models import build_identity_model

    root = tmp_path / "it's my shot"
    plate = write_plate(root / "plates", range(1, 4))
    build_identity_model(root / "m.onnx", res=64)
    shot = make_shot(plate, str(root / "m.onnx"), str(root / "out" / "o.####.exr"))
    job = make_job(shot, chunk=2, executable=EXE, when=WHEN)
    outline_ = opencue.build_outline(job)
    for layer, task in zip(outline_.get_layers(), job.tasks()):
        words = layer.get_arg("command")
        assert isinstance(words, list)  # joined with spaces by every pyoutline: old and new the same line
        line = " ".join(words)
        assert shlex.split(line.replace(opencue.FRAMES_TOKEN, str(task.frames))) == list(task.argv)
    dom = minidom.parseString(opencue.spec(job))
    cmds = [el.firstChild.data for el in dom.getElementsByTagName("cmd")]  # type: ignore[union-attr]
    assert shlex.split(cmds[0]) == list(job.tasks()[0].argv) and plate in shlex.split(cmds[1])


# --- Deadline: the FaceGraft plugin ----------------------------------------------------------

def test_deadline_jobs_use_the_facegraft_plugin_or_the_command_line_one(shot_files: dict[str, str], tmp_path: Path) -> None:
    files = deadline.files(_job(shot_files), tmp_path)
    assert _info(files[deadline.RENDER_JOB])["Plugin"] == "FaceGraft"
    assert _info(files[deadline.RENDER_PLUGIN])["ProgressRegex"] == deadline.PROGRESS_REGEX
    assert set(deadline.PLUGIN_FILES) <= set(files)
    plain = deadline.files(_job(shot_files, engine_options={"deadline_plugin": "CommandLine"}), tmp_path)
    assert _info(plain[deadline.RENDER_JOB])["Plugin"] == "CommandLine"
    assert "ProgressRegex" not in plain[deadline.RENDER_PLUGIN] and not set(deadline.PLUGIN_FILES) & set(plain)


def _render_progress_lines(tmp_path: Path) -> list[str]:
    """The stdout of a real `facegraft render --json-progress` of four frames."""
    from render_fixtures import FIRST, aligned_transform, make_plate, make_track
    from render_models import build_identity_model

    from facegraft.inference.track.trackfile import save_track

    plate = make_plate(tmp_path / "plate", frames=range(FIRST, FIRST + 4))
    save_track(make_track(range(FIRST, FIRST + 4), aligned_transform(64, "whole_face", (64, 40))), tmp_path / "t.json")
    build_identity_model(tmp_path / "m.onnx", 64)
    result = subprocess.run([sys.executable, "-m", "facegraft.cli.main", "render", plate, "--track",
                             str(tmp_path / "t.json"), "--model", str(tmp_path / "m.onnx"), "--out",
                             str(tmp_path / "out" / "r.####.exr"), "--json-progress"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_facegraft_plugin_shows_each_frame_of_a_real_render(shot_files: dict[str, str], tmp_path: Path) -> None:
    from fake_deadline import load_plugin

    files = deadline.files(_job(shot_files, frames="1001-1024", chunk=10), tmp_path)
    module = load_plugin(files["FaceGraft/FaceGraft.py"])
    plugin = module.GetDeadlinePlugin()
    plugin.plugin_info = _info(files[deadline.RENDER_PLUGIN])
    plugin.start_frame, plugin.end_frame = 1011, 1020
    plugin.InitializeProcessCallback()
    assert plugin.PluginType == "Simple" and plugin.StdoutHandling
    # the command Deadline runs for the task 1011-1020: the job's own command line for that chunk
    argv = [plugin.RenderExecutableCallback(), *shlex.split(plugin.RenderArgumentCallback())]
    _same_command(argv, _job(shot_files, frames="1001-1024", chunk=10).tasks()[2].argv)
    for line in _render_progress_lines(tmp_path):
        plugin.feed(line)
    assert plugin.progress == [25.0, 50.0, 75.0, 100.0]
    assert plugin.status[0] == "facegraft render: frame 1001, 1 of 4" and plugin.status[-1].endswith("4 of 4")
    plugin.feed('{"event": "error", "message": "file not found", "file": "/p/a.1003.exr", "frame": 1003, "hint": "h"}')
    assert plugin.warnings == ["facegraft: /p/a.1003.exr: frame 1003: file not found (hint: h)"]
    plugin.CheckExitCodeCallback(0)
    for code, words in ((7, "storage failed"), (6, "another worker"), (2, "will not help"), (1, "crash")):
        with pytest.raises(RuntimeError):
            plugin.CheckExitCodeCallback(code)
        assert f"code {code}: " in str(plugin.failed) and words in str(plugin.failed)
    module.CleanupDeadlinePlugin(plugin)


def test_the_facegraft_plugin_files_are_what_deadline_loads() -> None:
    files = deadline.plugin_files()
    assert "def GetDeadlinePlugin()" in files["FaceGraft/FaceGraft.py"]
    assert "def CleanupDeadlinePlugin(" in files["FaceGraft/FaceGraft.py"]
    assert f"PROGRESS_REGEX = r'{deadline.PROGRESS_REGEX}'" in files["FaceGraft/FaceGraft.py"]  # one regex, both sides
    for name in ("FaceGraft/FaceGraft.param", "FaceGraft/FaceGraft.dlinit"):
        assert "ConcurrentTasks" in files[name]
