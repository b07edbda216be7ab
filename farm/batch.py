"""Many shots on one box: a YAML list of shots, one worker process per GPU.

Each shot is tracked, then rendered, by ``facegraft track`` / ``facegraft render`` subprocesses
(the same command lines a farm job runs). A worker owns one GPU through
``CUDA_VISIBLE_DEVICES`` and takes the next shot when it is free. Re-running the same file
resumes: a shot is skipped only when every frame on disk is complete and stamped as its render
would stamp it (``facegraft.inference.render.stamp``: model, settings, track, plate frame,
format), a valid track is not recomputed, and render keeps exactly the frames that are up to
date.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import yaml

from facegraft.inference.errors import FaceGraftError

from .job import Shot
from .shot_options import check_options
from .submit import make_shot

SHOT_KEYS = ("name", "plate", "model", "out", "frames", "track", "options")
EXAMPLE = "shots:\n  - plate: plates/sh010.####.exr\n    model: sh010.onnx\n    out: renders/sh010_swap.####.exr"


def _options(raw: Any, where: str, path: str) -> dict[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FaceGraftError(f"{where}: 'options' must be a mapping", path=path)
    return check_options(raw, where, path)


def _log_for(log: Callable[[str], None], where: str, message: str) -> None:
    log(f"{where}: {message}")


def _resolve(value: Any, base: Path) -> str:
    text = os.path.expanduser(str(value))
    return text if os.path.isabs(text) else str(base / text)


def load_shots(path: str, overrides: Optional[Mapping[str, object]] = None,
               log: Callable[[str], None] = lambda message: None) -> list[Shot]:
    """Read and check every shot of a batch file; relative paths are relative to the file.

    Every input a shot reads is checked (plate and holdout frames, listed by number when
    missing; the model). ``overrides`` (settings given on the command line, already checked)
    replace the file's options of every shot; a relative holdout among them is relative to the
    working folder. ``log`` gets a line for a plate or holdout given as a frame file.
    """
    source = Path(path)
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FaceGraftError(f"cannot read the batch file ({exc.strerror})", path=path) from exc
    except yaml.YAMLError as exc:
        raise FaceGraftError(f"the batch file is not valid YAML: {exc}", path=path) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("shots"), list) or not doc["shots"]:
        raise FaceGraftError("the batch file has no 'shots' list", path=path, hint="write it like:\n" + EXAMPLE)
    base = source.resolve().parent
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise FaceGraftError("'defaults' must be a mapping", path=path)
    shots: list[Shot] = []
    for index, entry in enumerate(doc["shots"], 1):
        where = f"shot {index}"
        if not isinstance(entry, dict):
            raise FaceGraftError(f"{where} is not a mapping", path=path, hint="write it like:\n" + EXAMPLE)
        if entry.get("name"):
            where = f"shot {index} ('{entry['name']}')"
        unknown = sorted(set(entry) - set(SHOT_KEYS))
        if unknown:
            raise FaceGraftError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}", path=path,
                                 hint=f"keys are: {', '.join(SHOT_KEYS)}")
        merged = {**defaults, **entry}
        missing = [k for k in ("plate", "model", "out") if not merged.get(k)]
        if missing:
            raise FaceGraftError(f"{where}: missing {', '.join(missing)}", path=path)
        options = {**_options(defaults.get("options"), "defaults", path), **_options(entry.get("options"), where, path)}
        if options.get("holdout"):
            options["holdout"] = _resolve(options["holdout"], base)
        options.update(overrides or {})
        frames = merged.get("frames")
        try:
            shot = make_shot(
                _resolve(merged["plate"], base), _resolve(merged["model"], base), _resolve(merged["out"], base),
                frames=str(frames) if frames is not None else None,
                track=_resolve(merged["track"], base) if merged.get("track") else None,
                options=options, name=str(entry["name"]) if entry.get("name") else None,
                log=partial(_log_for, log, where),
            )
        except FaceGraftError as exc:
            raise type(exc)(f"{where} of {path}: {exc.message}", path=exc.path, frame=exc.frame, hint=exc.hint) from exc
        shots.append(shot)
    _check_collisions(shots, path)
    return shots


def _check_collisions(shots: Sequence[Shot], path: str) -> None:
    """Two shots writing the same frames or the same track would undo each other."""
    for i, a in enumerate(shots):
        for b in shots[i + 1:]:
            if a.out == b.out and set(a.frames) & set(b.frames):
                raise FaceGraftError(f"shots '{a.name}' and '{b.name}' write the same output frames", path=path,
                                     hint="give each shot its own 'out' or non-overlapping 'frames'")
            if a.track == b.track:
                raise FaceGraftError(f"shots '{a.name}' and '{b.name}' share the track file {a.track}", path=path,
                                     hint="give each shot its own 'track' (or 'out')")
    names = [s.name for s in shots]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise FaceGraftError(f"shot names used twice: {', '.join(twice)}", path=path, hint="give each shot a 'name'")


def parse_gpus(text: Optional[str]) -> list[Optional[str]]:
    """``"0,1"`` -> ``["0", "1"]``; nothing -> one worker that keeps the environment's devices."""
    if text is None or not text.strip():
        return [None]
    ids = [t.strip() for t in text.split(",") if t.strip()]
    for gpu in ids:
        if not gpu.isdigit():
            raise FaceGraftError(f"'{gpu}' is not a GPU index", hint="pass --gpus 0,1 (indices as nvidia-smi lists them)")
    if len(set(ids)) != len(ids):
        raise FaceGraftError(f"--gpus lists a GPU twice: {text}")
    return list(ids)


