"""Check a shot before anything is queued, build its FarmJob, write the job folder, submit.

Every check runs first: a bad frame range, a missing plate or holdout frame (listed by
number), a plate part (``plate_part``) the plate does not have, a missing or unusable model,
an unwritable output folder or a missing engine fails with a FaceGraftError before the job
folder is touched or anything reaches a farm. A plate or holdout given as one frame file of a
sequence means that sequence (``resolve_input``).
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from facegraft.inference.errors import FaceGraftError, ModelFileError
from facegraft.inference.io.frames import VIDEO_EXTENSIONS
from facegraft.inference.io.sequence import SequencePattern, resolve_frames, resolve_input
from facegraft.inference.render.settings import SettingError

from .chunking import parse_range
from .engines import engine_module
from .job import FarmJob, Shot, absolute
from .settings import CHUNK, GPU_DEVICE

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def shot_stem(out: str) -> str:
    """``renders/sh010_swap.####.exr`` -> ``sh010_swap``."""
    name = os.path.basename(out)
    stem = re.split(r"#+|@+|%0?\d*d", name)[0]
    return stem.rstrip("._-") or "shot"


def default_track(out: str) -> str:
    """The shot track beside the output: ``renders/sh010_swap.fgtrack.json``."""
    return os.path.join(os.path.dirname(out), f"{shot_stem(out)}.fgtrack.json")


def check_writable_folder(folder: str, what: str, where: Optional[str] = None) -> None:
    """The folder, or the nearest folder above it that exists, must accept new files."""
    path = Path(folder)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise FaceGraftError(f"the {what} folder cannot be created: {probe} is a file", path=folder,
                             hint=f"choose another {what} path")
    if not os.access(probe, os.W_OK | os.X_OK):
        shown = f"{probe} is not writable" if probe == path else f"{probe} (where it would be created) is not writable"
        raise FaceGraftError(f"the {what} folder cannot be written: {shown}", path=where or folder,
                             hint="fix the folder's permissions or choose another path")


def check_model(model: str) -> None:
    if not os.path.isfile(model):
        raise FaceGraftError("the model file does not exist", path=model,
                             hint="check the path; export a model with `facegraft export`")
    from facegraft.inference.models.formats import read_info

    try:
        read_info(model)
    except ModelFileError:
        raise
    except FaceGraftError as exc:
        raise ModelFileError(exc.message, path=exc.path or model, hint=exc.hint) from exc


def make_shot(
    plate: str,
    model: str,
    out: str,
    frames: Optional[str] = None,
    track: Optional[str] = None,
    options: Optional[Mapping[str, object]] = None,
    name: Optional[str] = None,
    log: Callable[[str], None] = lambda message: None,
) -> Shot:
    """A checked shot with absolute paths; raises FaceGraftError on the first problem. ``log``
    gets one line for a plate or holdout given as a frame file (the sequence it stands for)."""
    model, out = absolute(model), absolute(out)
    resolved = resolve_input(absolute(plate), keep=VIDEO_EXTENSIONS)
    if resolved.kind == "other":
        raise FaceGraftError("farm tasks render image sequences, not a video file", path=plate,
                             hint=f"ingest it first: facegraft ingest {plate} plates/NAME.####.exr")
    if resolved.note:
        log(resolved.note)
    plate = resolved.text
    plate_seq = resolved.sequence or SequencePattern(plate)
    out_seq = SequencePattern(out)
    found = resolve_frames(plate_seq, parse_range(frames) if frames is not None else None)
    # compare real files, not spellings: ####, %04d, ./ and symbolic links name the same frames
    if os.path.realpath(out_seq.path(found[0])) == os.path.realpath(plate_seq.path(found[0])):
        raise FaceGraftError("the output would overwrite the plate", path=out, hint="write renders to another path")
    check_model(model)
    track = absolute(track) if track else default_track(out)
    check_writable_folder(os.path.dirname(out), "output", where=out)
    check_writable_folder(os.path.dirname(track), "track", where=track)
    shot_options = dict(options or {})
    if shot_options.get("plate_part"):
        check_plate_part(plate_seq.path(found[0]), found[0], str(shot_options["plate_part"]))
    if shot_options.get("holdout"):
        shot_options["holdout"] = check_holdout(absolute(str(shot_options["holdout"])), found, log)
    shot_name = name or shot_stem(out)
    return Shot(name=shot_name, plate=plate, model=model, out=out, track=track, frames=tuple(found),
                options=shot_options)


def check_plate_part(path: str, frame: int, part: str) -> None:
    """The plate's frame has a part called ``part`` with R, G and B (else a FaceGraftError listing its parts)."""
    from facegraft.inference.io import exr

    exr.rgb_part(exr.read_headers(path, frame), path, frame, part)


def check_holdout(holdout: str, frames: Sequence[int], log: Callable[[str], None] = lambda message: None) -> str:
    """The holdout's sequence pattern, once every frame the shot renders is on disk; else a
    FaceGraftError listing the missing holdout frames."""
    resolved = resolve_input(holdout)
    if resolved.kind == "still":
        raise FaceGraftError("the holdout is one still image, not a sequence", path=holdout,
                             hint="give the matte sequence, e.g. roto/hands.####.exr (or one of its frame files)")
    if resolved.note:
        log(resolved.note)
    sequence = resolved.sequence or SequencePattern(resolved.text)
    try:
        resolve_frames(sequence, frames)
    except FaceGraftError as exc:
        raise FaceGraftError(f"the holdout has {exc.message}", path=exc.path, frame=exc.frame,
                             hint="render or copy the missing holdout frames, or leave out --holdout") from None
    return resolved.text


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def default_job_name(shot: Shot, when: Optional[float] = None) -> str:
    """``facegraft_SHOT_MODEL_YYYYMMDD-HHMMSS``: unique per submission, readable in a farm monitor."""
    model = _UNSAFE.sub("_", Path(shot.model).stem).strip("_.-") or "model"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    return f"facegraft_{_UNSAFE.sub('_', shot.name)}_{model}_{stamp}"


