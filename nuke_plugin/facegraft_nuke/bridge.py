"""Runs the FaceGraft CLI outside Nuke and reports back without blocking the UI.

A :class:`Job` is a background thread that runs CLI steps one after another
(``track`` then ``render``), reads each step's JSON-lines progress from stdout into a
``nuke.ProgressTask`` and cancels by stopping the process (the CLI writes frames
atomically, so a stopped render leaves no partial frame). Everything that touches
knobs or shows a dialog goes through ``nuke.executeInMainThread``.
"""
import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any, Callable, Deque, Dict, List, NamedTuple, Optional

import nuke

EXIT_REASONS = {
    1: "failed",
    2: "user error",
    3: "missing asset",
    4: "bad frame",
    5: "bad model file",
    130: "interrupted",
}
# Variables Nuke sets for its own Python that would break another interpreter.
_SCRUB = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONNOUSERSITE")
_STOP_WAIT = 5.0


class Step(NamedTuple):
    """One CLI run: its argv and its share of the job's progress bar."""

    label: str
    argv: List[str]
    weight: float = 1.0


class StepResult(NamedTuple):
    ok: bool
    cancelled: bool = False
    message: str = ""
    warnings: List[str] = []
    returncode: Optional[int] = None


def child_env(base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment for FaceGraft's Python: Nuke's own Python settings removed."""
    env = dict(os.environ if base is None else base)
    for name in _SCRUB:
        env.pop(name, None)
    nuke_dir = os.path.dirname(os.path.abspath(sys.executable))
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"):
        if name in env:
            kept = [p for p in env[name].split(os.pathsep) if p and not os.path.abspath(p).startswith(nuke_dir)]
            if kept:
                env[name] = os.pathsep.join(kept)
            else:
                env.pop(name)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _popen(argv: List[str]) -> "subprocess.Popen[str]":
    flags = 0
    if sys.platform == "win32":
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, encoding="utf-8", errors="replace", bufsize=1,
        env=child_env(), creationflags=flags,
    )


def _pump(stream: IO[str], sink: "queue.Queue[Optional[str]]") -> None:
    for line in iter(stream.readline, ""):
        sink.put(line)
    sink.put(None)


def _collect(stream: IO[str], tail: Deque[str]) -> None:
    for line in iter(stream.readline, ""):
        tail.append(line.rstrip("\n"))


def parse_event(line: str) -> Optional[Dict[str, Any]]:
    """A JSON-lines event, or None for a line that is not one."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def stop(proc: "subprocess.Popen[str]") -> None:
    """Stop a CLI run: interrupt (it cleans up), then terminate, then kill."""
    if proc.poll() is not None:
        return
    attempts = []  # type: List[Callable[[], None]]
    if sys.platform != "win32":
        attempts.append(lambda: proc.send_signal(signal.SIGINT))
    attempts += [proc.terminate, proc.kill]
    for attempt in attempts:
        try:
            attempt()
        except OSError:
            return
        try:
            proc.wait(timeout=_STOP_WAIT)
            return
        except subprocess.TimeoutExpired:
            continue


def describe_failure(label: str, returncode: int, error: Optional[Dict[str, Any]], stderr: List[str]) -> str:
    """The message a compositor sees: what failed, where, and what to do."""
    reason = EXIT_REASONS.get(returncode, f"exit code {returncode}")
    head = f"FaceGraft {label} failed ({reason})."
    if error:
        where = [str(error[k]) if k != "frame" else f"frame {error[k]}"
                 for k in ("file", "frame") if error.get(k) is not None]
        body = (": ".join(where) + ": " if where else "") + str(error.get("message") or "")
        if error.get("hint"):
            body += "\nhint: " + str(error["hint"])
        return head + "\n" + body
    lines = [line for line in stderr if line.strip()]
    return head + ("\n" + "\n".join(lines[-12:]) if lines else "")


class Progress:
    """Maps one step's events onto the job's ProgressTask."""

    def __init__(self, task: nuke.ProgressTask, label: str, start: float, span: float) -> None:
        self.task = task
        self.label = label
        self.start = start
        self.span = span
        self.error = None  # type: Optional[Dict[str, Any]]
        self.warnings = []  # type: List[str]

    def handle(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        stage = str(event.get("stage") or self.label)
        if kind == "start":
            self.task.setMessage(f"{stage}: starting")
        elif kind == "progress":
            done, total = event.get("done") or 0, event.get("total") or 0
            fraction = float(done) / float(total) if total else 0.0
            self.task.setProgress(int(round(self.start + self.span * min(1.0, fraction))))
            frame = event.get("frame")
            where = f" frame {frame}" if frame is not None else ""
            self.task.setMessage(f"{stage}{where} ({done}/{total})")
        elif kind == "done":
            self.task.setProgress(int(round(self.start + self.span)))
        elif kind == "info":
            self.task.setMessage(str(event.get("message", "")))
        elif kind == "warning":
            frame = event.get("frame")
            text = str(event.get("message", ""))
            self.warnings.append(f"frame {frame}: {text}" if frame is not None else text)
        elif kind == "error":
            self.error = event


def run_step(
    step: Step, task: nuke.ProgressTask, cancelled: Callable[[], bool], start: float = 0.0, span: float = 100.0
) -> StepResult:
    """Run one CLI step to the end, or until ``cancelled()``; never raises for a CLI failure."""
    try:
        proc = _popen(step.argv)
    except OSError as exc:
        return StepResult(False, message=f"FaceGraft {step.label} could not start {step.argv[0]}: {exc}")
    lines = queue.Queue()  # type: queue.Queue[Optional[str]]
    tail = collections.deque(maxlen=60)  # type: Deque[str]
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True),
        threading.Thread(target=_collect, args=(proc.stderr, tail), daemon=True),
    ]
    for reader in readers:
        reader.start()
    progress = Progress(task, step.label, start, span)
    while True:
        if cancelled():
            stop(proc)
            return StepResult(False, cancelled=True, message=f"FaceGraft {step.label} cancelled.",
                              returncode=proc.returncode)
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        event = parse_event(line)
        if event is not None:
            progress.handle(event)
    returncode = proc.wait()
    for reader in readers:
        reader.join(timeout=_STOP_WAIT)
    if returncode != 0:
        message = describe_failure(step.label, returncode, progress.error, list(tail))
        return StepResult(False, message=message, warnings=progress.warnings, returncode=returncode)
    return StepResult(True, warnings=progress.warnings, returncode=0)


