"""Runs the FaceGraft CLI outside Nuke and reports back without blocking the UI.

Every CLI run goes through :mod:`watchdog` in a process group of its own (a new session on Linux
and macOS, a new process group on Windows), with a pipe on its stdin that only this process
holds. So:

* Cancel stops the whole group -- the CLI and anything it started -- with an interrupt (the CLI
  removes its temporary files; frames are written atomically), then a terminate, then a kill;
* closing the script or quitting Nuke cancels every job (:func:`cancel_all`, registered by
  :mod:`facegraft_nuke.lifecycle`), and if Nuke dies without a word the pipe closes and the
  watchdog stops the group: no render is left running;
* each step's JSON-lines progress goes to a ``nuke.ProgressTask`` (or, without a GUI, to short
  lines on stderr), and the command line, its messages and its stderr go to a log file.

A :class:`Job` runs one node's work on a worker thread (not a daemon: Python waits for it, so a
``nuke -t`` script that starts a render and returns does not cut it off); its result reaches
the main thread through ``nuke.executeInMainThread``. :meth:`Job.run_here` runs the same work in
the calling thread for ``nuke -t`` and pipeline scripts.
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
from typing import IO, Any, Callable, Deque, Dict, List, NamedTuple, Optional, Tuple

import nuke

EXIT_REASONS = {
    1: "failed",
    2: "user error",
    3: "missing asset",
    4: "bad frame",
    5: "bad model file",
    6: "this machine cannot run the chosen device; pick another device or machine",
    7: "the disk is full or cannot be written",
    130: "interrupted",
}
# Variables Nuke sets for its own Python that would break another interpreter.
_SCRUB = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONNOUSERSITE")
STOP_WAIT = 5.0  # seconds each of interrupt, terminate and kill is given
QUIT_WAIT = 2.0  # the same when the script closes or Nuke quits
WATCHDOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "watchdog.py")


class Step(NamedTuple):
    """One CLI run: its argv, its share of the job's progress bar, where its log goes, and exit codes
    that still count as done (e.g. 4 for a render that skipped bad frames on purpose)."""

    label: str
    argv: List[str]
    weight: float = 1.0
    log: Optional[str] = None
    tolerate: Tuple[int, ...] = ()


class StepResult(NamedTuple):
    ok: bool
    cancelled: bool = False
    message: str = ""
    warnings: List[str] = []
    returncode: Optional[int] = None
    summary: Dict[str, Any] = {}  # the CLI's ``result`` event
    output: List[str] = []  # stdout lines that were not events (e.g. a farm scheduler's job id)


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


def watched(argv: List[str]) -> List[str]:
    """``argv`` run under the watchdog, by the same Python (FaceGraft's: ``argv[0]``)."""
    return [argv[0], WATCHDOG, "--"] + list(argv)


def _popen(argv: List[str]) -> "subprocess.Popen[str]":
    if sys.platform == "win32":
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        return subprocess.Popen(
            watched(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, encoding="utf-8", errors="replace", bufsize=1,
            env=child_env(), creationflags=flags,
        )
    return subprocess.Popen(
        watched(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, encoding="utf-8", errors="replace", bufsize=1,
        env=child_env(), start_new_session=True,
    )


def _signal_group(proc: "subprocess.Popen[str]", which: str) -> bool:
    """Send ``which`` (interrupt, terminate, kill) to the process group; False when it is gone."""
    try:
        if sys.platform == "win32":
            if which == "interrupt":
                proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                subprocess.call(["taskkill", "/PID", str(proc.pid), "/T", "/F"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            number = {"interrupt": signal.SIGINT, "terminate": signal.SIGTERM, "kill": signal.SIGKILL}[which]
            os.killpg(proc.pid, number)
    except (OSError, ValueError):
        return False
    return True


def stop(proc: "subprocess.Popen[str]", grace: float = STOP_WAIT) -> None:
    """Stop a CLI run and everything it started: interrupt, terminate, then kill the process group."""
    for which in ("interrupt", "terminate", "kill"):
        if proc.poll() is not None:
            break
        if not _signal_group(proc, which):
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    sweep(proc)


def sweep(proc: "subprocess.Popen[str]") -> None:
    """Kill whatever is left in the run's process group (a child that outlived the CLI); close its stdin."""
    if sys.platform != "win32":
        _signal_group(proc, "kill")
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass


def _pump(stream: IO[str], sink: "queue.Queue[Optional[str]]") -> None:
    for line in iter(stream.readline, ""):
        sink.put(line)
    sink.put(None)


class _Log:
    """A step's log file (or nothing); written from two threads."""

    def __init__(self, path: Optional[str], argv: List[str]) -> None:
        self._handle: Optional[IO[str]] = None
        self._lock = threading.Lock()
        if path:
            try:
                folder = os.path.dirname(path)
                if folder and not os.path.isdir(folder):
                    os.makedirs(folder)
                self._handle = open(path, "w", encoding="utf-8")
            except OSError:
                self._handle = None
        self.write("$ " + " ".join(argv))
        self.write("started " + time.strftime("%Y-%m-%d %H:%M:%S"))

    def write(self, line: str) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.write(line.rstrip("\n") + "\n")
                self._handle.flush()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _collect(stream: IO[str], tail: Deque[str], log: _Log) -> None:
    for line in iter(stream.readline, ""):
        tail.append(line.rstrip("\n"))
        log.write(line)


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


class Reporter:
    """Where a job's progress shows: a ``nuke.ProgressTask`` in the GUI, short lines on stderr without one."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.task: Optional[nuke.ProgressTask] = nuke.ProgressTask(title) if nuke.GUI else None
        self._last = -1
        self._last_message = ""

    def progress(self, percent: int) -> None:
        if self.task is not None:
            self.task.setProgress(percent)
        elif percent >= self._last + 10 or percent == 100:
            self._last = percent
            print(f"{self.title}: {percent}%  {self._last_message}", file=sys.stderr)

    def message(self, text: str) -> None:
        self._last_message = text
        if self.task is not None:
            self.task.setMessage(text)

    def cancelled(self) -> bool:
        return bool(self.task.isCancelled()) if self.task is not None else False


class Progress:
    """Maps one step's events onto the job's progress."""

    def __init__(self, reporter: Reporter, label: str, start: float, span: float) -> None:
        self.reporter = reporter
        self.label = label
        self.start = start
        self.span = span
        self.error: Optional[Dict[str, Any]] = None
        self.warnings: List[str] = []
        self.summary: Dict[str, Any] = {}

    def handle(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        stage = str(event.get("stage") or self.label)
        if kind == "start":
            self.reporter.message(f"{stage}: starting")
        elif kind == "progress":
            done, total = event.get("done") or 0, event.get("total") or 0
            fraction = float(done) / float(total) if total else 0.0
            self.reporter.progress(int(round(self.start + self.span * min(1.0, fraction))))
            frame = event.get("frame")
            where = f" frame {frame}" if frame is not None else ""
            self.reporter.message(f"{stage}{where} ({done}/{total})")
        elif kind == "done":
            self.reporter.progress(int(round(self.start + self.span)))
        elif kind == "info":
            self.reporter.message(str(event.get("message", "")))
        elif kind == "warning":
            frame = event.get("frame")
            text = str(event.get("message", ""))
            self.warnings.append(f"frame {frame}: {text}" if frame is not None else text)
        elif kind == "error":
            self.error = event
        elif kind == "result":
            self.summary = {k: v for k, v in event.items() if k != "event"}


def run_step(step: Step, reporter: Reporter, cancelled: Callable[[], bool], start: float = 0.0,
             span: float = 100.0, on_start: Optional[Callable[["subprocess.Popen[str]"], None]] = None,
             grace: Callable[[], float] = lambda: STOP_WAIT) -> StepResult:
    """Run one CLI step to the end, or until ``cancelled()``; never raises for a CLI failure."""
    log = _Log(step.log, step.argv)
    try:
        proc = _popen(step.argv)
    except OSError as exc:
        log.write(f"could not start: {exc}")
        log.close()
        return StepResult(False, message=f"FaceGraft {step.label} could not start {step.argv[0]}: {exc}")
    lines: queue.Queue[Optional[str]] = queue.Queue()
    tail: Deque[str] = collections.deque(maxlen=60)
    output: List[str] = []
    progress = Progress(reporter, step.label, start, span)
    try:
        if on_start is not None:
            on_start(proc)
        # Readers end when the pipes close, which the process group's end guarantees: daemons are safe.
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True),
            threading.Thread(target=_collect, args=(proc.stderr, tail, log), daemon=True),
        ]
        for reader in readers:
            reader.start()
        while True:
            if cancelled():
                stop(proc, grace())
                for reader in readers:
                    reader.join(timeout=STOP_WAIT)
                log.write(f"cancelled (exit code {proc.returncode})")
                return StepResult(False, cancelled=True, message=f"FaceGraft {step.label} cancelled.",
                                  returncode=proc.returncode)
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            event = parse_event(line)
            if event is None:
                output.append(line.rstrip("\n"))
                log.write(line)
                continue
            progress.handle(event)
            if event.get("event") in ("info", "warning", "error", "result"):
                log.write(json.dumps(event))
        returncode = proc.wait()
        for reader in readers:
            reader.join(timeout=STOP_WAIT)
        log.write(f"exit code {returncode}")
    finally:
        if proc.poll() is None:  # an error here: never leave the run behind
            stop(proc, grace())
        sweep(proc)
        log.close()
    if returncode != 0 and returncode not in step.tolerate:
        message = describe_failure(step.label, returncode, progress.error, list(tail))
        return StepResult(False, message=message, warnings=progress.warnings, returncode=returncode,
                          summary=progress.summary, output=output)
    return StepResult(True, warnings=progress.warnings, returncode=returncode, summary=progress.summary,
                      output=output)


_jobs: "Dict[str, Job]" = {}
_jobs_lock = threading.Lock()


def running(key: str) -> Optional["Job"]:
    with _jobs_lock:
        return _jobs.get(key)


def all_jobs() -> List["Job"]:
    with _jobs_lock:
        return list(_jobs.values())


class JobBusy(Exception):
    """The node already has a job running."""


class Job(threading.Thread):
    """One node's work (``work(job)`` returns a StepResult), keyed by the node's id.

    ``work`` runs CLI steps with :meth:`step`; ``on_done(result)`` runs in the main thread afterwards.
    """

    def __init__(
        self,
        key: str,
        title: str,
        work: Callable[["Job"], StepResult],
        on_done: Optional[Callable[[StepResult], None]] = None,
        total_weight: float = 1.0,
    ) -> None:
        threading.Thread.__init__(self, name="FaceGraft " + title, daemon=False)
        self.key = key
        self.title = title
        self.work = work
        self.on_done = on_done
        self.total_weight = total_weight or 1.0
        self.result: Optional[StepResult] = None
        self.steps: List[Step] = []
        self._cancel = threading.Event()
        self._quitting = False
        self._done_weight = 0.0
        self._proc: Optional[subprocess.Popen[str]] = None
        self.reporter: Optional[Reporter] = None

    # -- control
    def cancel(self, quitting: bool = False) -> None:
        """Stop at once (frames already written stay); ``quitting`` shortens the grace of each signal."""
        self._quitting = self._quitting or quitting
        self._cancel.set()

    def cancelled(self) -> bool:
        if self._cancel.is_set():
            return True
        return self.reporter is not None and self.reporter.cancelled()

    def _register(self) -> None:
        with _jobs_lock:
            if self.key in _jobs:
                raise JobBusy(f"{self.title} is already running: wait for it or press Cancel.")
            _jobs[self.key] = self

    def _unregister(self) -> None:
        with _jobs_lock:
            if _jobs.get(self.key) is self:
                _jobs.pop(self.key, None)

    def start(self) -> None:
        self._register()
        threading.Thread.start(self)

    def run(self) -> None:
        result = self._execute()
        if self.on_done is not None:
            nuke.executeInMainThread(self.on_done, args=(result,))

    def run_here(self) -> StepResult:
        """Run in the calling thread (``nuke -t``, pipeline scripts); ``on_done`` runs here too."""
        self._register()
        result = self._execute()
        if self.on_done is not None:
            self.on_done(result)
        return result

    def _execute(self) -> StepResult:
        try:
            self.reporter = Reporter(self.title)
            try:
                self.result = self.work(self)
            except Exception as exc:  # a bug or an OS error in the work itself: report, never hang the node
                self.result = StepResult(False, message=f"{self.title} failed: {type(exc).__name__}: {exc}")
            if self.result.ok:
                self.reporter.progress(100)
            return self.result
        finally:
            self._unregister()

    # -- for the work function
    def step(self, step: Step) -> StepResult:
        """Run one CLI step as the next share of the progress bar."""
        self.steps.append(step)
        start = 100.0 * self._done_weight / self.total_weight
        span = 100.0 * step.weight / self.total_weight
        assert self.reporter is not None
        result = run_step(step, self.reporter, self.cancelled, start, span, on_start=self._on_process,
                          grace=lambda: QUIT_WAIT if self._quitting else STOP_WAIT)
        self._proc = None
        self._done_weight += step.weight
        return result

    def _on_process(self, proc: "subprocess.Popen[str]") -> None:
        self._proc = proc

    def message(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.message(text)


def cancel_all(wait: float = 10.0) -> int:
    """Cancel every job (script close, Nuke exit) and wait for their process groups to stop; how many."""
    jobs = all_jobs()
    for job in jobs:
        job.cancel(quitting=True)
    deadline = time.time() + wait
    for job in jobs:
        if job is not threading.current_thread() and job.is_alive():
            job.join(max(0.0, deadline - time.time()))
    return len(jobs)


def wait(key: str, timeout: float = 60.0) -> bool:
    """Block until the node's job has finished (for scripts and tests, never the UI)."""
    job = running(key)
    deadline = time.time() + timeout
    while job is not None and job.is_alive() and time.time() < deadline:
        job.join(0.05)
    return job is None or not job.is_alive()


def run_text(argv: List[str], timeout: float = 120.0) -> "subprocess.CompletedProcess[str]":
    """Run a short CLI command to the end and capture its text (model-info)."""
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        encoding="utf-8", errors="replace", env=child_env(), timeout=timeout,
    )


def in_background(name: str, work: Callable[[], None]) -> threading.Thread:
    """Run a short ``work`` (a model description: one quick CLI call) on a daemon thread."""
    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    return thread
