"""Atomic writes: temporary file per process and thread, cleaned up on error, errors name the file."""
from __future__ import annotations

import errno
import os
import threading

import numpy as np
import pytest

from facegraft.inference import atomic
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import contact_sheet
from facegraft.inference.track import trackfile


def test_writes_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "a.json"
    assert atomic.atomic_write_text(target, "héllo") == target
    assert target.read_text(encoding="utf-8") == "héllo"
    atomic.atomic_write_bytes(target, b"again")
    assert target.read_bytes() == b"again" and os.listdir(target.parent) == ["a.json"]


def test_temporary_name_is_per_process_and_thread(tmp_path):
    name = atomic.temp_name(tmp_path / "a.png").name
    assert name == f".a.{os.getpid()}.{threading.get_ident()}.tmp.png"  # keeps the extension
    seen = []
    thread = threading.Thread(target=lambda: seen.append(atomic.temp_name(tmp_path / "a.png").name))
    thread.start()
    thread.join()
    assert seen[0] != name


def test_disk_full_names_the_file_and_removes_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "track.json"
    target.write_text("old")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(FaceGraftError, match="the disk is full") as err:
        atomic.atomic_write_text(target, "new")
    assert err.value.path == str(target)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["track.json"]


def test_an_error_while_writing_removes_the_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("converter crashed")
    assert os.listdir(tmp_path) == []


def test_stale_temporaries_are_found_for_their_target_only(tmp_path):
    target = tmp_path / "r.1003.exr"
    left = [tmp_path / ".r.1003.4242.1.tmp.exr", atomic.temp_name(target)]
    others = [".r.1003.5.4242.1.tmp.exr", ".r.10030.4242.1.tmp.exr", ".r.1003.4242.1.tmp.json", "r.1003.exr"]
    for path in [*left, *(tmp_path / n for n in others)]:
        path.write_bytes(b"x")
    assert atomic.stale_temps(target) == sorted(left)
    assert atomic.stale_temps(tmp_path / "missing" / "a.exr") == []


def test_track_file_errors_name_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FaceGraftError) as err:
        trackfile.save_track(trackfile.ShotTrack(plate={}, params={}, target=None, tracks=[], frames={}),
                             blocker / "shot.fgtrack.json")
    assert err.value.path == str(blocker / "shot.fgtrack.json")


def test_png_in_either_channel_order(tmp_path):
    import cv2

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    contact_sheet.write_png(tmp_path / "a.png", rgb, rgb=True)
    contact_sheet.write_png(tmp_path / "b.png", rgb[..., ::-1])
    a, b = cv2.imread(str(tmp_path / "a.png")), cv2.imread(str(tmp_path / "b.png"))
    assert np.array_equal(a, b) and a[0, 0, 2] == 200
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]
