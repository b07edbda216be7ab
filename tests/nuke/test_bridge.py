"""The bridge with the FaceGraft CLI in a subprocess: progress, errors, logs, and no process left behind --
on Cancel, when the node is deleted, when the script closes, and when Nuke itself dies."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nuke
import pytest
from facegraft_nuke import bridge, commands, config, knobs, model_info, node_settings, rendering
from nuke_support import HERE, PLUGIN, plate_read, save_script

# A CLI stand-in: starts a grandchild that ignores interrupts and terminates (only a kill of the group
# stops it), writes both pids, reports progress, then waits.
FAKE_CLI = r'''
import json, os, signal, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print("a line for the log", file=sys.stderr, flush=True)
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump({"cli": os.getpid(), "grandchild": grandchild.pid}, f)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
print(json.dumps({"event": "start", "stage": "render", "total": 10}), flush=True)
print(json.dumps({"event": "progress", "stage": "render", "done": 1, "total": 10, "frame": 1001}), flush=True)
time.sleep(120)
'''


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by its new parent) is gone for our purpose
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline and [p for p in pids if alive(p)]:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def wait_for(path: Path, timeout: float = 30.0) -> dict:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return json.loads(path.read_text())


def fake_job(tmp_path: Path, key: str = "FaceGraft:test") -> tuple[bridge.Job, Path]:
    script = tmp_path / "fake_cli.py"
    tmp_path.mkdir(parents=True, exist_ok=True)
    script.write_text(FAKE_CLI)
    pids = tmp_path / "pids.json"
    step = bridge.Step("render", [sys.executable, str(script), str(pids)], log=str(tmp_path / "logs" / "render.log"))
    return bridge.Job(key, "FaceGraft test", lambda job: job.step(step)), pids


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are checked the POSIX way here")


def test_cancel_stops_the_whole_process_group(fake: object, tmp_path: Path) -> None:
    job, pids_file = fake_job(tmp_path)
    assert job.daemon is False  # Python waits for a render rather than cutting it off at exit
    job.start()
    pids = wait_for(pids_file)
    assert alive(pids["cli"]) and alive(pids["grandchild"])
    job.cancel()
    job.join(30)
    assert job.result is not None and job.result.cancelled and not job.is_alive()
    assert wait_gone([pids["cli"], pids["grandchild"]]) == []
    log = (tmp_path / "logs" / "render.log").read_text()
    assert "fake_cli.py" in log and "a line for the log" in log and "cancelled" in log


def test_closing_the_script_and_deleting_the_node_stop_their_renders(fake: object, tmp_path: Path) -> None:
    first, first_pids = fake_job(tmp_path / "a", "FaceGraft:a")
    second, second_pids = fake_job(tmp_path / "b", "FaceGraft:b")
    for job in (first, second):
        job.start()
    pids = [wait_for(first_pids), wait_for(second_pids)]
    started = time.time()
    assert nuke.run_callbacks("OnScriptClose") == 1  # what Nuke runs on File > Close and on quit
    assert time.time() - started < 15 and not first.is_alive() and not second.is_alive()
    assert wait_gone([p for found in pids for p in found.values()]) == []

    node = nuke.createNode("FaceGraft")
    node_job, node_pids = fake_job(tmp_path / "c", "FaceGraft:" + node["node_id"].value())
    node_job.start()
    found = wait_for(node_pids)
    nuke.delete(node)
    node_job.join(30)
    assert node_job.result is not None and node_job.result.cancelled
    assert wait_gone(list(found.values())) == []


def test_when_nuke_dies_the_watchdog_stops_the_render(tmp_path: Path) -> None:
    """Nuke killed outright runs no callback: the watchdog sees its stdin close and stops the group."""
    (tmp_path / "fake_cli.py").write_text(FAKE_CLI)
    pids_file = tmp_path / "pids.json"
    host = f'''
import sys
sys.path[:0] = [{str(HERE / "fake_nuke")!r}, {str(PLUGIN)!r}]
from facegraft_nuke import bridge
step = bridge.Step("render", [sys.executable, {str(tmp_path / "fake_cli.py")!r}, {str(pids_file)!r}])
job = bridge.Job("k", "FaceGraft test", lambda job: job.step(step))
job.start()
job.join()
'''
    nuke_like = subprocess.Popen([sys.executable, "-c", host])
    try:
        pids = wait_for(pids_file)
        assert alive(pids["cli"]) and alive(pids["grandchild"])
        os.kill(nuke_like.pid, signal.SIGKILL)
        nuke_like.wait(10)
        assert wait_gone([pids["cli"], pids["grandchild"]]) == []
    finally:
        if nuke_like.poll() is None:
            nuke_like.kill()


# -- with the real CLI ------------------------------------------------------------------------------------


def _node(plate: str, tmp_path: Path, last: int = 1012) -> nuke.Gizmo:
    save_script(tmp_path / "comp" / "sh010_comp_v001.nk", 1001, last)
    model = tmp_path / "face.onnx"
    model.write_bytes(b"not read by track")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, plate_read(plate, 1001, 1012))
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    node["device"].setValue("cpu")
    return node


def _track_job(node: nuke.Gizmo, done: list) -> bridge.Job:
    chosen = node_settings.read(node)
    step = bridge.Step("track", commands.track_argv(chosen), log=str(Path(chosen.out).parent / "logs" / "track.log"))
    return bridge.Job(rendering.job_key(node), "FaceGraft", lambda job: job.step(step), done.append)


def test_track_progress_reaches_the_progress_task(fake: object, single_face_plate: str, tmp_path: Path) -> None:
    node = _node(single_face_plate, tmp_path)
    done: list = []
    job = _track_job(node, done)
    job.start()
    job.join(120)
    assert job.result is not None and job.result.ok, job.result
    task = nuke.ProgressTask.instances[-1]
    assert task.progress[-1] == 100 and task.progress == sorted(task.progress) and len(task.progress) >= 12
    assert any("frame 1012" in m for m in task.messages)
    chosen = node_settings.read(node)
    assert json.loads(Path(chosen.track).read_text())  # the real track file
    assert done and done[0].ok and done[0].summary["frames"] == 12 and nuke.recorded("executeInMainThread")
    log = (Path(chosen.out).parent / "logs" / "track.log").read_text()
    assert "facegraft.cli track" in log and '"event": "result"' in log and "exit code 0" in log


def test_cancel_stops_the_cli_and_leaves_no_partial_output(fake: object, single_face_plate: str,
                                                           tmp_path: Path) -> None:
    node = _node(single_face_plate, tmp_path)
    nuke.ProgressTask.next_cancel_when = lambda task: len(task.progress) >= 2
    done: list = []
    job = _track_job(node, done)
    job.start()
    job.join(60)
    assert job.result is not None and job.result.cancelled and done[0].cancelled
    track = Path(node_settings.read(node).track)
    assert not track.exists() and not list(track.parent.glob("*.tmp*"))
    assert not nuke.recorded("message")  # a cancel is not an error dialog


def test_a_failure_surfaces_the_cli_message_in_the_main_thread(fake: object, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "plate.####.exr")
    node = _node(missing, tmp_path)
    nuke.queue_main_thread = True
    job = knobs.render(node)
    assert job is not None
    job.join(60)
    assert not nuke.recorded("message")  # nothing shown from the worker thread itself
    nuke.run_main_queue()
    (shown,) = [c[1] for c in nuke.recorded("message")]
    assert "FaceGraft track failed (user error)" in shown
    assert missing in shown and "missing frame" in shown and "hint:" in shown
    assert node["status"].value().startswith("FaceGraft track failed") and node["rendered"].value() is False


def test_render_button_reports_what_to_fix_without_running(fake: object, single_face_plate: str,
                                                           tmp_path: Path) -> None:
    node = _node(single_face_plate, tmp_path)
    node["model_file"].setValue(str(tmp_path / "gone.onnx"))
    assert knobs.render(node) is None
    (shown,) = [c[1] for c in nuke.recorded("message")]
    assert "gone.onnx does not exist" in shown and not nuke.ProgressTask.instances
    assert knobs.cancel(node) is False


def test_config_order_knob_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "nuke.json"
    cfg.write_text(json.dumps({"python": sys.executable}))
    monkeypatch.setenv(config.ENV_CONFIG, str(cfg))
    monkeypatch.delenv(config.ENV_PYTHON, raising=False)
    assert config.find_python("") == sys.executable
    monkeypatch.setenv(config.ENV_PYTHON, str(tmp_path / "missing-python"))
    with pytest.raises(config.ConfigError, match=r"\$FACEGRAFT_PYTHON names .*missing-python"):
        config.find_python("")
    assert config.find_python(sys.executable) == sys.executable
    monkeypatch.delenv(config.ENV_PYTHON)
    cfg.unlink()
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.find_python("")


def test_child_env_drops_nukes_python_settings() -> None:
    env = bridge.child_env({"PYTHONHOME": "/nuke", "PYTHONPATH": "/nuke/lib", "PATH": "/usr/bin"})
    assert "PYTHONHOME" not in env and "PYTHONPATH" not in env and env["PATH"] == "/usr/bin"


def test_model_line_describes_a_real_model_once_per_model(fake: object, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the panel again runs no process; another model (or the same file changed) is described anew."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
    from render_models import build_identity_model  # type: ignore[import-not-found]

    model = build_identity_model(tmp_path / "face.onnx", res=64, source="actor", target="double")
    runs: list[list[str]] = []
    real = bridge.run_text
    monkeypatch.setattr(bridge, "run_text", lambda argv, timeout=120.0: runs.append(argv) or real(argv, timeout))
    node = nuke.createNode("FaceGraft")
    node["python"].setValue(sys.executable)
    node["model_file"].setValue(str(model))
    thread = model_info.refresh(node)  # the model was picked
    assert thread is not None and model_info.refresh(node) is None  # asked once, even while it runs
    thread.join(60)
    for _ in range(2):  # the panel opened twice
        knobs.knob_changed(node, nuke.String_Knob("showPanel"))
    assert node["model_info"].value() == "64 px  |  actor \u2192 double  |  ACEScct  |  coverage whole_face"
    assert len(runs) == 1
    other = nuke.createNode("FaceGraft")  # another node with the same model: remembered for the session
    other["python"].setValue(sys.executable)
    other["model_file"].setValue(str(model))
    assert model_info.refresh(other) is None and other["model_info"].value() == node["model_info"].value()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    node["model_file"].setValue(str(bad))
    thread = model_info.refresh(node)
    assert thread is not None
    thread.join(60)
    assert node["model_info"].value().startswith("cannot read the model: ") and len(runs) == 2
    assert model_info.refresh(node) is not None  # a failure is asked again next time
