"""`facegraft farm submit` through the real CLI: dry runs, and bad input refused before anything is written."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from farm_support import facegraft, write_plate

from facegraft.farm import deadline, opencue, openjd
from facegraft.inference.io import exr


def _submit(files: dict[str, str], *extra: str, frames: str = "1001-1024", env: dict | None = None):
    job_dir = str(Path(files["root"]) / "jobs" / "sh010")
    args = ["farm", "submit", files["plate"], "--model", files["model"], "--out", files["out"],
            "--frames", frames, "--chunk", "10", "--job-dir", job_dir, *extra]
    return facegraft(*args, env=env), Path(job_dir)


@pytest.mark.parametrize(("engine", "names"), [
    ("openjd", [openjd.TEMPLATE, openjd.BUNDLE_VALUES, openjd.RUN_VALUES]),
    ("opencue", [opencue.SPEC]),
    ("deadline", [deadline.TRACK_JOB, deadline.TRACK_PLUGIN, deadline.RENDER_JOB, deadline.RENDER_PLUGIN, deadline.SUBMIT_SCRIPT,
                  *deadline.PLUGIN_FILES]),
])
def test_dry_run_writes_the_job_folder_only(shot_files: dict[str, str], engine: str, names: list[str]) -> None:
    result, job_dir = _submit(shot_files, "--engine", engine, "--dry-run", "--tags", "gpu")
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(job_dir)) for p in job_dir.rglob("*") if p.is_file()) == sorted(names)
    assert "3 render chunk(s)" in result.stderr and "nothing submitted" in result.stderr
    assert not Path(shot_files["out"]).parent.exists()  # nothing rendered, no track written


@pytest.mark.parametrize(("frames", "code", "words"), [
    ("1001-1010,1005-1020", 2, ["overlap", "1005-1010"]),
    ("", 2, ["empty"]),
    ("1001-1030", 2, ["missing frame", "1025-1030", "sh010.####.exr"]),
])
def test_bad_frames_fail_before_anything_is_written(shot_files: dict[str, str], frames: str, code: int, words: list[str]) -> None:
    result, job_dir = _submit(shot_files, "--engine", "opencue", "--dry-run", frames=frames)
    assert result.returncode == code, result.stderr
    for word in words:
        assert word in result.stderr
    assert not job_dir.exists()


def test_missing_plate_frame_in_the_middle_is_named(shot_files: dict[str, str]) -> None:
    os.remove(shot_files["plate"].replace("####", "1013"))
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--dry-run")
    assert result.returncode == 2 and "1013" in result.stderr and not job_dir.exists()


def test_missing_model_fails(shot_files: dict[str, str]) -> None:
    os.remove(shot_files["model"])
    result, job_dir = _submit(shot_files, "--engine", "openjd", "--dry-run")
    assert result.returncode == 2
    assert "model file does not exist" in result.stderr and shot_files["model"] in result.stderr
    assert not job_dir.exists()


def test_a_file_that_is_not_a_model_fails_with_exit_5(shot_files: dict[str, str]) -> None:
    Path(shot_files["model"]).write_bytes(b"not an onnx file")
    result, job_dir = _submit(shot_files, "--engine", "openjd", "--dry-run")
    assert result.returncode == 5, result.stderr
    assert not job_dir.exists()


def test_output_folder_under_a_file_fails(shot_files: dict[str, str]) -> None:
    blocker = Path(shot_files["root"]) / "renders"
    blocker.write_text("a file where the output folder should be")
    result, job_dir = _submit(shot_files, "--engine", "openjd", "--dry-run")
    assert result.returncode == 2 and "output folder cannot be created" in result.stderr
    assert not job_dir.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_read_only_output_folder_fails(shot_files: dict[str, str]) -> None:
    out_dir = Path(shot_files["out"]).parent
    out_dir.mkdir()
    out_dir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result, job_dir = _submit(shot_files, "--engine", "openjd", "--dry-run")
    finally:
        out_dir.chmod(0o755)
    assert result.returncode == 2 and "not writable" in result.stderr and not job_dir.exists()


def test_opencue_without_a_cuebot_fails_before_writing(shot_files: dict[str, str], tmp_path: Path) -> None:
    env = {"CUEBOT_HOSTS": "", "OPENCUE_CONFIG_FILE": "", "OPENCUE_CONF": "", "HOME": str(tmp_path / "home")}
    result, job_dir = _submit(shot_files, "--engine", "opencue", env=env)
    assert result.returncode == 2 and "CUEBOT_HOSTS" in result.stderr
    assert not job_dir.exists()


def test_deadline_without_deadlinecommand_fails_before_writing(shot_files: dict[str, str]) -> None:
    env = {"PATH": str(Path(shot_files["root"]) / "empty"), "DEADLINE_PATH": ""}
    result, job_dir = _submit(shot_files, "--engine", "deadline", env=env)
    assert result.returncode == 2 and "deadlinecommand" in result.stderr
    assert not job_dir.exists()


def test_deadline_submission_calls_deadlinecommand_with_both_jobs(shot_files: dict[str, str]) -> None:
    """A stand-in `deadlinecommand` (a shell script) records what it was asked to submit."""
    bin_dir = Path(shot_files["root"]) / "deadline_bin"
    bin_dir.mkdir()
    log = bin_dir / "calls.txt"
    script = bin_dir / "deadlinecommand"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\necho "Result=Success"\necho "JobID=abc"\n')
    script.chmod(0o755)
    result, job_dir = _submit(shot_files, "--engine", "deadline", env={"DEADLINE_PATH": str(bin_dir)})
    assert result.returncode == 0, result.stderr
    args = log.read_text().split("\n")[:-1]
    assert args == ["-SubmitMultipleJobs", "-dependent",
                    "-job", str(job_dir / deadline.TRACK_JOB), str(job_dir / deadline.TRACK_PLUGIN),
                    "-job", str(job_dir / deadline.RENDER_JOB), str(job_dir / deadline.RENDER_PLUGIN)]


def test_bad_options_are_user_errors(shot_files: dict[str, str]) -> None:
    for extra in (["--chunk", "0"], ["--priority", "300"], ["--tags", "gpu,bad tag"], ["--name", "bad name"]):
        result, job_dir = _submit(shot_files, "--engine", "openjd", "--dry-run", *extra)
        assert result.returncode == 2, (extra, result.stderr)
        assert not job_dir.exists()


def test_holdout_reaches_every_render_task_as_an_absolute_path(shot_files: dict[str, str]) -> None:
    root = Path(shot_files["root"])
    write_plate(root / "roto", range(1001, 1025), name="hands")
    job_dir = root / "jobs" / "sh010"
    args = ["farm", "submit", shot_files["plate"], "--model", shot_files["model"], "--out", shot_files["out"],
            "--frames", "1001-1024", "--job-dir", str(job_dir), "--engine", "deadline", "--dry-run",
            "--holdout", "roto/hands.####.exr", "--holdout-channel", "R", "--blend", "multiband"]
    result = facegraft(*args, cwd=str(root))  # the holdout is relative to the working folder
    assert result.returncode == 0, result.stderr
    plugin = (job_dir / deadline.RENDER_PLUGIN).read_text()
    holdout = str(root / "roto" / "hands.####.exr")
    assert f"--holdout {holdout} --holdout-channel R" in plugin and "--blend multiband" in plugin
    assert "--holdout" not in (job_dir / deadline.TRACK_PLUGIN).read_text()  # tracking never sees it


def test_missing_holdout_frames_fail_before_anything_is_written(shot_files: dict[str, str]) -> None:
    root = Path(shot_files["root"])
    result, job_dir = _submit(shot_files, "--engine", "openjd", "--dry-run", "--holdout", str(root / "roto" / "hands.####.exr"))
    assert result.returncode == 2 and "the holdout has 24 missing frame(s): 1001-1024" in result.stderr
    assert "hands.####.exr" in result.stderr and not job_dir.exists()
    write_plate(root / "roto", [*range(1001, 1010), *range(1012, 1025)], name="hands")
    result, job_dir = _submit(shot_files, "--engine", "openjd", "--dry-run", "--holdout", str(root / "roto" / "hands.####.exr"))
    assert result.returncode == 2 and "the holdout has 2 missing frame(s): 1010-1011" in result.stderr
    assert not job_dir.exists()


def test_a_frame_file_means_its_sequence_and_the_choice_is_said(shot_files: dict[str, str]) -> None:
    root = Path(shot_files["root"])
    write_plate(root / "roto", range(1001, 1025), name="hands")
    frame_file = shot_files["plate"].replace("####", "1007")
    result, job_dir = _submit({**shot_files, "plate": frame_file}, "--engine", "deadline", "--dry-run",
                              "--holdout", str(root / "roto" / "hands.1001.exr"))
    assert result.returncode == 0, result.stderr
    assert f"sh010.1007.exr is a frame of the sequence {shot_files['plate']} (24 frame(s) on disk" in result.stderr
    assert "hands.1001.exr is a frame of the sequence" in result.stderr
    arguments = (job_dir / deadline.RENDER_PLUGIN).read_text()
    assert f"render {shot_files['plate']} " in arguments and str(root / "roto" / "hands.####.exr") in arguments


def test_gpu_render_tasks_get_an_explicit_device(shot_files: dict[str, str]) -> None:
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "--device cuda" in (job_dir / deadline.RENDER_PLUGIN).read_text()
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--dry-run", "--gpu-device", "tensorrt")
    assert "--device tensorrt" in (job_dir / deadline.RENDER_PLUGIN).read_text()
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--dry-run", "--no-gpu")
    assert "--device" not in (job_dir / deadline.RENDER_PLUGIN).read_text()
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--dry-run", "--gpu-device", "cpu")
    assert result.returncode == 2 and "--gpu-device" in result.stderr


def test_each_submission_gets_its_own_job_name(shot_files: dict[str, str]) -> None:
    root = Path(shot_files["root"])
    base = ["farm", "submit", shot_files["plate"], "--model", shot_files["model"], "--out", shot_files["out"],
            "--frames", "1001-1004", "--engine", "openjd", "--dry-run"]
    first = facegraft(*base)
    assert first.returncode == 0, first.stderr
    (job,) = (root / "renders" / "jobs").iterdir()
    assert re.fullmatch(r"facegraft_sh010_swap_sh010_actor_\d{8}-\d{6}", job.name), job.name
    assert f"job {job.name}:" in first.stderr


def test_output_spelled_differently_but_the_plate_fails(shot_files: dict[str, str]) -> None:
    plate = shot_files["plate"]
    folder, name = os.path.split(plate)
    other_spelling = os.path.join(folder, ".", name.replace("####", "%04d"))
    result, job_dir = _submit({**shot_files, "out": other_spelling}, "--engine", "openjd", "--dry-run")
    assert result.returncode == 2 and "overwrite the plate" in result.stderr
    assert not job_dir.exists()


def test_a_video_plate_is_refused_with_the_ingest_command(shot_files: dict[str, str]) -> None:
    video = Path(shot_files["root"]) / "clip.mp4"
    video.write_bytes(b"not really a movie")
    result, job_dir = _submit({**shot_files, "plate": str(video)}, "--engine", "openjd", "--dry-run")
    assert result.returncode == 2 and "not a video file" in result.stderr and "facegraft ingest" in result.stderr
    assert not job_dir.exists()


def test_openjd_bundle_only_writes_the_bundle_and_says_so_in_a_json_result(shot_files: dict[str, str]) -> None:
    result, job_dir = _submit(shot_files, "--engine", "openjd", "--bundle-only", "--json-progress")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # stdout: JSON lines only
    assert [e["event"] for e in events] == ["result"]
    (event,) = events
    assert (event["stage"], event["engine"], event["job_dir"], event["exit_code"]) == ("farm", "openjd", str(job_dir), 0)
    assert (event["bundle_only"], event["dry_run"], event["submitted"], event["job_ids"]) == (True, False, False, [])
    assert event["submit_command"] == f"deadline bundle submit {job_dir}" and event["chunks"] == 3
    assert sorted(event["files"]) == sorted([openjd.TEMPLATE, openjd.BUNDLE_VALUES, openjd.RUN_VALUES])
    assert all((job_dir / name).is_file() for name in event["files"])
    assert "deadline bundle submit" in result.stderr and "openjd run" not in result.stderr
    assert not Path(shot_files["out"]).parent.exists()  # nothing ran: no track, no frame


def test_bundle_only_is_for_openjd_and_errors_are_json_events(shot_files: dict[str, str]) -> None:
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--bundle-only", "--json-progress")
    assert result.returncode == 2 and not job_dir.exists()
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["event"] == "error" and "--bundle-only" in event["message"] and "--dry-run" in event["hint"]


def test_deadline_job_ids_come_back_in_the_result_event(shot_files: dict[str, str]) -> None:
    bin_dir = Path(shot_files["root"]) / "deadline_bin"
    bin_dir.mkdir()
    script = bin_dir / "deadlinecommand"
    script.write_text('#!/bin/sh\necho "Result=Success"\necho "JobID=64f1aa"\necho ""\necho "JobID=64f1bb"\n')
    script.chmod(0o755)
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--json-progress", env={"DEADLINE_PATH": str(bin_dir)})
    assert result.returncode == 0, result.stderr
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (event["event"], event["submitted"], event["job_ids"]) == ("result", True, ["64f1aa", "64f1bb"])
    assert event["submit_command"].startswith("deadlinecommand -SubmitMultipleJobs -dependent -job")
    assert "JobID=64f1aa" in result.stderr  # deadlinecommand's own answer, for the log


def test_a_plate_part_the_plate_lacks_fails_before_anything_is_written(shot_files: dict[str, str]) -> None:
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--dry-run", "--plate-part", "beauty")
    assert result.returncode == 2 and "no part 'beauty' (parts: 0 (R, G, B))" in result.stderr
    assert not job_dir.exists()
    root = Path(shot_files["root"])
    for frame in range(1001, 1025):  # the plate again, as a two-part file: its RGB in a part called beauty
        spec = exr.new_spec(8, 8, ["R", "G", "B"], np.float16)
        spec.attribute("oiio:subimagename", "beauty")
        depth = exr.new_spec(8, 8, ["Z"], np.float32)
        depth.attribute("oiio:subimagename", "depth")
        exr.write_parts(root / "mp" / f"sh010.{frame:04d}.exr",
                        [exr.Part(depth, pixels=np.ones((8, 8, 1), np.float32)),
                         exr.Part(spec, pixels=np.zeros((8, 8, 3), np.float16))])
    result, job_dir = _submit({**shot_files, "plate": str(root / "mp" / "sh010.####.exr")}, "--engine", "deadline",
                              "--dry-run", "--plate-part", "beauty")
    assert result.returncode == 0, result.stderr
    for name in (deadline.TRACK_PLUGIN, deadline.RENDER_PLUGIN):  # both stages read that part
        assert "--plate-part beauty" in (job_dir / name).read_text(), name


def test_every_exit_code_is_documented_for_the_farm() -> None:
    """Each error class's exit code (inference/errors.py) is in docs/farm.md's table and in `farm submit --help`."""
    import inspect

    from facegraft.cli import farm as farm_cli
    from facegraft.inference import errors

    codes = {cls.exit_code: name for name, cls in inspect.getmembers(errors, inspect.isclass)
             if issubclass(cls, errors.FaceGraftError)}
    assert codes[6] == "DeviceError" and codes[7] == "StorageError" and set(codes) == {2, 3, 4, 5, 6, 7}
    table = (Path(__file__).resolve().parents[2] / "docs" / "farm.md").read_text()
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.*)\|$", table, re.M)}
    assert set(codes) <= set(rows)
    assert "on another node" in rows[6] and "yes" in rows[7] and "full" in rows[7]
    for code in codes:
        assert re.search(rf"^  {code} +\S", farm_cli.__doc__ or "", re.M), code
