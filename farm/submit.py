"""Check a shot before anything is queued, build its FarmJob, write the job folder, submit.

Every check runs first: a bad frame range, a missing plate frame or model, an unwritable
output folder or a missing engine fails with a FaceGraftError before the job folder is
touched or anything reaches a farm.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

from facegraft.inference.errors import FaceGraftError, ModelFileError
from facegraft.inference.io.sequence import SequencePattern, resolve_frames
from facegraft.inference.render.settings import SettingError

from .chunking import parse_range
from .engines import engine_module
from .job import FarmJob, Shot, absolute
from .settings import CHUNK

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
) -> Shot:
    """A checked shot with absolute paths; raises FaceGraftError on the first problem."""
    plate, model, out = absolute(plate), absolute(model), absolute(out)
    plate_seq, out_seq = SequencePattern(plate), SequencePattern(out)
    found = resolve_frames(plate_seq, parse_range(frames) if frames is not None else None)
    # compare real files, not spellings: ####, %04d, ./ and symbolic links name the same frames
    if os.path.realpath(out_seq.path(found[0])) == os.path.realpath(plate_seq.path(found[0])):
        raise FaceGraftError("the output would overwrite the plate", path=out, hint="write renders to another path")
    check_model(model)
    track = absolute(track) if track else default_track(out)
    check_writable_folder(os.path.dirname(out), "output", where=out)
    check_writable_folder(os.path.dirname(track), "track", where=track)
    shot_options = dict(options or {})
    if shot_options.get("holdout"):
        holdout = absolute(str(shot_options["holdout"]))
        SequencePattern(holdout)
        shot_options["holdout"] = holdout
    shot_name = name or shot_stem(out)
    return Shot(name=shot_name, plate=plate, model=model, out=out, track=track, frames=tuple(found),
                options=shot_options)


def make_job(
    shot: Shot,
    *,
    chunk: int,
    executable: Sequence[str],
    name: Optional[str] = None,
    priority: int = 50,
    gpu: bool = True,
    memory_gb: float = 16.0,
    tags: Sequence[str] = (),
    engine_options: Optional[Mapping[str, str]] = None,
) -> FarmJob:
    job_name = name or f"facegraft_{shot.name}"
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
    except SettingError as exc:
        raise FaceGraftError(str(exc)) from None
    if not executable:
        raise FaceGraftError("--facegraft-exe is empty", hint="give the facegraft executable the workers run")
    return FarmJob(name=job_name, shot=shot, chunk_size=int(chunk), executable=tuple(executable),
                   priority=int(priority), gpu=gpu, memory_gb=float(memory_gb), tags=tuple(tags),
                   engine_options=dict(engine_options or {}))


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


def submit(job: FarmJob, engine: str, job_dir: Path, dry_run: bool = False) -> int:
    """Write the job folder and, unless ``dry_run``, hand the job to the engine."""
    module = engine_module(engine)
    job_dir = Path(absolute(str(job_dir)))
    files = module.files(job, job_dir)
    if not dry_run:
        module.check_available()
    check_writable_folder(str(job_dir), "job", where=str(job_dir))
    write_files(files, job_dir)
    print(job.describe(), file=sys.stderr)
    if dry_run:
        print(f"job files written to {job_dir} (dry run: nothing submitted)", file=sys.stderr)
        return 0
    print(f"job files written to {job_dir}; submitting to {engine}", file=sys.stderr)
    return int(module.submit(job, job_dir))
