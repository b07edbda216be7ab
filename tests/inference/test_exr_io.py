"""EXR round trips through OpenImageIO: windows, precision, layers, metadata, NaN, atomicity."""
from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest

from facegraft.inference import atomic
from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import exr

CHANNELS = ["R", "G", "B", "A", "matte.face", "swap.R"]


def _plate(dtype=np.float16, shape=(4, 6)) -> tuple[np.ndarray, object]:
    rng = np.random.default_rng(1)
    pixels = (rng.normal(size=(*shape, len(CHANNELS))) * 100).astype(dtype)
    pixels[0, 0, 0] = np.nan
    pixels[1, 1, 1] = np.inf
    pixels[2, 2, 2] = -np.inf
    pixels[3, 3, 3] = 40000.0 if dtype == np.float16 else 1e9
    spec = exr.new_spec(shape[1], shape[0], CHANNELS, dtype)
    spec.x, spec.y = 12, -3  # data window offset from the display window
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, 32, 16
    spec.attribute("PixelAspectRatio", 2.0)
    spec.attribute("studio:shot", "sh010")
    return pixels, spec


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    pixels, spec = _plate(dtype)
    if dtype == np.float16:
        pixels.view(np.uint16)[0, 1, 0] = 0x7E01  # a NaN with a payload
    path = tmp_path / "p.exr"
    exr.write_image(path, pixels, spec)
    image = exr.read_image(path)
    assert image.pixels.dtype == dtype
    assert image.data_window == (12, -3, 6, 4)
    assert image.display_window == (0, 0, 32, 16)
    assert image.spec.getattribute("studio:shot") == "sh010"
    assert image.spec.get_float_attribute("PixelAspectRatio") == 2.0
    bits = np.uint16 if dtype == np.float16 else np.uint32
    for i, name in enumerate(CHANNELS):  # OIIO reorders channels on read: compare by name
        assert np.array_equal(image.get([name], dtype).view(bits), pixels[..., [i]].view(bits)), name


def test_make_spec_keeps_header_and_adds_attributes(tmp_path):
    pixels, spec = _plate()
    out = exr.make_spec(spec, ["R", "G", "B"], np.float32, {"facegraft/version": "9"}, "dwaa")
    exr.write_image(tmp_path / "o.exr", pixels[..., :3].astype(np.float32), out)
    image = exr.read_image(tmp_path / "o.exr")
    assert image.channels == ["R", "G", "B"]
    assert image.pixels.dtype == np.float32
    assert image.spec.getattribute("studio:shot") == "sh010"
    assert image.spec.getattribute("facegraft/version") == "9"
    assert image.spec.getattribute("compression").startswith("dwaa")
    assert image.display_window == (0, 0, 32, 16)


def test_truncated_and_non_exr_files_name_the_frame(tmp_path):
    pixels, spec = _plate()
    good = tmp_path / "good.exr"
    exr.write_image(good, pixels, spec)
    data = good.read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) - 40])
    (tmp_path / "text.exr").write_text("not an image")
    with pytest.raises(BadFrameError, match="frame 1007") as err:
        exr.read_image(tmp_path / "cut.exr", frame=1007)
    assert "cut.exr" in str(err.value)
    with pytest.raises(BadFrameError, match="not a readable image"):
        exr.read_image(tmp_path / "text.exr", frame=3)
    with pytest.raises(BadFrameError, match="file not found"):
        exr.read_image(tmp_path / "missing.exr", frame=3)
    assert not exr.is_complete(tmp_path / "text.exr")
    assert exr.is_complete(good)


