"""Deadline 10: job-info and plugin-info files, for FaceGraft's own plugin or the CommandLine plugin.

Two jobs submitted together with ``deadlinecommand -SubmitMultipleJobs -dependent``: the
track job (one task) and the render job, which depends on it. The render job lists the
shot's frames with ``ChunkSize``; Deadline cuts them as the shared chunking helper does and
passes each task's first and last frame as ``<STARTFRAME>`` / ``<ENDFRAME>``.

Plugins (engine option ``deadline_plugin``): ``FaceGraft`` (the default) runs the same command
line and reads its ``--json-progress`` lines with a stdout handler (``ProgressRegex`` in the
plugin info), so the Monitor shows each task's progress frame by frame and a failed task says
what its exit code means; it is written into the job folder (``FaceGraft/``) to install once in
the repository's ``custom/plugins``. ``CommandLine`` needs nothing installed but shows no progress.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Optional

from facegraft.inference.errors import FaceGraftError

from .chunking import uniform_step
from .job import FarmJob, Requirements, Submission

TRACK_JOB, TRACK_PLUGIN = "track_job_info.job", "track_plugin_info.job"
RENDER_JOB, RENDER_PLUGIN = "render_job_info.job", "render_plugin_info.job"
SUBMIT_SCRIPT = "submit.sh"
# Deadline retries a failed task this many times before it marks the task failed.
TASK_ERRORS = 3
PLUGIN, COMMAND_LINE = "FaceGraft", "CommandLine"
PLUGINS = (PLUGIN, COMMAND_LINE)
# The facegraft --json-progress lines that carry progress, as the FaceGraft plugin reads them.
PROGRESS_REGEX = r'^\s*(\{"event": "progress".*\})\s*$'
PLUGIN_FILES = {f"{PLUGIN}/{PLUGIN}.py": f"{PLUGIN}.py.in", f"{PLUGIN}/{PLUGIN}.param": f"{PLUGIN}.param",
                f"{PLUGIN}/{PLUGIN}.dlinit": f"{PLUGIN}.dlinit"}
EXIT_CODES = "0 ok;2 user error;3 missing asset;4 bad frame;5 bad model;6 GPU unavailable, retry elsewhere;" \
             "7 storage failed, retry;130 interrupted, retry"


def plugin_name(job: FarmJob) -> str:
    name = job.engine_options.get("deadline_plugin") or PLUGIN
    if name not in PLUGINS:
        raise FaceGraftError(f"unknown Deadline plugin '{name}'", hint=f"use one of: {', '.join(PLUGINS)}")
    return name


def plugin_files() -> dict[str, str]:
    """The FaceGraft Deadline plugin, by its path in the job folder (``FaceGraft/...``)."""
    folder = resources.files("facegraft.farm") / "templates"
    return {name: (folder / source).read_text(encoding="utf-8") for name, source in PLUGIN_FILES.items()}


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
        ("Plugin", plugin_name(job)),
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
        ("ExtraInfoKeyValue2", f"FaceGraftExitCodes={EXIT_CODES}"),
    ]
    if step == "render":
        pairs += [("OutputDirectory0", out_dir), ("OutputFilename0", out_file)]
    return _info(pairs)


def _plugin_info(argv: list[str], plugin: str = PLUGIN) -> str:
    exe, *args = argv
    pairs: list[tuple[str, object]] = [("Executable", exe), ("Arguments", " ".join(_quote(a) for a in args))]
    if plugin == PLUGIN:
        pairs.append(("ProgressRegex", PROGRESS_REGEX))
    else:
        pairs += [("Shell", "default"), ("ShellExecute", "False")]
    return _info(pairs)


def files(job: FarmJob, job_dir: Path) -> dict[str, str]:
    token = frames_token(job)
    first = str(job.shot.frames[0])
    plugin = plugin_name(job)
    install = (f"# The jobs run with the FaceGraft plugin: install it once with\n"
               f"#   cp -r {shlex.quote(str(job_dir / PLUGIN))} \"$DEADLINE_REPOSITORY/custom/plugins/\"\n"
               if plugin == PLUGIN else "")
    files = {
        TRACK_JOB: _job_info(job, "track", first, 1, job.track_requirements),
        TRACK_PLUGIN: _plugin_info(job.track_argv(), plugin),
        RENDER_JOB: _job_info(job, "render", job.shot.frames_text, job.chunk_size, job.render_requirements),
        RENDER_PLUGIN: _plugin_info(job.render_argv(token), plugin),
        SUBMIT_SCRIPT: "#!/bin/sh\n# Send both jobs to Deadline (the render job waits for the track job).\n"
                       + install + shlex.join(submit_command(job_dir)) + "\n",
    }
    if plugin == PLUGIN:
        files.update(plugin_files())
    return files


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


def submit(job: FarmJob, job_dir: Path) -> Submission:
    """Send both jobs with ``deadlinecommand``; its answer goes to stderr, the job ids it prints
    (``JobID=...``) into the Submission."""
    exe = deadlinecommand() or "deadlinecommand"
    result = subprocess.run(submit_command(job_dir, exe), capture_output=True, text=True)
    print(result.stdout, end="", file=sys.stderr)
    if result.returncode != 0 or "Result=Success" not in result.stdout:
        raise FaceGraftError(f"deadlinecommand failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}",
                             path=str(job_dir), hint="the job files are kept; fix the cause and run the printed command again")
    return Submission(0, job_ids=job_ids(result.stdout))


def job_ids(answer: str) -> tuple[str, ...]:
    """The ``JobID=...`` values of deadlinecommand's answer, in order (track job first)."""
    return tuple(line.split("=", 1)[1].strip() for line in answer.splitlines()
                 if line.strip().startswith("JobID=") and line.split("=", 1)[1].strip())
