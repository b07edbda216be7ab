"""Content-aware resume: a frame on disk is kept only when it is complete and its stamp (format,
model, settings, track, plate and holdout) matches this render; every other frame is rendered
again, and the report says why. Real EXRs, real ONNX models, the real command line."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from render_fixtures import FIRST, aligned_transform, make_plate, make_track
from render_models import build_identity_model

from facegraft.inference.io import colour, exr, frames, layers
from facegraft.inference.models import face_model
from facegraft.inference.render import stamp
from facegraft.inference.render.renderer import render_settings, render_shot
from facegraft.inference.track.trackfile import ShotTrack, load_track, save_track

FACEGRAFT = [sys.executable, "-m", "facegraft.cli.main"]
RES = 64
FRAMES = list(range(FIRST, FIRST + 4))
PLAIN = {"erode": 0.0, "feather": 0.0, "color_match": "none"}


@pytest.fixture
def shot(tmp_path: Path) -> dict:
    plate = make_plate(tmp_path / "plate", frames=FRAMES)
    track = make_track(FRAMES, aligned_transform(RES, "whole_face", (64, 40)))
    track_path = tmp_path / "sh010.fgtrack.json"
    save_track(track, track_path)
    a = build_identity_model(tmp_path / "a.onnx", RES, shift=[0.05, 0, 0])
    b = build_identity_model(tmp_path / "b.onnx", RES, shift=[0, 0.08, 0])
    return {"root": tmp_path, "plate": plate, "track": str(track_path), "a": str(a), "b": str(b),
            "out": str(tmp_path / "out" / "r.####.exr")}


def _render(shot: dict, model: str, out: str = "", track: ShotTrack | None = None, **options):
    call = {k: options.pop(k) for k in list(options) if k in ("frames", "overwrite", "on_error")}
    settings = render_settings({**PLAIN, **options})
    loaded = face_model.load(model, device="cpu", precision=settings.precision)
    return render_shot(frames.open_source(shot["plate"]), track or load_track(shot["track"]), loaded,
                       out or shot["out"], settings, **call)


def _path(pattern: str, frame: int) -> Path:
    return Path(pattern.replace("####", f"{frame:04d}"))


def _header(pattern: str, frame: int) -> dict:
    return exr.attributes(exr.read_header(_path(pattern, frame)), layers.PREFIX)


def _mtimes(pattern: str) -> dict[int, int]:
    return {f: _path(pattern, f).stat().st_mtime_ns for f in FRAMES}


def test_another_model_to_the_same_output_leaves_no_frame_of_the_first(shot: dict) -> None:
    _render(shot, shot["a"])
    report = _render(shot, shot["b"])  # no --overwrite
    assert report.stale == {f: stamp.MODEL_CHANGED for f in FRAMES} and report.existing == []
    assert report.rendered == FRAMES
    b_hash = face_model.load(shot["b"], device="cpu").info.content_hash
    clean = str(shot["root"] / "clean" / "r.####.exr")
    _render(shot, shot["b"], out=clean)
    for frame in FRAMES:
        assert _header(shot["out"], frame)["facegraft/model_hash"] == b_hash
        # the same bytes as a render with B alone: nothing of A's frames is left
        assert _path(shot["out"], frame).read_bytes() == _path(clean, frame).read_bytes()


def test_an_unchanged_render_keeps_every_frame_untouched(shot: dict) -> None:
    _render(shot, shot["a"])
    before = _mtimes(shot["out"])
    report = _render(shot, shot["a"])
    assert report.existing == FRAMES and report.stale == {} and report.rendered == []
    assert _mtimes(shot["out"]) == before
    attrs = _header(shot["out"], FIRST)
    assert attrs["facegraft/format_version"] == layers.FORMAT_VERSION
    assert attrs["facegraft/plate_fingerprint"] == stamp.image_fingerprint(str(_path(shot["plate"], FIRST)))
    assert str(attrs["facegraft/plate_fingerprint"]).startswith(stamp.PIXELS_PREFIX)
    assert str(attrs["facegraft/track_fingerprint"]).startswith("sha256:")
    assert (attrs["facegraft/layers"], attrs["facegraft/compression"]) == ("swap,matte,stmap", "plate")


def test_a_changed_setting_renders_every_frame_again(shot: dict) -> None:
    _render(shot, shot["a"])
    report = _render(shot, shot["a"], feather=6.0)
    assert report.stale == {f: stamp.SETTINGS_CHANGED for f in FRAMES}
    report = _render(shot, shot["a"], feather=6.0, layers="swap")  # the layers written are part of it too
    assert set(report.stale.values()) == {stamp.SETTINGS_CHANGED}
    assert _header(shot["out"], FIRST)["facegraft/layers"] == "swap"
    assert _render(shot, shot["a"], feather=6.0, layers="swap").stale == {}


def test_fp16_arithmetic_is_stamped_and_renders_again(shot: dict) -> None:
    _render(shot, shot["a"])
    report = _render(shot, shot["a"], precision="fp16")
    assert report.stale == {f: stamp.SETTINGS_CHANGED for f in FRAMES}
    assert json.loads(str(_header(shot["out"], FIRST)["facegraft/params"]))["precision"] == "fp16"
    assert _render(shot, shot["a"], precision="fp16").stale == {}


def test_a_re_delivered_plate_frame_is_rendered_again_alone(shot: dict) -> None:
    _render(shot, shot["a"])
    before = _mtimes(shot["out"])
    # re-deliver frame 1002: same size, same header, one pixel retouched
    image = exr.read_image(_path(shot["plate"], FIRST + 1))
    pixels = image.pixels.copy()
    pixels[70, 100, 0] += np.float16(0.25)
    exr.write_image(_path(shot["plate"], FIRST + 1), pixels, image.spec)
    report = _render(shot, shot["a"])
    assert report.stale == {FIRST + 1: stamp.PLATE_CHANGED} and report.rendered == [FIRST + 1]
    after = _mtimes(shot["out"])
    assert [f for f in FRAMES if after[f] != before[f]] == [FIRST + 1]


def test_a_header_only_change_to_a_plate_frame_keeps_its_render(shot: dict) -> None:
    """A plate frame written again with the same pixels and a new date, software string and
    metadata (the header grows: every chunk offset moves) is the same frame; the same pixels with
    another compression, or one retouched pixel, are not."""
    _render(shot, shot["a"])
    before = _mtimes(shot["out"])
    path = _path(shot["plate"], FIRST + 1)
    image = exr.read_image(path)
    whole, pixels = stamp.file_fingerprint(str(path)), stamp.image_fingerprint(str(path))
    spec = exr.make_spec(image.spec, image.channels, image.pixels.dtype.type)
    spec.attribute("DateTime", "2031:07:14 09:30:00")
    spec.attribute("Software", "a compositing package, version 16.0v2 (a longer string than before)")
    spec.attribute("studio/delivery", "vendor_b_v002 " * 20)
    exr.write_image(path, image.pixels, spec)
    assert stamp.file_fingerprint(str(path)) != whole and stamp.image_fingerprint(str(path)) == pixels
    report = _render(shot, shot["a"])
    assert report.stale == {} and report.existing == FRAMES and _mtimes(shot["out"]) == before
    spec.attribute("compression", "piz" if spec.get_string_attribute("compression") != "piz" else "zip")
    exr.write_image(path, image.pixels, spec)
    assert _render(shot, shot["a"]).stale == {FIRST + 1: stamp.PLATE_CHANGED}


def test_the_device_is_not_compared_and_the_ocio_alias_is_stamped_versioned(shot: dict) -> None:
    """A frame rendered on another device (a CPU fall-back, stamped in facegraft/device) is kept; the
    OCIO config alias and the versioned URI it stands for are the same config, another config is not."""
    alias = "ocio://studio-config-latest"
    _render(shot, shot["a"], ocio_config=alias)
    found = stamp.read_stamp(str(_path(shot["out"], FIRST)))
    assert found is not None and "device" in found
    assert json.loads(str(found["params"]))["ocio_config"] == colour.resolve_config(alias) != alias
    check = stamp.RenderStamp(face_model.load(shot["a"], device="cpu").info.content_hash,
                              render_settings({**PLAIN, "ocio_config": alias}), frames.open_source(shot["plate"]),
                              load_track(shot["track"]))
    assert check.compare({**found, "device": "cuda (fell back to cpu: no CUDA)"}, FIRST) is None
    older = {**json.loads(str(found["params"])), "ocio_config": alias}  # as a render that stamped the alias
    assert check.compare({**found, "params": json.dumps(older)}, FIRST) == stamp.SETTINGS_CHANGED
    assert _render(shot, shot["a"], ocio_config=colour.resolve_config(alias)).existing == FRAMES


def test_a_re_track_renders_again_only_the_frames_it_changed(shot: dict) -> None:
    _render(shot, shot["a"])
    moved = make_track(FRAMES, aligned_transform(RES, "whole_face", (64, 40)))
    moved.frames[FIRST + 2] = make_track([FIRST + 2], aligned_transform(RES, "whole_face", (66, 40))).frames[FIRST + 2]
    save_track(moved, shot["track"])
    report = _render(shot, shot["a"])
    assert report.stale == {FIRST + 2: stamp.TRACK_CHANGED}


def test_a_changed_holdout_frame_is_rendered_again(shot: dict) -> None:
    roto = shot["root"] / "roto"
    roto.mkdir()
    spec = exr.new_spec(40, 30, ["A"], np.float16)
    for frame in FRAMES:
        exr.write_image(roto / f"hands.{frame:04d}.exr", np.full((30, 40, 1), 0.5, np.float16), spec)
    holdout = str(roto / "hands.####.exr")
    _render(shot, shot["a"], holdout=holdout)
    assert _render(shot, shot["a"], holdout=holdout).stale == {}
    exr.write_image(roto / f"hands.{FIRST + 3:04d}.exr", np.full((30, 40, 1), 1.0, np.float16), spec)
    assert _render(shot, shot["a"], holdout=holdout).stale == {FIRST + 3: stamp.HOLDOUT_CHANGED}


def test_another_format_version_and_a_partial_file_are_rendered_again(shot: dict) -> None:
    _render(shot, shot["a"])
    older = _path(shot["out"], FIRST)
    image = exr.read_image(older)
    image.spec.attribute("facegraft/format_version", 0)  # as a render of another layout would be stamped
    exr.write_image(older, image.pixels, image.spec)
    cut = _path(shot["out"], FIRST + 1)
    cut.write_bytes(cut.read_bytes()[:400])  # e.g. a copy that stopped half way
    report = _render(shot, shot["a"])
    assert report.stale == {FIRST: stamp.FORMAT_CHANGED, FIRST + 1: stamp.INCOMPLETE}
    assert report.existing == [FIRST + 2, FIRST + 3]


def test_a_file_without_a_stamp_is_not_taken_as_done(shot: dict) -> None:
    # a frame some other tool wrote at the output path
    out = _path(shot["out"], FIRST)
    out.parent.mkdir(parents=True)
    shutil.copy(_path(shot["plate"], FIRST), out)
    report = _render(shot, shot["a"], frames=[FIRST])
    assert report.stale == {FIRST: stamp.FORMAT_CHANGED} and report.rendered == [FIRST]


def test_the_command_line_says_how_many_frames_were_rendered_again_and_why(shot: dict) -> None:
    base = ["render", shot["plate"], "--track", shot["track"], "--out", shot["out"], "--feather", "0"]
    first = subprocess.run([*FACEGRAFT, *base, "--model", shot["a"]], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    text = subprocess.run([*FACEGRAFT, *base, "--model", shot["b"], "--frames", f"{FIRST}-{FIRST + 1}"],
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "2 frame(s) on disk are out of date and are rendered again: model changed: 1001-1002" in text.stderr
    assert "rendered 2 frame(s)" in text.stderr and "2 of them rendered again (2 model changed)" in text.stderr
    result = subprocess.run([*FACEGRAFT, *base, "--model", shot["b"], "--json-progress"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout.splitlines()[-1])
    assert event["event"] == "result" and event["existing"] == "1001-1002" and event["rendered"] == "1003-1004"
    assert event["rerendered_count"] == 2 and event["rerendered_why"] == {"model changed": "1003-1004"}
    progress = [e for e in map(json.loads, result.stdout.splitlines()) if e["event"] == "progress"]
    assert progress[-1]["done"] == 4  # kept frames count as done


def test_the_plate_fingerprint_of_multi_part_tiled_partial_and_other_files(tmp_path: Path) -> None:
    import cv2
    import OpenImageIO as oiio

    rng = np.random.default_rng(5)
    parts = []
    for name, channels, compression in (("beauty", ["R", "G", "B"], "zip"), ("depth", ["Z"], "dwab")):
        spec = exr.new_spec(40, 30, channels, np.float16)
        spec.attribute("oiio:subimagename", name)
        spec.attribute("compression", compression)
        parts.append(exr.Part(spec, pixels=rng.random((30, 40, len(channels))).astype(np.float16)))
    exr.write_parts(tmp_path / "mp.exr", parts)
    parts[1].spec.attribute("DateTime", "2030:01:01 00:00:00")  # a header-only change in the second part
    exr.write_parts(tmp_path / "mp2.exr", parts)
    parts[1].spec.attribute("oiio:subimagename", "zdepth")  # a part renamed: another frame
    exr.write_parts(tmp_path / "mp3.exr", parts)
    fingerprints = [stamp.image_fingerprint(str(tmp_path / f"{n}.exr")) for n in ("mp", "mp2", "mp3")]
    assert fingerprints[0].startswith(stamp.PIXELS_PREFIX) and fingerprints[0] == fingerprints[1] != fingerprints[2]

    for level_mode in ("one", "mip"):  # tiled, one level and mipmapped
        buf = oiio.ImageBuf(oiio.ImageSpec(333, 217, 3, "half"))
        buf.set_pixels(oiio.ROI(), rng.random((217, 333, 3)).astype(np.float32))
        path = str(tmp_path / f"tiled_{level_mode}.exr")
        if level_mode == "one":
            buf.set_write_tiles(32, 16)
            assert buf.write(path)
        else:
            config = oiio.ImageSpec(333, 217, 3, "half")
            config.tile_width, config.tile_height = 32, 16
            assert oiio.ImageBufAlgo.make_texture(oiio.MakeTxTexture, buf, path, config), oiio.geterror()
        assert exr.read_header(path).tile_width == 32
        assert stamp.image_fingerprint(path).startswith(stamp.PIXELS_PREFIX), level_mode

    whole = (tmp_path / "mp.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(whole[:len(whole) // 2])  # a copy that stopped half way
    assert stamp.image_fingerprint(str(tmp_path / "cut.exr")) == stamp.file_fingerprint(str(tmp_path / "cut.exr"))
    cv2.imwrite(str(tmp_path / "scan.png"), np.full((4, 4, 3), 9, np.uint8))
    assert stamp.image_fingerprint(str(tmp_path / "scan.png")) == stamp.file_fingerprint(str(tmp_path / "scan.png"))
    assert stamp.image_fingerprint(str(tmp_path / "none.exr")) == stamp.MISSING