def frames_done(shot: Shot, first_only: bool = False) -> tuple[list[int], dict[int, str]]:
    """The shot's frames on disk that are up to date (complete, stamped as the shot's render
    would stamp them), and those out of date with the reason. Without a valid track nothing is
    up to date (tracking runs first). ``first_only``: stop at the first frame not done."""
    from facegraft.inference.io.frames import open_source
    from facegraft.inference.io.sequence import SequencePattern
    from facegraft.inference.models.formats import read_info
    from facegraft.inference.render.renderer import render_settings, render_stamp
    from facegraft.inference.render.stamp import stale_frames
    from facegraft.inference.track.trackfile import load_track

    if not track_complete(shot):
        return [], {}
    settings = render_settings(shot.options)
    source = open_source(shot.plate, shot.frames_text, colorspace=settings.plate_colorspace,
                         config=settings.ocio_config, part=settings.plate_part or None)
    stamp = render_stamp(read_info(shot.model).content_hash, settings, source, load_track(shot.track))
    out = SequencePattern(shot.out)
    if first_only:
        missing = [f for f in shot.frames if not os.path.lexists(out.path(f))]
        if missing:
            return [], {}
    return stale_frames(stamp, out.path, shot.frames, first_only=first_only)


def shot_done(shot: Shot) -> bool:
    """Every frame of the shot is on disk and up to date: nothing to track or render."""
    done, _ = frames_done(shot, first_only=True)
    return len(done) == len(shot.frames)


def track_complete(shot: Shot) -> bool:
    """A readable track that covers every frame of the shot."""
    if not os.path.isfile(shot.track):
        return False
    from facegraft.inference.track.trackfile import load_track

    try:
        load_track(shot.track).require_frames(list(shot.frames), shot.track)
    except (FaceGraftError, ValueError, KeyError, OSError):
        return False
    return True


@dataclass
class ShotResult:
    shot: Shot
    state: str = "pending"  # skipped | done | failed
    code: int = 0
    message: str = ""


