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
    with pytest.raises(BadFrameError, match=r"frame 1001: no R, G and B channels \(channels: Y\)"):
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


def test_a_converted_plate_renders_in_the_plate_space_everywhere(tmp_path):
    """A non-EXR sequence is converted on read (sRGB texture -> ACEScg): the render's beauty holds
    the converted plate outside the matte too, not the file's encoded values."""
    import cv2
    from render_fixtures import make_track, rotated_transform
    from render_models import build_identity_model

    from facegraft.inference.models import face_model
    from facegraft.inference.render.renderer import render_shot
    from facegraft.inference.render.settings import RenderSettings

    for frame in (1001, 1002):
        image = np.full((144, 192, 3), 128, np.uint8)
        image[..., 2] = np.arange(192)[None] % 256  # a ramp in R (OpenCV writes BGR)
        cv2.imwrite(str(tmp_path / f"s.{frame}.png"), image)
    source = open_source(str(tmp_path / "s.####.png"))
    model = face_model.load(build_identity_model(tmp_path / "m.onnx", 64), device="cpu")
    render_shot(source, make_track([1001, 1002], rotated_transform((96, 72), 44, 15)), model,
                str(tmp_path / "o" / "r.####.exr"), RenderSettings(erode=0, feather=4, color_match="none", blend="alpha"))
    out, plate = exr.read_image(tmp_path / "o" / "r.1001.exr"), source.read(1001)
    matte = out.get(["swap.A"])[..., 0]
    assert (matte == 0).sum() > 1000 and (matte > 0.99).sum() > 500
    np.testing.assert_array_equal(out.rgb()[matte == 0], plate.rgb[matte == 0])
    np.testing.assert_allclose(out.rgb()[matte > 0.99], plate.rgb[matte > 0.99], atol=1e-3)  # identity model


def test_an_exr_still_is_read_through_openimageio_with_its_float_pixels(tmp_path):
    """A still is a one-frame sequence, read like a plate frame: float values above 1, below 0,
    NaN and Inf exactly as stored (the video reader would give 8-bit display-referred values)."""
    from facegraft.inference.io.frames import is_still, is_video
    from facegraft.inference.io.sequence import SequencePattern

    rng = np.random.default_rng(3)
    pixels = (rng.normal(size=(9, 16, 3)) * 4).astype(np.float32)
    pixels[2, 3] = [np.inf, np.nan, -7.5]
    exr.write_image(tmp_path / "still.exr", pixels, exr.new_spec(16, 9, ["R", "G", "B"], np.float32))
    still = str(tmp_path / "still.exr")
    source = open_source(still)
    assert isinstance(source, SequenceSource) and source.frames == [1] and source.name == still
    assert source.sequence == SequencePattern(still, still=1) and source.path(1) == still
    np.testing.assert_array_equal(source.read(1).rgb, pixels)
    assert np.isnan(source.read_parts(1).rgb[2, 3, 1]) and source.read_parts(1).rgb.dtype == np.float32
    assert open_source(still, start=1001).frames == [1001]  # ingest numbers a still like a video
    with pytest.raises(FaceGraftError, match=r"no part 'left' \(parts: 0 \(R, G, B\)\)"):
        open_source(still, part="left").read(1)
    with pytest.raises(FaceGraftError, match="file not found"):
        open_source(str(tmp_path / "nothing.exr"))
    assert is_still(still) and is_still("ref/face.png") and not is_still("plates/sh010.####.exr")
    assert is_video("clip.mp4") and is_video("clip.MTS") and not is_video(still) and not is_video("p.####.png")


def test_an_8bit_still_reads_as_the_video_reader_decoded_it(tmp_path):
    """The same pixels as before stills went through OpenImageIO: 8-bit sRGB, converted to the plate space."""
    import cv2

    image = np.zeros((10, 12, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = np.arange(12)[None] * 20, 90, 200  # B, G, R
    cv2.imwrite(str(tmp_path / "ref.png"), image)
    source = open_source(str(tmp_path / "ref.png"))
    assert isinstance(source, SequenceSource) and source.converts
    np.testing.assert_allclose(source.read(1).rgb, VideoSource(str(tmp_path / "ref.png")).read(1).rgb, atol=1e-6)


def test_a_sequence_source_takes_a_sequence_pattern(single_face_plate):
    from facegraft.inference.io.sequence import SequencePattern

    pattern = SequencePattern(single_face_plate)
    source = SequenceSource(pattern, frames="1001-1002")
    assert source.sequence is pattern and source.name == single_face_plate and source.frames == [1001, 1002]
    np.testing.assert_array_equal(source.read(1001).rgb, SequenceSource(single_face_plate).read(1001).rgb)
