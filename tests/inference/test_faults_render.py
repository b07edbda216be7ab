"""Faults in real processes on real files: a render killed with SIGKILL and resumed, and a disk
that fills up while a frame is written (ENOSPC, injected where OpenImageIO writes)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from render_fixtures import FIRST, aligned_transform, make_plate, make_track
from render_models import build_conv_model

from facegraft.inference.errors import StorageError
from facegraft.inference.io import exr
from facegraft.inference.track.trackfile import save_track

FACEGRAFT = [sys.executable, "-m", "facegraft.cli.main"]
FRAMES = range(FIRST, FIRST + 24)  # enough that a kill after a few frames lands mid-render
STORAGE_EXIT = 7  # StorageError (inference/errors.py): a retry may succeed (docs/farm.md)

# Runs `facegraft ARGS...` with OpenImageIO's writer failing as a full disk does: for the frame
# FULL, the first write call goes through to the temporary file, then reports "No space left on
# device" (what OpenImageIO says when write(2) returns ENOSPC). Every other frame is written.
FULL_DISK = """
import sys
from facegraft.inference.io import exr

FULL = sys.argv[1]
real = exr.oiio


class FullDisk:
    def __init__(self, out):
        self._out, self._error = out, ""

    def __getattr__(self, name):
        return getattr(self._out, name)

    def _fail(self, method, *args):
        getattr(self._out, method)(*args)
        self._error = "Failed to write: No space left on device"
        return False

    def write_scanlines(self, *args):
        return self._fail("write_scanlines", *args)

    def write_image(self, *args):
        return self._fail("write_image", *args)

    def geterror(self, *args):
        error, self._error = self._error, ""
        return error or self._out.geterror(*args)


class Output:
    @staticmethod
    def create(path, *args):
        out = real.ImageOutput.create(path, *args)
        return FullDisk(out) if out is not None and path.endswith("." + FULL + ".exr") else out


class Oiio:
    ImageOutput = Output

    def __getattr__(self, name):
        return getattr(real, name)


exr.oiio = Oiio()
from facegraft.cli.main import main

sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("faults")
    plate = make_plate(root / "plate", frames=FRAMES)
    track = root / "sh010.fgtrack.json"
    save_track(make_track(FRAMES, aligned_transform(64, "whole_face", (64, 40)), moving=0.7), track)
    model = build_conv_model(root / "heavy.onnx", res=64, layers=6, width=48)  # slow enough to kill mid-render
    clean = root / "clean" / "r.####.exr"
    args = ["render", plate, "--track", track, "--model", model, "--out", clean, "--batch", "1"]
    subprocess.run([*FACEGRAFT, *map(str, args)], check=True, capture_output=True, timeout=300)
    return {"root": root, "plate": plate, "track": track, "model": model, "clean": clean}


def _args(shot: dict, out: Path) -> list[str]:
    return [str(a) for a in ("render", shot["plate"], "--track", shot["track"], "--model", shot["model"],
                             "--out", out, "--batch", "1", "--json-progress")]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _whole_and_identical(shot: dict, out: Path) -> None:
    """Every frame there, readable to the last pixel, and byte-identical to the clean render."""
    assert _files(out.parent) == [f"r.{f}.exr" for f in FRAMES]  # and no temporary file left
    for frame in FRAMES:
        name = f"r.{frame}.exr"
        exr.read_image(out.parent / name)  # raises on a truncated or corrupt file
        assert (out.parent / name).read_bytes() == (Path(shot["clean"]).parent / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("after", [1, 4])
def test_kill_9_mid_render_then_resume_gives_every_frame_whole_and_identical(shot: dict, tmp_path: Path,
                                                                              after: int) -> None:
    out = tmp_path / "out" / "r.####.exr"
    process = subprocess.Popen([*FACEGRAFT, *_args(shot, out)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    assert process.stdout is not None
    deadline, written = time.time() + 120, 0
    for line in process.stdout:  # kill after `after` frames, while later ones are being read and written
        if json.loads(line)["event"] == "progress":
            written += 1
        if written >= after or time.time() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    finished = [n for n in _files(out.parent) if not n.startswith(".")]
    assert after <= len(finished) < len(FRAMES)
    for name in finished:  # whatever a killed render left under a frame's name is a whole frame
        exr.read_image(out.parent / name)
    resumed = subprocess.run([*FACEGRAFT, *_args(shot, out)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert summary["existing"] and summary["rendered"] and summary["rerendered_count"] == 0
    _whole_and_identical(shot, out)


def test_a_full_disk_leaves_no_partial_frame_and_exits_retryable(shot: dict, tmp_path: Path) -> None:
    out = tmp_path / "out" / "r.####.exr"
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    full = FIRST + 3
    result = subprocess.run([sys.executable, str(script), str(full), *_args(shot, out)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == STORAGE_EXIT == StorageError.exit_code, result.stderr
    error = json.loads([line for line in result.stdout.splitlines() if '"error"' in line][-1])
    assert error["frame"] == full and error["file"].endswith(f"r.{full}.exr")
    assert "No space left on device" in error["message"] and "run the same command again" in error["hint"]
    assert "Traceback" not in result.stderr
    names = _files(out.parent)
    assert not [n for n in names if n.startswith(".")]  # no temporary file left behind
    assert f"r.{full}.exr" not in names  # no partial frame under the frame's name
    assert {f"r.{f}.exr" for f in range(FIRST, full)} <= set(names)  # frames before it were written
    for name in names:
        exr.read_image(out.parent / name)
    # the storage recovers: the same command finishes the render, keeping what was written
    retry = subprocess.run([*FACEGRAFT, *_args(shot, out)], capture_output=True, text=True, timeout=300)
    assert retry.returncode == 0, retry.stderr
    summary = json.loads(retry.stdout.splitlines()[-1])
    assert str(full) in summary["rendered"] and summary["rerendered_count"] == 0
    _whole_and_identical(shot, out)
