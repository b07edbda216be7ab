"""Submit to farm from the node: a job for the farm, never a render on the artist's machine; the studio's
defaults and the Farm tab in the job; the scheduler's answer in the dialog; cancellable, no time limit."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nuke
import pytest
from facegraft_nuke import bridge, commands, farm, knobs, nodes, paths
from nuke_support import plate_read, save_script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from render_models import build_identity_model  # type: ignore[import-not-found]  # noqa: E402

STUDIO = {"farm": {"engine": "deadline", "pool": "gpu", "group": "facegraft", "priority": 70, "chunk": 2,
                   "tags": "gpu", "facegraft_exe": "/opt/facegraft/bin/facegraft"}}


def _node(tmp_path: Path, plate: str) -> nuke.Gizmo:
    save_script(tmp_path / "comp" / "sh010_comp_v004.nk", 1001, 1003)
    model = build_identity_model(tmp_path / "face.onnx", res=64)
    node = nuke.createNode("FaceGraft")
    node.setInput(0, plate_read(plate, 1001, 1012))
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    return node


def _fake_deadline(folder: Path, answer: str, seconds: float = 0.0) -> Path:
    """A deadlinecommand that records its arguments and answers like Deadline (or hangs)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "called.json"
    exe = folder / "deadlinecommand"
    exe.write_text(f"#!{sys.executable}\nimport json, sys, time\n"
                   f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\ntime.sleep({seconds})\n"
                   f"print({answer!r})\n")
    exe.chmod(0o755)
    return record


def test_openjd_writes_a_bundle_and_runs_nothing_here(fake: object, single_face_plate: str, tmp_path: Path) -> None:
    node = _node(tmp_path, single_face_plate)
    assert node["farm_engine"].value() == "openjd"
    job = knobs.submit_farm(node)
    assert job is not None
    job.join(120)
    assert job.result is not None and job.result.ok, job.result
    (shown,) = [c[1] for c in nuke.recorded("message")]
    folder = Path(nodes.folder(node, "FaceGraft"))
    bundle = folder / "jobs" / "sh010_comp_FaceGraft1"
    assert {"template.yaml", "parameter_values.yaml"} <= {p.name for p in bundle.iterdir()}
    assert str(bundle) in shown and "deadline bundle submit" in shown and "nothing runs on this machine" in shown
    assert not (folder / "shot.fgtrack.json").exists() and not list(folder.glob("render.*.exr"))  # nothing ran
    log = (folder / "logs" / "farm.log").read_text()
    assert "openjd run" not in log and "--bundle-only" in log and "--dry-run" not in log
    (event,) = [json.loads(line) for line in log.splitlines() if line.startswith('{"event": "result"')]
    assert (event["engine"], event["bundle_only"], event["submitted"], event["job_dir"]) == ("openjd", True, False,
                                                                                          str(bundle))
    assert event["submit_command"] == f"deadline bundle submit {bundle}" and event["submit_command"] in shown
    assert json.loads(node["farm_frames"].value()) == {"frames": "1001-1003", "colorspace": "scene_linear"}


