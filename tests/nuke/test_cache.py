"""The node's cache keeps unchanged frames as they are: a frame Nuke writes again with the same pixels (a new
date in its header) is not a new frame -- for the track's stamp and for FaceGraft's own resume."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
from facegraft_nuke import paths, stamps


def _write(path: Path, pixels: np.ndarray, when: str, note: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], oiio.HALF)
    spec.attribute("compression", "zip")
    spec.attribute("DateTime", when)
    if note:
        spec.attribute("nuke/node_hash", note)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec)
    out.write_image(pixels.astype(np.float16))
    out.close()


def test_content_is_the_pixels_and_the_structure_not_the_metadata(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).random((48, 64, 4)).astype(np.float32)
    _write(tmp_path / "a.exr", pixels, "2024:01:01 10:00:00", "1f2e")
    _write(tmp_path / "b.exr", pixels, "2025:06:30 23:59:59", "9a9a")
    changed = pixels.copy()
    changed[10, 10, 0] += 0.5
    _write(tmp_path / "c.exr", changed, "2024:01:01 10:00:00", "1f2e")
    _write(tmp_path / "d.exr", pixels[:, :32], "2024:01:01 10:00:00", "1f2e")
    read = {name: (tmp_path / f"{name}.exr").read_bytes() for name in "abcd"}
    assert read["a"] != read["b"] and stamps.exr_content(read["a"]) == stamps.exr_content(read["b"])
    assert stamps.exr_content(read["a"]) != stamps.exr_content(read["c"])
    assert stamps.exr_content(read["a"]) != stamps.exr_content(read["d"])  # another window: not the same frame
    assert stamps.exr_content(b"not an exr at all") == b"not an exr at all"


def test_promote_moves_only_the_frames_that_changed(tmp_path: Path) -> None:
    final, staged = str(tmp_path / "plate.####.exr"), str(tmp_path / "incoming" / "plate.####.exr")
    frames = {f: np.full((8, 8, 4), f - 1000, np.float32) for f in range(1001, 1004)}
    for frame, pixels in frames.items():
        _write(Path(paths.frame_path(staged, frame)), pixels, "2024:01:01 10:00:00")
    assert stamps.promote(staged, final, 1001, 1003) == [1001, 1002, 1003]
    before = {f: os.stat(paths.frame_path(final, f)).st_mtime_ns for f in frames}
    time.sleep(0.02)
    frames[1002] = frames[1002] + 1
    for frame, pixels in frames.items():  # Nuke writes every frame again, with a new date
        _write(Path(paths.frame_path(staged, frame)), pixels, "2024:01:02 11:00:00")
    assert stamps.promote(staged, final, 1001, 1003) == [1002]
    after = {f: os.stat(paths.frame_path(final, f)).st_mtime_ns for f in frames}
    assert after[1001] == before[1001] and after[1003] == before[1003] and after[1002] != before[1002]
    assert not list((tmp_path / "incoming").iterdir())
    first = stamps.plate_fingerprint(final, 1001, 1003, contents=True)
    _write(Path(paths.frame_path(final, 1001)), frames[1001], "2030:01:01 00:00:00")
    assert stamps.plate_fingerprint(final, 1001, 1003, contents=True) == first
    assert stamps.plate_fingerprint(final, 1001, 1003, contents=False) != first
