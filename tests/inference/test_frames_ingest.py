"""Ingest of the sample footage and the frame sources built on it."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from facegraft.inference import assets
from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import colour, exr
from facegraft.inference.io.frames import SequenceSource, VideoSource, open_source


def test_ingested_plate_is_scene_linear_acescg(single_face_plate):
    source = open_source(single_face_plate)
    assert source.frames == list(range(1001, 1013))
    plate = source.read(1001)
    assert plate.rgb.shape == (360, 640, 3) and plate.image is not None
    assert plate.image.pixels.dtype == np.float16
    video = VideoSource(str(assets.footage_path("single_face.mp4")), start=1001)
    expected = video.read(1001).rgb  # the same decode, converted sRGB texture -> ACEScg
    assert np.abs(plate.rgb - expected).max() < 2e-3
    # and it is linear: back through OCIO to sRGB it matches the 8-bit decode
    srgb = colour.converter("ACEScg", "sRGB - Texture")(plate.rgb)
    import cv2

    capture = cv2.VideoCapture(str(assets.footage_path("single_face.mp4")))
    ok, bgr = capture.read()
    assert ok
    assert np.abs(srgb - bgr[..., ::-1] / 255.0).max() < 4e-3


def test_video_random_access_matches_sequential():
    video = VideoSource(str(assets.footage_path("single_face.mp4")), frames="1-72")
    assert len(video.frames) == 72
    a = video.read(10).rgb
    video.read(40)
    assert np.array_equal(video.read(10).rgb, a)
    with pytest.raises(FaceGraftError, match="asked for"):
        VideoSource(str(assets.footage_path("single_face.mp4")), frames="70-80")


def test_sequence_source_errors(single_face_plate, tmp_path):
    with pytest.raises(FaceGraftError, match="missing frame"):
        SequenceSource(single_face_plate, frames="1010-1020")
    # a plate without RGB channels
    spec = exr.new_spec(8, 8, ["Y"], np.float16)
    exr.write_image(tmp_path / "grey.1001.exr", np.zeros((8, 8, 1), np.float16), spec)
    with pytest.raises(BadFrameError, match="no channel 'R'"):
        SequenceSource(str(tmp_path / "grey.####.exr")).read(1001)


def test_info_command_reports_range_and_missing(single_face_plate, tmp_path):
    import shutil

    from facegraft.inference.io.sequence import SequencePattern

    seq = SequencePattern(single_face_plate)
    holed = tmp_path / "holed.####.exr"
    for frame in (1001, 1002, 1005):
        shutil.copy(seq.path(frame), str(holed).replace("####", f"{frame:04d}"))
    out = subprocess.run([sys.executable, "-m", "facegraft.cli.main", "info", str(holed), "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert (info["first"], info["last"], info["missing"]) == (1001, 1005, [1003, 1004])
    assert info["channels"] == ["R", "G", "B"] and info["format"] == ["half"]
    assert info["display_window"] == [0, 0, 640, 360]


def test_ingest_skips_complete_frames_and_reports_bad_source(tmp_path):
    from facegraft.inference.io.ingest import ingest

    pattern = str(tmp_path / "p.####.exr")
    first = ingest(str(assets.footage_path("single_face.mp4")), pattern, frames="1001-1003")
    assert len(first) == 3
    again = ingest(str(assets.footage_path("single_face.mp4")), pattern, frames="1001-1004")
    assert [p[-8:] for p in again] == ["1004.exr"]
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    result = subprocess.run([sys.executable, "-m", "facegraft.cli.main", "ingest", str(tmp_path / "junk.mp4"),
                             str(tmp_path / "j.####.exr")], capture_output=True, text=True)
    assert result.returncode == 2 and "junk.mp4" in result.stderr and "no frames could be decoded" in result.stderr


def test_ingest_refuses_frames_the_source_does_not_have(tmp_path):
    from facegraft.inference.io.ingest import ingest

    with pytest.raises(FaceGraftError, match=r"no frame\(s\) 10\d\d-2000") as err:
        ingest(str(assets.footage_path("single_face.mp4")), str(tmp_path / "p.####.exr"), frames="1001-2000")
    assert "it has 1001-" in err.value.describe()
    assert not list(tmp_path.iterdir())  # nothing written


def test_ingest_of_an_image_sequence_keeps_its_numbers(tmp_path):
    import cv2

    from facegraft.inference.io.ingest import ingest

    for frame in (5, 6, 7):
        cv2.imwrite(str(tmp_path / f"scan.{frame:04d}.png"), np.full((8, 8, 3), 20 * frame, np.uint8))
    written = ingest(str(tmp_path / "scan.####.png"), str(tmp_path / "out" / "p.####.exr"), start=1001, frames="6-7")
    assert [p[-8:] for p in written] == ["0006.exr", "0007.exr"]
    assert exr.read_header(written[0]).getattribute("facegraft/source_frame") == 6
    with pytest.raises(FaceGraftError, match=r"no frame\(s\) 1001"):
        ingest(str(tmp_path / "scan.####.png"), str(tmp_path / "out" / "p.####.exr"), frames="1001")
    video = ingest(str(assets.footage_path("single_face.mp4")), str(tmp_path / "v.####.exr"), start=101, frames="102")
    assert exr.read_header(video[0]).getattribute("facegraft/source_frame") == 2