def make_job(
    shot: Shot,
    *,
    chunk: int,
    executable: Sequence[str],
    name: Optional[str] = None,
    priority: int = 50,
    gpu: bool = True,
    gpu_device: str = str(GPU_DEVICE.default),
    memory_gb: float = 16.0,
    tags: Sequence[str] = (),
    engine_options: Optional[Mapping[str, str]] = None,
    when: Optional[float] = None,
) -> FarmJob:
    """The farm job of a checked shot. ``gpu_device``: the ``--device`` GPU render tasks get when
    the shot's options set none; ``when``: the submission time in the default name."""
    job_name = name or default_job_name(shot, when)
    if not _NAME.match(job_name):
        raise FaceGraftError(f"'{job_name}' cannot be a job name",
                             hint="use letters, digits, '_', '-' and '.', starting with a letter or digit (--name)")
    if not 0 <= priority <= 100:
        raise FaceGraftError(f"the priority must be between 0 and 100, not {priority}")
    if memory_gb < 0:
        raise FaceGraftError(f"--memory-gb must be 0 or more, not {memory_gb:g}")
    for tag in tags:
        if not _TAG.match(tag):
            raise FaceGraftError(f"'{tag}' cannot be a tag", hint="tags are words: letters, digits and '_'")
    try:
        chunk = CHUNK.parse(chunk)
        gpu_device = GPU_DEVICE.parse(gpu_device)
    except SettingError as exc:
        raise FaceGraftError(str(exc)) from None
    if not executable:
        raise FaceGraftError("--facegraft-exe is empty", hint="give the facegraft executable the workers run")
    return FarmJob(name=job_name, shot=shot, chunk_size=int(chunk), executable=tuple(executable),
                   priority=int(priority), gpu=gpu, gpu_device=gpu_device, memory_gb=float(memory_gb),
                   tags=tuple(tags), engine_options=dict(engine_options or {}))


def write_files(files: Mapping[str, str], job_dir: Path) -> list[Path]:
    """Write each file atomically (a temporary file in the folder, then a rename)."""
    from facegraft.inference.atomic import atomic_write_text

    job_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = job_dir / name
        atomic_write_text(target, text)
        if name.endswith(".sh"):
            target.chmod(0o755)
        written.append(target)
    return written


def submit(job: FarmJob, engine: str, job_dir: Path, dry_run: bool = False,
           bundle_only: bool = False) -> dict[str, Any]:
    """Write the job folder and, unless ``dry_run`` or ``bundle_only``, hand the job to the engine.

    ``bundle_only`` (Open Job Description only): write the bundle for Deadline Cloud and never run
    it here (``openjd`` need not be installed). Returns what ``farm submit --json-progress`` reports
    in its ``result`` event: ``exit_code``, ``engine``, ``job_name``, ``job_dir``, ``files``,
    ``frames``, ``chunks``, ``dry_run``, ``bundle_only``, ``submitted`` (handed to the engine),
    ``job_ids`` and ``job_names`` (the farm's, when it gives them) and ``submit_command`` (what
    sends the written files on by hand, where there is one)."""
    module = engine_module(engine)
    if bundle_only and engine != "openjd":
        raise FaceGraftError(f"--bundle-only writes an Open Job Description bundle; the {engine} engine has none",
                             hint="use --engine openjd --bundle-only, or --dry-run to write this engine's job files")
    job_dir = Path(absolute(str(job_dir)))
    files = module.files(job, job_dir)
    sends = not (dry_run or bundle_only)
    if sends:
        module.check_available()
    check_writable_folder(str(job_dir), "job", where=str(job_dir))
    write_files(files, job_dir)
    print(job.describe(), file=sys.stderr)
    result: dict[str, Any] = {
        "exit_code": 0, "engine": engine, "job_name": job.name, "job_dir": str(job_dir), "files": sorted(files),
        "frames": job.shot.frames_text, "chunks": len(job.chunks), "dry_run": dry_run, "bundle_only": bundle_only,
        "submitted": False, "job_ids": [], "job_names": [], "submit_command": _submit_command(engine, job_dir),
    }
    if not sends:
        what = ("Open Job Description bundle written" if bundle_only and not dry_run else "job files written")
        print(f"{what} to {job_dir} (nothing submitted"
              + (f"; send it with: {result['submit_command']})" if result["submit_command"] else ")"),
              file=sys.stderr)
        return result
    print(f"job files written to {job_dir}; submitting to {engine}", file=sys.stderr)
    done = module.submit(job, job_dir)
    result.update(exit_code=int(done.exit_code), submitted=True, job_ids=list(done.job_ids),
                  job_names=list(done.job_names))
    if done.job_ids:
        print(f"{engine} job id(s): {', '.join(done.job_ids)}", file=sys.stderr)
    return result


def _submit_command(engine: str, job_dir: Path) -> Optional[str]:
    """The command that sends written job files to the farm by hand (None for OpenCue: Cuebot takes the spec)."""
    import shlex

    if engine == "openjd":
        from .openjd import bundle_submit_command

        return shlex.join(bundle_submit_command(job_dir))
    if engine == "deadline":
        from .deadline import submit_command

        return shlex.join(submit_command(job_dir))
    return None