_jobs = {}  # type: Dict[str, Job]
_jobs_lock = threading.Lock()


def running(key: str) -> Optional["Job"]:
    with _jobs_lock:
        return _jobs.get(key)


class Job(threading.Thread):
    """Background run of CLI steps for one node, keyed by the node's full name."""

    def __init__(
        self,
        key: str,
        title: str,
        steps: List[Step],
        on_success: Callable[[List[str]], None],
        on_failure: Optional[Callable[[str, bool], None]] = None,
    ) -> None:
        threading.Thread.__init__(self, name="FaceGraft " + key, daemon=True)
        self.key = key
        self.title = title
        self.steps = steps
        self.on_success = on_success
        self.on_failure = on_failure
        self.result = None  # type: Optional[StepResult]
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def start(self) -> None:
        with _jobs_lock:
            if self.key in _jobs:
                raise RuntimeError(f"{self.key} is already rendering: wait for it or press Cancel.")
            _jobs[self.key] = self
        threading.Thread.start(self)

    def run(self) -> None:
        try:
            self.result = self._run_steps()
        finally:
            with _jobs_lock:
                _jobs.pop(self.key, None)
        result = self.result
        if result.ok:
            nuke.executeInMainThread(self.on_success, args=(result.warnings,))
            return
        if self.on_failure is not None:
            nuke.executeInMainThread(self.on_failure, args=(result.message, result.cancelled))
        if not result.cancelled:
            nuke.executeInMainThread(nuke.message, args=(result.message,))

    def _run_steps(self) -> StepResult:
        task = nuke.ProgressTask(self.title)
        total = sum(step.weight for step in self.steps) or 1.0
        done = 0.0
        warnings = []  # type: List[str]

        def cancelled() -> bool:
            return self._cancel.is_set() or bool(task.isCancelled())

        for step in self.steps:
            span = 100.0 * step.weight / total
            result = run_step(step, task, cancelled, start=done, span=span)
            warnings += result.warnings
            if not result.ok:
                return result._replace(warnings=warnings)
            done += span
        task.setProgress(100)
        return StepResult(True, warnings=warnings, returncode=0)


def wait(key: str, timeout: float = 60.0) -> bool:
    """Block until the node's job has finished (for scripts and tests, never the UI)."""
    job = running(key)
    deadline = time.time() + timeout
    while job is not None and job.is_alive() and time.time() < deadline:
        job.join(0.05)
    return job is None or not job.is_alive()


def run_text(argv: List[str], timeout: float = 600.0) -> "subprocess.CompletedProcess[str]":
    """Run a short CLI command to the end and capture its text (model-info, farm submit)."""
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        encoding="utf-8", errors="replace", env=child_env(), timeout=timeout,
    )


def in_background(name: str, work: Callable[[], None]) -> threading.Thread:
    """Run ``work`` on a daemon thread (it reports through executeInMainThread)."""
    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    return thread
