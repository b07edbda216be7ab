"""The bridge with the real FaceGraft CLI in a subprocess: progress, cancel, errors, reload."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nuke
import pytest
from facegraft_nuke import bridge, commands, config, knobs, model_info, nodes
from nuke_support import build_facegraft


def _node(plate: str, tmp_path: Path) -> nuke.Gizmo:
    model = tmp_path / "face.onnx"
    model.write_bytes(b"not read by track")
    read = nuke.Node("Read", "Read1")
    read.addKnob(nuke.File_Knob("file", value=plate))
    node = build_facegraft()
    node.setInput(0, read)
    node["model_file"].setValue(str(model))
    node["cache_folder"].setValue(str(tmp_path / "cache"))
    node["python"].setValue(sys.executable)
    node["first_frame"].setValue(1001)
    node["last_frame"].setValue(1012)
    return node


def _track_job(node: nuke.Gizmo, done: list) -> bridge.Job:
    chosen = knobs.settings(node)
    steps = [s for s in knobs.plan(chosen) if s.label == "track"]
    return bridge.Job(node.fullName(), "FaceGraft", steps, lambda warnings: done.append(warnings))


def test_settings_use_the_plate_read_and_parse_with_the_real_cli(fake: object, single_face_plate: str,
                                                                   tmp_path: Path) -> None:
    from facegraft.cli.main import build_parser

    node = _node(single_face_plate, tmp_path)
    chosen = knobs.settings(node)
    assert chosen.plate == single_face_plate and chosen.holdout is None
    parsed = build_parser().parse_args(commands.track_argv(chosen)[3:])
    assert (parsed.out, parsed.frames, parsed.face, parsed.smooth) == (chosen.track, "1001-1012", "largest", 0.5)
    parsed = build_parser().parse_args(commands.render_argv(chosen, overwrite=True)[3:])
    assert parsed.model == chosen.model and parsed.out == chosen.out and parsed.overwrite


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
    assert json.loads(Path(knobs.settings(node).track).read_text())  # the real track file
    assert done == [[]] and nuke.recorded("executeInMainThread")


def test_cancel_stops_the_cli_and_leaves_no_partial_output(fake: object, single_face_plate: str,
                                                           tmp_path: Path) -> None:
    node = _node(single_face_plate, tmp_path)
    nuke.ProgressTask.next_cancel_when = lambda task: len(task.progress) >= 2
    done: list = []
    job = _track_job(node, done)
    job.start()
    job.join(60)
    assert job.result is not None and job.result.cancelled and not done
    track = Path(knobs.settings(node).track)
    assert not track.exists() and not list(track.parent.glob("*.tmp*"))
    assert not nuke.recorded("message")  # a cancel is not an error dialog


def test_a_missing_plate_surfaces_the_cli_message_in_the_main_thread(fake: object, tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "plate.####.exr")
    node = _node(missing, tmp_path)
    nuke.queue_main_thread = True
    job = _track_job(node, [])
    job.start()
    job.join(60)
    assert not nuke.recorded("message")  # nothing shown from the worker thread itself
    nuke.run_main_queue()
    (shown,) = [c[1] for c in nuke.recorded("message")]
    assert "FaceGraft track failed (user error)" in shown
    assert missing in shown and "missing frame" in shown and "hint:" in shown


def test_render_button_reports_a_missing_model_without_running(fake: object, single_face_plate: str,
                                                               tmp_path: Path) -> None:
    node = _node(single_face_plate, tmp_path)
    node["model_file"].setValue(str(tmp_path / "gone.onnx"))
    assert knobs.render(node) is None
    (shown,) = [c[1] for c in nuke.recorded("message")]
    assert "gone.onnx does not exist" in shown and not nuke.ProgressTask.instances


def test_render_button_writes_a_processed_plate_through_the_cache_write(fake: object, tmp_path: Path) -> None:
    node = _node("unused", tmp_path)
    node.setInput(0, nuke.Node("Grade", "Grade1"))
    node.setInput(1, nuke.Node("Roto", "Roto1"))
    nuke.queue_main_thread = True
    job = knobs.render(node)
    assert job is not None
    executed = [c[1:] for c in nuke.recorded("execute")]
    assert executed == [("PlateWrite", 1001, 1012, 1), ("HoldoutWrite", 1001, 1012, 1)]
    job.join(60)
    nuke.run_main_queue()  # the cache Write wrote nothing here, so the CLI reports the missing frames
    (shown,) = [c[1] for c in nuke.recorded("message")]
    assert "plate.####.exr" in shown and node["status"].value().startswith("FaceGraft track failed")


def test_cancel_button_without_a_render_does_nothing(fake: object, tmp_path: Path) -> None:
    assert knobs.cancel(_node("x.####.exr", tmp_path)) is False


def test_render_button_tracks_renders_and_reloads(fake: object, single_face_plate: str, tmp_path: Path) -> None:
    """Render on a real plate with the real CLI: track, render every frame, reload; a second press keeps it all."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
    from render_models import build_identity_model  # type: ignore[import-not-found]

    from facegraft.inference.io import exr

    node = _node(single_face_plate, tmp_path)
    node["last_frame"].setValue(1004)
    node["blend"].setValue("multiband")
    node["color_match"].setValue("none")
    node["device"].setValue("cpu")
    build_identity_model(tmp_path / "face.onnx", res=64, shift=(0.2, -0.1, 0.1))
    job = knobs.render(node)
    assert job is not None and [s.label for s in job.steps] == ["track", "render"]
    job.join(300)
    assert job.result is not None and job.result.ok, job.result
    assert node["rendered"].value() is True and node["status"].value() == "rendered 1001-1004"
    assert ("execute", "RenderRead", "reload") in nuke.calls
    task = nuke.ProgressTask.instances[-1]
    assert task.progress[-1] == 100 and any("render frame 1004" in m for m in task.messages)
    chosen = knobs.settings(node)
    for frame in range(1001, 1005):
        image = exr.read_image(chosen.out.replace("####", str(frame)))
        params = json.loads(exr.attributes(image.spec, "facegraft/")["facegraft/params"])
        assert params["blend"] == "multiband" and params["feather"] == 12, params
        plate = exr.read_image(single_face_plate.replace("####", str(frame))).get(["R", "G", "B"])
        assert (image.get(["swap.A"]) > 0.5).sum() > 1000 and not (image.get(["R", "G", "B"]) == plate).all()
    written = {f: Path(chosen.out.replace("####", str(f))).stat().st_mtime_ns for f in range(1001, 1005)}

    again = knobs.render(node)  # same settings: nothing to track, every frame already complete
    assert again is not None and [(s.label, "--overwrite" in s.argv) for s in again.steps] == [("render", False)]
    again.join(300)
    assert again.result is not None and again.result.ok, again.result
    assert {f: Path(chosen.out.replace("####", str(f))).stat().st_mtime_ns for f in range(1001, 1005)} == written


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


def test_model_info_error_is_shown_on_the_node(fake: object, tmp_path: Path) -> None:
    node = _node("x.####.exr", tmp_path)
    thread = model_info.refresh(node)
    assert thread is not None
    thread.join(60)  # type: ignore[attr-defined]
    text = node[model_info.INFO_KNOB].value()
    assert text.startswith("cannot read the model") or "px" in text
    assert commands.describe_model({"resolution": 64, "identities": {"source": "A", "target": "B"},
                                    "colorspace": "ACEScct"}) == "64 px  |  A \u2192 B  |  ACEScct"
    assert nodes.value(node, "no_such_knob", 7) == 7


def test_model_line_describes_a_real_model_through_model_info(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
    from render_models import build_identity_model  # type: ignore[import-not-found]

    model = build_identity_model(tmp_path / "face.onnx", res=64, source="actor", target="double")
    assert model_info.describe(sys.executable, str(model)) == "64 px  |  actor \u2192 double  |  ACEScct  |  coverage whole_face"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert model_info.describe(sys.executable, str(bad)).startswith("cannot read the model: ")
