"""Open Job Description: a job template (plus parameter values) for a FarmJob.

The job folder is a Deadline Cloud job bundle (``template.yaml``, ``parameter_values.yaml``)
that also runs on one machine with ``openjd run`` (``params.json`` holds the same values in
the form ``openjd run -p file://...`` reads). Paths are PATH job parameters, so path mapping
rules apply; the render chunks are a STRING task parameter listing each chunk's frames,
cut by the shared chunking helper.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import yaml

from facegraft.inference.errors import FaceGraftError

from .job import FarmJob, Requirements, Submission

SPEC_VERSION = "jobtemplate-2023-09"
TEMPLATE = "template.yaml"
BUNDLE_VALUES = "parameter_values.yaml"
RUN_VALUES = "params.json"
CHUNK_PARAM = "Chunk"
TAGS_ATTRIBUTE = "attr.facegraft.tags"


def _parameters(job: FarmJob) -> list[tuple[dict[str, Any], str]]:
    """(definition, value) for every job parameter."""
    shot = job.shot
    plate_dir, plate_file = os.path.split(shot.plate)
    out_dir, out_file = os.path.split(shot.out)
    exe = job.executable[0]

    def path(name: str, value: str, description: str, kind: Optional[str] = None,
             flow: Optional[str] = None) -> tuple[dict[str, Any], str]:
        definition: dict[str, Any] = {"name": name, "type": "PATH", "description": description}
        if kind:
            definition["objectType"] = kind
        if flow:
            definition["dataFlow"] = flow
        return definition, value

    def text(name: str, value: str, description: str) -> tuple[dict[str, Any], str]:
        return {"name": name, "type": "STRING", "description": description, "default": value}, value

    params = [
        path("FaceGraft", exe, "the facegraft executable on the workers"),
        path("PlateFolder", plate_dir, "folder of the plate sequence", "DIRECTORY", "IN"),
        text("PlateFile", plate_file, "plate file name pattern (#### = 4 digits)"),
        path("Model", shot.model, "face model (.onnx)", "FILE", "IN"),
        path("TrackFile", shot.track, "shot track written by the track step, read by every chunk", "FILE", "OUT"),
        path("OutFolder", out_dir, "folder of the rendered EXR sequence", "DIRECTORY", "OUT"),
        text("OutFile", out_file, "output file name pattern"),
        text("Frames", shot.frames_text, "every frame of the shot"),
    ]
    return params


def _host_requirements(req: Requirements) -> Optional[dict[str, Any]]:
    amounts = []
    if req.gpu:
        amounts.append({"name": "amount.worker.gpu", "min": 1})
    if req.memory_mb:
        amounts.append({"name": "amount.worker.memory", "min": req.memory_mb})
    attributes = []
    if req.tags:
        attributes.append({"name": TAGS_ATTRIBUTE, "allOf": list(req.tags)})
    if not amounts and not attributes:
        return None
    out: dict[str, Any] = {}
    if amounts:
        out["amounts"] = amounts
    if attributes:
        out["attributes"] = attributes
    return out


def _templated(argv: list[str], job: FarmJob, frames_token: str) -> list[str]:
    """Replace literal paths in a command line by job parameter references."""
    shot = job.shot
    swap = {
        shot.plate: "{{Param.PlateFolder}}/{{Param.PlateFile}}",
        shot.model: "{{Param.Model}}",
        shot.track: "{{Param.TrackFile}}",
        shot.out: "{{Param.OutFolder}}/{{Param.OutFile}}",
    }
    args = argv[len(job.executable):]
    out = [swap.get(a, a) for a in args]
    frames_at = out.index("--frames") + 1
    out[frames_at] = frames_token
    return out


def _step(name: str, args: list[str], req: Requirements, job: FarmJob) -> dict[str, Any]:
    exe_args = list(job.executable[1:])
    step: dict[str, Any] = {
        "name": name,
        "script": {
            "actions": {
                "onRun": {
                    "command": "{{Param.FaceGraft}}",
                    "args": exe_args + args,
                    # SIGTERM first: facegraft stops between frames; writes are atomic anyway.
                    "cancelation": {"mode": "NOTIFY_THEN_TERMINATE", "notifyPeriodInSeconds": 30},
                }
            }
        },
    }
    host = _host_requirements(req)
    if host:
        step["hostRequirements"] = host
    return step


def template(job: FarmJob) -> dict[str, Any]:
    """The job template as a plain dict (YAML/JSON-ready)."""
    track = _step("track", _templated(job.track_argv(), job, "{{Param.Frames}}"), job.track_requirements, job)
    render = _step("render", _templated(job.render_argv("CHUNK"), job, "{{Task.Param." + CHUNK_PARAM + "}}"),
                   job.render_requirements, job)
    render["parameterSpace"] = {
        "taskParameterDefinitions": [
            {"name": CHUNK_PARAM, "type": "STRING", "range": [str(c) for c in job.chunks]},
        ]
    }
    render["dependencies"] = [{"dependsOn": "track"}]
    render = {k: render[k] for k in ("name", "parameterSpace", "dependencies", "hostRequirements", "script") if k in render}
    return {
        "specificationVersion": SPEC_VERSION,
        "name": job.name,
        "description": f"FaceGraft: track then render {job.shot.frames_text} in chunks of {job.chunk_size}",
        "parameterDefinitions": [d for d, _ in _parameters(job)],
        "steps": [track, render],
    }


def parameter_values(job: FarmJob) -> dict[str, str]:
    return {d["name"]: v for d, v in _parameters(job)}


def validate(doc: dict[str, Any], values: dict[str, str], where: Path) -> None:
    """Decode the template with openjd-model and instantiate the job with its values."""
    from openjd.model import DecodeValidationError, create_job, decode_job_template, preprocess_job_parameters

    try:
        decoded = decode_job_template(template=doc)
        params = preprocess_job_parameters(job_template=decoded, job_parameter_values=values,
                                           job_template_dir=where, current_working_dir=where)
        create_job(job_template=decoded, job_parameter_values=params)
    except (DecodeValidationError, ValueError) as exc:
        raise FaceGraftError(f"the Open Job Description template is not valid: {exc}", path=str(where / TEMPLATE),
                             hint="this is a FaceGraft bug; please report it with the command you ran") from exc


def files(job: FarmJob, job_dir: Path) -> dict[str, str]:
    """Every file of the job folder, by name, validated."""
    doc = template(job)
    values = parameter_values(job)
    validate(doc, values, job_dir)
    bundle_values = {"parameterValues": [{"name": k, "value": v} for k, v in values.items()]}
    return {
        TEMPLATE: yaml.safe_dump(doc, sort_keys=False, width=1000),
        BUNDLE_VALUES: yaml.safe_dump(bundle_values, sort_keys=False, width=1000),
        RUN_VALUES: json.dumps(values, indent=2) + "\n",
    }


def openjd_executable() -> Optional[str]:
    beside = Path(sys.executable).parent / "openjd"
    return str(beside) if beside.is_file() else shutil.which("openjd")


def run_command(job_dir: Path, step: str = "render", tasks: Optional[list[str]] = None,
                dependencies: bool = True) -> list[str]:
    """The ``openjd run`` command line that runs ``step`` (and the track first) on this machine."""
    exe = openjd_executable() or "openjd"
    cmd = [exe, "run", str(job_dir / TEMPLATE), "-p", f"file://{job_dir / RUN_VALUES}", "--step", step]
    if tasks is not None:
        cmd += ["--tasks", json.dumps([{CHUNK_PARAM: t} for t in tasks])]
    cmd.append("--run-dependencies" if dependencies else "--no-run-dependencies")
    return cmd


def check_available() -> None:
    if not openjd_executable():
        raise FaceGraftError("'openjd' was not found, so the job cannot run here",
                             hint="pip install openjd-cli (the facegraft 'farm' extra), or use --dry-run")


def submit(job: FarmJob, job_dir: Path) -> Submission:
    """Run the whole job on this machine with ``openjd run``; the Submission holds its exit status.
    Its session log goes to stderr, with FaceGraft's other messages (stdout holds the command's
    own JSON events with ``--json-progress``)."""
    cmd = run_command(job_dir)
    print(f"running: {' '.join(cmd)}", file=sys.stderr, flush=True)
    return Submission(subprocess.call(cmd, stdout=sys.stderr))


def bundle_submit_command(job_dir: Path) -> list[str]:
    """The command that sends the bundle in ``job_dir`` to Deadline Cloud."""
    return ["deadline", "bundle", "submit", str(job_dir)]
