"""Runs one FaceGraft command and stops it when Nuke goes away (standard library only, any Python 3.7+).

Usage (the bridge does this): ``python watchdog.py -- COMMAND ...`` with a pipe on stdin.

The bridge starts this script in a new process group (a new session on Linux and macOS) and keeps
its stdin open. The command runs in the same group with stdout and stderr passed straight
through. When stdin closes -- Nuke exited, crashed or was killed, or the bridge closed it -- the
whole group is stopped: an interrupt first (the CLI removes its temporary files), then a kill.
An interrupt sent to the group by the bridge's Cancel reaches the command; this script ignores it
and exits with the command's status.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from typing import List

GRACE = 5.0
STOPPING = threading.Event()  # stdin closed: the group is being stopped


def _stop_group(child: "subprocess.Popen[bytes]") -> None:
    if sys.platform == "win32":
        subprocess.call(["taskkill", "/PID", str(child.pid), "/T", "/F"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return
    group = os.getpgrp()
    try:
        os.killpg(group, signal.SIGINT)
    except OSError:
        return
    deadline = time.time() + GRACE
    while child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    try:
        os.killpg(group, signal.SIGKILL)  # this script goes too: there is nothing left to report to
    except OSError:
        pass


def _watch_stdin(child: "subprocess.Popen[bytes]") -> None:
    try:  # os.read, not sys.stdin: a thread blocked in a buffered read would abort the interpreter's exit
        while os.read(sys.stdin.fileno(), 65536):
            pass
    except (OSError, ValueError):
        pass
    # Even when the command has just exited: what it started may still run in the group.
    STOPPING.set()
    _stop_group(child)


def main(argv: List[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        print("usage: watchdog.py -- COMMAND ...", file=sys.stderr)
        return 2
    # A handler (not SIG_IGN, which the command would inherit): the group's interrupt is for the command.
    signal.signal(signal.SIGINT, lambda number, frame: None)
    if sys.platform == "win32":
        signal.signal(signal.SIGBREAK, lambda number, frame: None)  # type: ignore[attr-defined]
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    watcher = threading.Thread(target=_watch_stdin, args=(child,), daemon=True)
    watcher.start()
    while True:
        try:
            code = child.wait()
        except KeyboardInterrupt:  # pragma: no cover (the handler above makes this rare)
            continue
        if STOPPING.is_set():  # the command went at the interrupt: let the watcher kill the rest of the group
            watcher.join(GRACE + 5.0)
        return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(status)  # at once: the stdin thread may still be waiting