def test_deadline_job_uses_studio_defaults_and_shows_the_job_id(fake: object, single_face_plate: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    Path(os.environ["FACEGRAFT_NUKE_CONFIG"]).write_text(json.dumps(STUDIO))
    record = _fake_deadline(tmp_path / "deadline", "Result=Success\nJobID=64f1e2d3c4b5a69788\nJobID=64f1e2d3c4b5a69799")
    monkeypatch.setenv("DEADLINE_PATH", str(tmp_path / "deadline"))
    node = _node(tmp_path, single_face_plate)  # created by the user: the studio's farm defaults
    assert [node[k].value() for k in ("farm_engine", "farm_pool", "farm_group", "farm_priority", "farm_chunk")] == [
        "deadline", "gpu", "facegraft", 70, 2]
    node["farm_priority"].setValue(90)
    node["farm_job_name"].setValue("sh010 hero swap")
    answer = farm.submit(node, block=True)
    assert "Deadline job id(s): 64f1e2d3c4b5a69788, 64f1e2d3c4b5a69799" in answer
    log = (Path(nodes.folder(node, "FaceGraft")) / "logs" / "farm.log").read_text()
    (event,) = [json.loads(line) for line in log.splitlines() if line.startswith('{"event": "result"')]
    assert event["job_ids"] == ["64f1e2d3c4b5a69788", "64f1e2d3c4b5a69799"] and event["submitted"] is True
    assert node["farm_status"].value().endswith("64f1e2d3c4b5a69788, 64f1e2d3c4b5a69799")
    called = json.loads(record.read_text())
    assert called[:2] == ["-SubmitMultipleJobs", "-dependent"]
    job_info = (Path(nodes.folder(node, "FaceGraft")) / "jobs" / "sh010_hero_swap" / "render_job_info.job").read_text()
    for line in ("Name=sh010_hero_swap render", "Priority=90", "Pool=gpu", "Group=facegraft", "LimitGroups=gpu",
                 "ChunkSize=2", "Frames=1001-1003"):
        assert line in job_info.splitlines(), line
    plugin_info = (Path(nodes.folder(node, "FaceGraft")) / "jobs" / "sh010_hero_swap" / "render_plugin_info.job").read_text()
    assert "/opt/facegraft/bin/facegraft" in plugin_info


def test_a_hanging_submission_is_cancelled_with_nothing_left_running(fake: object, single_face_plate: str,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    record = _fake_deadline(tmp_path / "deadline", "Result=Success\nJobID=1", seconds=300)
    monkeypatch.setenv("DEADLINE_PATH", str(tmp_path / "deadline"))
    node = _node(tmp_path, single_face_plate)
    node["farm_engine"].setValue("deadline")
    job = farm.submit(node)
    assert isinstance(job, bridge.Job)  # a cancellable job: no fixed time limit, no orphan when it ends
    deadline = time.time() + 60
    while not record.exists():
        assert time.time() < deadline
        time.sleep(0.1)
    started = time.time()
    knobs.cancel(node)
    job.join(30)
    assert job.result is not None and job.result.cancelled and time.time() - started < 20
    assert nuke.recorded("message")[-1][1].endswith("farm submission cancelled.")


def test_what_each_scheduler_says_is_shown() -> None:
    """The dialog reads the `result` event of `farm submit --json-progress`, not the scheduler's own lines."""
    options = commands.FarmOptions(engine="opencue", chunk=10, name="sh010_FaceGraft1", job_dir="/c/jobs/x")
    said = bridge.StepResult(True, summary={"job_names": ["facegraft-sh010-sh010_FaceGraft1"], "job_ids": ["a1"]},
                             output=["OpenCue job launched: something else"])
    assert farm.answer(options, said) == "OpenCue job: facegraft-sh010-sh010_FaceGraft1"
    deadline = options._replace(engine="deadline")
    assert farm.answer(deadline, bridge.StepResult(True, summary={"job_ids": ["64f1", "64f2"]})) == (
        "Deadline job id(s): 64f1, 64f2")
    old_lines = bridge.StepResult(True, output=["Result=Success", "JobID=64f1"])  # no result event: nothing guessed
    assert "(none given; see the log)" in farm.answer(deadline, old_lines)
    bundle = bridge.StepResult(True, summary={"job_dir": "/c/jobs/y", "submit_command": "deadline bundle submit /c/jobs/y"})
    assert farm.answer(options._replace(engine="openjd"), bundle).endswith(
        "Submit it to Deadline Cloud with: deadline bundle submit /c/jobs/y")
    assert farm.job_name.__doc__ and paths.script_key("/s/sh010_comp_v004.nk") == "sh010_comp"


def test_the_node_asks_for_the_json_result_and_a_bundle_alone_for_openjd(fake: object, single_face_plate: str,
                                                                         tmp_path: Path) -> None:
    from facegraft_nuke import node_settings

    node = _node(tmp_path, single_face_plate)
    chosen = node_settings.read(node)
    for engine in ("openjd", "deadline", "opencue"):
        node["farm_engine"].setValue(engine)
        argv = farm.submit_argv(chosen, farm.options(node, chosen))
        assert "--json-progress" in argv and "--dry-run" not in argv
        assert ("--bundle-only" in argv) == (engine == "openjd"), engine