@dataclass
class Batch:
    shots: list[Shot]
    gpus: list[Optional[str]]
    executable: tuple[str, ...]
    json_lines: bool = False
    results: dict[str, ShotResult] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _procs: set = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _counted: dict = field(default_factory=dict)

    def report(self, shot: Shot, state: str, **info: Any) -> None:
        from facegraft.inference.progress import emit

        with self._lock:
            if self.json_lines:
                emit("shot", shot=shot.name, state=state, **info)
            else:
                extra = " ".join(f"{k}={v}" for k, v in info.items())
                print(f"[{shot.name}] {state} {extra}".rstrip(), file=sys.stderr, flush=True)

    def _run(self, shot: Shot, argv: list[str], gpu: Optional[str], progress: Any) -> int:
        env = dict(os.environ)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                bufsize=1)
        with self._lock:
            self._procs.add(proc)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                self._child_line(shot, line.rstrip("\n"), progress)
        finally:
            if proc.poll() is None and sys.exc_info()[0] is not None:
                proc.kill()  # never leave a child running unread behind a failed worker
            code = proc.wait()
            with self._lock:
                self._procs.discard(proc)
        return code

    def _child_line(self, shot: Shot, line: str, progress: Any) -> None:
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            with self._lock:
                print(f"[{shot.name}] {line}", file=sys.stderr, flush=True)
            return
        kind = event.get("event")
        if kind == "progress" and event.get("stage") == "render":
            # `done` is the render's running count: one event can cover many frames (those
            # already on disk when the render started), so count the difference.
            with self._lock:
                seen = self._counted.get(shot.name, 0)
                done = event.get("done")
                now = min(int(done) if isinstance(done, (int, float)) else seen + 1, len(shot.frames))
                step = now - seen
                if step > 0:
                    self._counted[shot.name] = now
            if step > 0:
                progress.update(step, shot=shot.name, frame=event.get("frame"))
        elif kind in ("error", "warning"):
            where = f" frame {event['frame']}" if event.get("frame") is not None else ""
            self.report(shot, kind, message=f"{event.get('message')}{where}")

    def _shot(self, shot: Shot, gpu: Optional[str], progress: Any) -> ShotResult:
        result = ShotResult(shot)
        if shot_done(shot):
            progress.update(len(shot.frames), shot=shot.name)
            self.report(shot, "skipped", reason="every frame is complete and up to date")
            result.state = "skipped"
            return result
        device = f"GPU {gpu}" if gpu is not None else "default device"
        if track_complete(shot):
            self.report(shot, "track", reason="kept (already complete)")
        else:
            self.report(shot, "tracking", device=device)
            code = self._run(shot, [*self.executable, *shot.track_args()], gpu, progress)
            if code != 0:
                result.state, result.code = "failed", code
                self.report(shot, "failed", stage="track", exit=code)
                return result
        if self._stop.is_set():
            result.state, result.code = "failed", 130
            return result
        self.report(shot, "rendering", frames=shot.frames_text, device=device)
        code = self._run(shot, [*self.executable, *shot.render_args(shot.frames_text)], gpu, progress)
        if code != 0:
            result.state, result.code = "failed", code
            self.report(shot, "failed", stage="render", exit=code)
            return result
        with self._lock:
            rest = len(shot.frames) - self._counted.get(shot.name, 0)
        if rest > 0:
            progress.update(rest, shot=shot.name)
        result.state = "done"
        self.report(shot, "done")
        return result

    def _worker(self, gpu: Optional[str], work: queue.Queue[Shot], progress: Any) -> None:
        while not self._stop.is_set():
            try:
                shot = work.get_nowait()
            except queue.Empty:
                return
            try:
                result = self._shot(shot, gpu, progress)
            except FaceGraftError as exc:
                result = ShotResult(shot, "failed", exc.exit_code, exc.describe())
                self.report(shot, "failed", message=exc.describe())
            except Exception as exc:  # e.g. OSError from a wrong --facegraft-exe; the worker goes on
                message = f"{type(exc).__name__}: {exc}"
                result = ShotResult(shot, "failed", FaceGraftError.exit_code, message)
                self.report(shot, "failed", message=message)
            with self._lock:
                self.results[shot.name] = result

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for proc in list(self._procs):
                proc.terminate()

    def run(self) -> int:
        """Render every shot; returns 0, or the exit code of the first shot (in file order) that failed."""
        from facegraft.inference.progress import Progress

        work: queue.Queue[Shot] = queue.Queue()
        for shot in self.shots:
            work.put(shot)
        total = sum(len(s.frames) for s in self.shots)
        with Progress("batch", total, json_lines=self.json_lines) as progress:
            threads = [threading.Thread(target=self._worker, args=(gpu, work, progress), daemon=True)
                       for gpu in self.gpus[: len(self.shots)]]
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.2)
            except KeyboardInterrupt:
                self.stop()
                for thread in threads:
                    thread.join(10)
                raise
        # A shot that never finished (its worker stopped, or the batch was stopped) counts as failed.
        results = [self.results.get(s.name, ShotResult(s)) for s in self.shots]
        failed = [r for r in results if r.state not in ("done", "skipped")]
        ok = len(self.shots) - len(failed)
        print(f"batch: {ok} of {len(self.shots)} shot(s) complete"
              + (f"; failed: {', '.join(r.shot.name for r in failed)} (re-run to resume)" if failed else ""),
              file=sys.stderr)
        return (failed[0].code or FaceGraftError.exit_code) if failed else 0


def plan(shots: Sequence[Shot], gpus: Sequence[Optional[str]], executable: Sequence[str]) -> str:
    """What a run would do, for --dry-run: per shot its state and command lines."""
    import shlex

    lines = [f"{len(shots)} shot(s) on {len(gpus)} worker(s): "
             + ", ".join(f"GPU {g}" if g is not None else "default device" for g in gpus)]
    from facegraft.inference.render.stamp import describe

    for shot in shots:
        done, stale = frames_done(shot)
        state = ("complete and up to date, skipped" if len(done) == len(shot.frames)
                 else f"{len(done)} of {len(shot.frames)} frames up to date"
                 + (f"; {len(stale)} to render again ({describe(stale, counts_only=True)})" if stale else ""))
        lines.append(f"{shot.name}: {shot.frames_text} ({state})")
        if len(done) != len(shot.frames):
            if not track_complete(shot):
                lines.append("  " + shlex.join([*executable, *shot.track_args()]))
            lines.append("  " + shlex.join([*executable, *shot.render_args(shot.frames_text)]))
    return "\n".join(lines)
