"""`facegraft farm submit` through the real CLI: dry runs, and bad input refused before anything is written."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from farm_support import facegraft

from facegraft.farm import deadline, opencue, openjd


def _submit(files: dict[str, str], *extra: str, frames: str = "1001-1024", env: dict | None = None):
    job_dir = str(Path(files["root"]) / "jobs" / "sh010")
    args = ["farm", "submit", files["plate"], "--model", files["model"], "--out", files["out"],
            "--frames", frames, "--chunk", "10", "--job-dir", job_dir, *extra]
    return facegraft(*args, env=env), Path(job_dir)


@pytest.mark.parametrize(("engine", "names"), [
    ("openjd", [openjd.TEMPLATE, openjd.BUNDLE_VALUES, openjd.RUN_VALUES]),
    ("opencue", [opencue.SPEC]),
    ("deadline", [deadline.TRACK_JOB, deadline.TRACK_PLUGIN, deadline.RENDER_JOB, deadline.RENDER_PLUGIN, deadline.SUBMIT_SCRIPT]),
])
def test_dry_run_writes_the_job_folder_only(shot_files: dict[str, str], engine: str, names: list[str]) -> None:
    result, job_dir = _submit(shot_files, "--engine", engine, "--dry-run", "--tags", "gpu")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in job_dir.iterdir()) == sorted(names)
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
    result, job_dir = _submit(shot_files, "--engine", "deadline", "--dry-run", "--holdout", "roto/hands.####.exr",
                              "--holdout-channel", "R", "--blend", "multiband")
    assert result.returncode == 0, result.stderr
    plugin = (job_dir / deadline.RENDER_PLUGIN).read_text()
    holdout = str(Path(os.getcwd()) / "roto" / "hands.####.exr")
    assert f"--holdout {holdout} --holdout-channel R" in plugin and "--blend multiband" in plugin
    assert "--holdout" not in (job_dir / deadline.TRACK_PLUGIN).read_text()  # tracking never sees it
    assert not (root / "roto").exists()


def test_output_spelled_differently_but_the_plate_fails(shot_files: dict[str, str]) -> None:
    plate = shot_files["plate"]
    folder, name = os.path.split(plate)
    other_spelling = os.path.join(folder, ".", name.replace("####", "%04d"))
    result, job_dir = _submit({**shot_files, "out": other_spelling}, "--engine", "openjd", "--dry-run")
    assert result.returncode == 2 and "overwrite the plate" in result.stderr
    assert not job_dir.exists()