def test_a_refused_failed_or_killed_write_keeps_the_old_frame_and_leaves_no_temporary(tmp_path):
    pixels, spec = _plate()
    target = tmp_path / "out.exr"
    exr.write_image(target, pixels, spec)
    before = target.read_bytes()
    seen = []

    def killed(y0, y1):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        raise KeyboardInterrupt  # the render is stopped mid-frame

    def disk_full(y0, y1):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ValueError):
        exr.write_image(target, pixels[:2], spec)  # wrong shape: refused before touching the file
    with pytest.raises(KeyboardInterrupt):
        exr.write_image_rows(target, spec, killed, strip=1)
    with pytest.raises(FaceGraftError, match="the disk is full") as err:
        exr.write_image_rows(target, spec, disk_full, frame=1001)
    assert (err.value.path, err.value.frame) == (str(target), 1001)
    assert seen == [sorted(["out.exr", atomic.temp_name(target).name])]  # the temporary sits beside the frame
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.exr"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_reported(tmp_path):
    pixels, spec = _plate()
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(FaceGraftError, match="not writable"):
        exr.write_image(folder / "x.exr", pixels, spec, frame=1001)


def test_unwritable_target_is_reported(tmp_path):
    pixels, spec = _plate()
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(FaceGraftError, match="cannot create the output folder"):
        exr.write_image(blocker / "x.exr", pixels, spec, frame=1001)


def test_per_channel_formats_convert_a_float_buffer_channel_by_channel(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.normal(size=(70, 9, 4)).astype(np.float32) * 100
    pixels[..., :3] = pixels[..., :3].astype(np.float16)  # the half channels hold half values
    spec = exr.make_spec(exr.new_spec(9, 70, ["R", "G", "B", "Z"]), ["R", "G", "B", "Z"],
                            attributes={"DateTime": ""}, formats=[np.float16] * 3 + [np.float32])
    assert str(spec.format) == "float" and [str(f) for f in spec.channelformats] == ["half"] * 3 + ["float"]
    exr.write_image(tmp_path / "whole.exr", pixels, spec)
    exr.write_image_rows(tmp_path / "rows.exr", spec, lambda y0, y1: pixels[y0:y1].copy(), strip=16)
    assert (tmp_path / "rows.exr").read_bytes() == (tmp_path / "whole.exr").read_bytes()
    back = exr.read_image(tmp_path / "rows.exr")
    assert exr.channel_dtypes(back.spec) == [np.float16] * 3 + [np.float32]
    assert np.array_equal(back.pixels, pixels)
    same = exr.make_spec(spec, ["R", "G"], formats=[np.float16, np.float16])
    assert str(same.format) == "half" and not same.channelformats


def test_write_parts_needs_distinct_names_and_one_part_is_write_image(tmp_path):
    pixels, spec = _plate()
    exr.write_image(tmp_path / "one.exr", pixels, spec)
    exr.write_parts(tmp_path / "part.exr", [exr.Part(spec, pixels=pixels)])
    assert (tmp_path / "one.exr").read_bytes() == (tmp_path / "part.exr").read_bytes()
    named = exr.make_spec(spec, CHANNELS)
    named.attribute("oiio:subimagename", "a")
    for specs in ([spec, spec], [named, named]):
        with pytest.raises(ValueError, match="distinct names"):
            exr.write_parts(tmp_path / "bad.exr", [exr.Part(s, pixels=pixels) for s in specs])
    other = exr.make_spec(spec, CHANNELS)
    other.attribute("oiio:subimagename", "b")
    with pytest.raises(ValueError, match="do not match"):
        exr.write_parts(tmp_path / "bad.exr", [exr.Part(named, pixels=pixels), exr.Part(other, pixels=pixels[:2])])
    assert not (tmp_path / "bad.exr").exists()
    halved = pixels / np.float16(2)
    exr.write_parts(tmp_path / "two.exr", [exr.Part(named, pixels=pixels), exr.Part(other, pixels=halved)])
    assert [exr.part_name(s) for s in exr.read_headers(tmp_path / "two.exr")] == ["a", "b"]
    b = exr.read_image(tmp_path / "two.exr", part="b")
    assert np.array_equal(b.get(["R"], np.float16).view(np.uint16), halved[..., :1].view(np.uint16))
    assert exr.read_image(tmp_path / "two.exr", part=0).part_name == "a"
    with pytest.raises(FaceGraftError, match="no part 'c'"):
        exr.read_image(tmp_path / "two.exr", part="c")
