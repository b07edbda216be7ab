"""Deadline 10: job-info and plugin-info files for the CommandLine plugin.

Two jobs submitted together with ``deadlinecommand -SubmitMultipleJobs -dependent``: the
track job (one task) and the render job, which depends on it. The render job lists the
shot's frames with ``ChunkSize``; Deadline cuts them as the shared chunking helper does and
passes each task's first and last frame as ``<STARTFRAME>`` / ``<ENDFRAME>``.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from facegraft.inference.errors import FaceGraftError

from .chunking import uniform_step
from .job import FarmJob, Requirements

TRACK_JOB, TRACK_PLUGIN = "track_job_info.job", "track_plugin_info.job"
RENDER_JOB, RENDER_PLUGIN = "render_job_info.job", "render_plugin_info.job"
SUBMIT_SCRIPT = "submit.sh"
# Deadline retries a failed task this many times before it marks the task failed.
TASK_ERRORS = 3


def frames_token(job: FarmJob) -> str:
    """The ``--frames`` value of a render task, built from Deadline's task tokens."""
    step = uniform_step(job.shot.frames)
    if step is None:
        raise FaceGraftError(
            f"Deadline's CommandLine plugin passes only the first and last frame of a task, so the frames "
            f"{job.shot.frames_text} (not one evenly stepped range) cannot be chunked for it",
            hint="submit a range like 1001-1240 or 1001-1240x2, one job per block, or use --engine openjd or opencue",
        )
    return "<STARTFRAME>-<ENDFRAME>" + (f"x{step}" if step > 1 else "")


def _quote(arg: str) -> str:
    if arg and not any(c.isspace() or c == '"' for c in arg):
        return arg
    return "<QUOTE>" + arg.replace('"', "<QUOTE>") + "<QUOTE>"


def _info(pairs: list[tuple[str, object]]) -> str:
    return "".join(f"{k}={v}\n" for k, v in pairs if v is not None and v != "")


def _job_info(job: FarmJob, step: str, frames: str, chunk: int, req: Requirements) -> str:
    options = job.engine_options
    out_dir, out_file = os.path.split(job.shot.out)
    pairs: list[tuple[str, object]] = [
        ("Plugin", "CommandLine"),
        ("Name", f"{job.name} {step}"),
        ("BatchName", job.name),
        ("Comment", f"FaceGraft {step}: {job.shot.frames_text}"),
        ("Frames", frames),
        ("ChunkSize", chunk),
        ("Priority", job.priority),
        ("Pool", options.get("pool")),
        ("Group", options.get("group")),
        # Tags become limit groups: a limit's allow list says which machines may take the task.
        ("LimitGroups", ",".join(req.tags)),
        ("OverrideTaskFailureDetection", "true"),
        ("FailureDetectionTaskErrors", TASK_ERRORS),
        # Deadline has no GPU or memory requirement in job files: recorded for Groups and event plugins.
        ("ExtraInfoKeyValue0", f"FaceGraftGPU={'1' if req.gpu else '0'}"),
        ("ExtraInfoKeyValue1", f"FaceGraftMemoryGB={req.memory_gb:g}"),
        ("ExtraInfoKeyValue2", "FaceGraftExitCodes=0 ok;2 user error;3 missing asset;4 bad frame;5 bad model"),
    ]
    if step == "render":
        pairs += [("OutputDirectory0", out_dir), ("OutputFilename0", out_file)]
    return _info(pairs)


def _plugin_info(argv: list[str]) -> str:
    exe, *args = argv
    return _info([
        ("Executable", exe),
        ("Arguments", " ".join(_quote(a) for a in args)),
        ("Shell", "default"),
        ("ShellExecute", "False"),
    ])


def files(job: FarmJob, job_dir: Path) -> dict[str, str]:
    token = frames_token(job)
    first = str(job.shot.frames[0])
    return {
        TRACK_JOB: _job_info(job, "track", first, 1, job.track_requirements),
        TRACK_PLUGIN: _plugin_info(job.track_argv()),
        RENDER_JOB: _job_info(job, "render", job.shot.frames_text, job.chunk_size, job.render_requirements),
        RENDER_PLUGIN: _plugin_info(job.render_argv(token)),
        SUBMIT_SCRIPT: "#!/bin/sh\n# Send both jobs to Deadline (the render job waits for the track job).\n"
                       + shlex.join(submit_command(job_dir)) + "\n",
    }


def deadlinecommand() -> Optional[str]:
    """``deadlinecommand`` on PATH or in ``$DEADLINE_PATH``."""
    folder = os.environ.get("DEADLINE_PATH")
    if folder:
        for name in ("deadlinecommand", "deadlinecommand.exe"):
            if (Path(folder) / name).is_file():
                return str(Path(folder) / name)
    return shutil.which("deadlinecommand")


def submit_command(job_dir: Path, exe: str = "deadlinecommand") -> list[str]:
    """Both jobs in one call; ``-dependent`` makes the render job wait for the track job."""
    return [exe, "-SubmitMultipleJobs", "-dependent",
            "-job", str(job_dir / TRACK_JOB), str(job_dir / TRACK_PLUGIN),
            "-job", str(job_dir / RENDER_JOB), str(job_dir / RENDER_PLUGIN)]


def check_available() -> None:
    if not deadlinecommand():
        raise FaceGraftError("'deadlinecommand' was not found, so the job cannot be sent to Deadline",
                             hint="add Deadline's bin folder to PATH or set DEADLINE_PATH, or use --dry-run")


def submit(job: FarmJob, job_dir: Path) -> int:
    exe = deadlinecommand() or "deadlinecommand"
    result = subprocess.run(submit_command(job_dir, exe), capture_output=True, text=True)
    print(result.stdout, end="")
    if result.returncode != 0 or "Result=Success" not in result.stdout:
        raise FaceGraftError(f"deadlinecommand failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}",
                             path=str(job_dir), hint="the job files are kept; fix the cause and run the printed command again")
    return 0
