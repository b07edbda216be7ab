"""`facegraft render` and `facegraft model-info` as a user runs them (real subprocesses)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from render_fixtures import FIRST, aligned_transform, make_plate, make_track
from render_models import build_identity_model

from facegraft.inference.io import colour, exr, frames
from facegraft.inference.models import face_model
from facegraft.inference.render import renderer
from facegraft.inference.track.trackfile import save_track

FACEGRAFT = [sys.executable, "-m", "facegraft.cli.main"]


def _cli(*args, **kwargs):
    return subprocess.run([*FACEGRAFT, *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    root = tmp_path_factory.mktemp("shot")
    plate = make_plate(root / "plate", frames=range(FIRST, FIRST + 10))
    track = root / "sh010.fgtrack.json"
    save_track(make_track(range(FIRST, FIRST + 10), aligned_transform(64, "whole_face", (64, 40)), moving=0.7), track)
    model = build_identity_model(root / "actor.onnx", 64, shift=[0.05, 0, 0])
    return {"root": root, "plate": plate, "track": track, "model": model}


def test_model_info_text_and_json(shot):
    result = _cli("model-info", shot["model"])
    assert result.returncode == 0, result.stderr
    assert "resolution" in result.stdout and "64 x 64" in result.stdout and "ACEScct" in result.stdout
    data = json.loads(_cli("model-info", shot["model"], "--json").stdout)
    assert data["resolution"] == 64 and data["source"] == "source_actor" and data["output_names"] == ["swap", "mask"]


def test_model_info_refuses_non_onnx(tmp_path):
    bad = tmp_path / "face.onnx"
    bad.write_text("this is a text file")
    result = _cli("model-info", bad)
    assert result.returncode == 5
    assert "face.onnx" in result.stderr and "not an ONNX model" in result.stderr


def test_render_json_progress(shot, tmp_path):
    out = tmp_path / "r.####.exr"
    result = _cli("render", shot["plate"], "--track", shot["track"], "--model", shot["model"], "--out", out,
                  "--frames", f"{FIRST}-{FIRST + 3}", "--feather", "4", "--color-match", "lct",
                  "--compression", "dwaa", "--json-progress")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] in ("info", "start") and "done" in kinds and kinds[-1] == "result"
    assert [e["frame"] for e in events if e["event"] == "progress"] == list(range(FIRST, FIRST + 4))
    assert events[-1]["rendered"] == f"{FIRST}-{FIRST + 3}"
    spec = exr.read_header(tmp_path / f"r.{FIRST}.exr")
    assert spec.get_string_attribute("compression").startswith("dwaa")


def test_render_errors_exit_codes(shot, tmp_path):
    base = ["render", shot["plate"], "--track", shot["track"], "--out", tmp_path / "r.####.exr"]
    not_model = tmp_path / "x.onnx"
    not_model.write_bytes(b"\0" * 64)
    result = _cli(*base, "--model", not_model)
    assert result.returncode == 5 and "x.onnx" in result.stderr
    result = _cli(*base, "--model", shot["model"], "--frames", f"{FIRST}-{FIRST + 20}")
    assert result.returncode == 2 and "missing frame" in result.stderr
    short = tmp_path / "short.fgtrack.json"
    save_track(make_track(range(FIRST, FIRST + 2), aligned_transform(64, "whole_face", (64, 40))), short)
    result = _cli("render", shot["plate"], "--track", short, "--model", shot["model"], "--out", tmp_path / "r.####.exr")
    assert result.returncode == 2 and "no entry for frame(s) 1003-1010" in result.stderr
    assert not list(tmp_path.glob("r.*.exr"))


def test_corrupt_plate_frame_exit_4(shot, tmp_path):
    import shutil

    folder = tmp_path / "plate"
    shutil.copytree(Path(shot["plate"]).parent, folder)
    (folder / "plate.1002.exr").write_bytes((folder / "plate.1002.exr").read_bytes()[:300])
    args = ["render", folder / "plate.####.exr", "--track", shot["track"], "--model", shot["model"],
            "--frames", f"{FIRST}-{FIRST + 3}"]
    result = _cli(*args, "--out", tmp_path / "fail" / "r.####.exr")
    assert result.returncode == 4 and "plate.1002.exr" in result.stderr and "frame 1002" in result.stderr
    result = _cli(*args, "--out", tmp_path / "skip" / "r.####.exr", "--on-error", "skip")
    assert result.returncode == 4 and "skipped: 1002" in result.stderr
    assert sorted(p.name for p in (tmp_path / "skip").iterdir()) == ["r.1001.exr", "r.1003.exr", "r.1004.exr"]


def test_real_track_on_sample_footage(single_face_plate, tmp_path):
    """The real tracker on the sample plate, then an identity render: the face comes back, the rest is untouched."""
    from facegraft.inference.track.tracker import track_shot

    source = frames.open_source(single_face_plate, f"{FIRST}-{FIRST + 3}")
    track = track_shot(source, smooth=0.5)
    model = face_model.load(build_identity_model(tmp_path / "id.onnx", 128), device="cpu")
    out = str(tmp_path / "r.####.exr")
    report = renderer.render_shot(source, track, model, out, renderer.RenderSettings(feather=6))
    assert report.rendered == list(range(FIRST, FIRST + 4))
    for frame in report.rendered:
        o = exr.read_image(out.replace("####", str(frame)))
        p = exr.read_image(single_face_plate.replace("####", str(frame)))
        alpha = o.get(["swap.A"])[..., 0]
        assert (alpha > 0.99).sum() > 2000  # a face-sized matte
        outside = alpha == 0
        assert np.array_equal(o.get(["R", "G", "B"], np.float16).view(np.uint16)[outside],
                              p.get(["R", "G", "B"], np.float16).view(np.uint16)[outside])
        diff = np.abs(o.rgb() - p.rgb())[alpha > 0.99]
        assert np.median(diff) < 0.01  # resampled twice (crop + uncrop) through a 128 px crop


def test_render_layers_option(shot, tmp_path):
    base = ["render", shot["plate"], "--track", shot["track"], "--model", shot["model"], "--frames", str(FIRST)]
    result = _cli(*base, "--out", tmp_path / "r.####.exr", "--layers", "none")
    assert result.returncode == 0, result.stderr
    assert set(exr.read_header(tmp_path / f"r.{FIRST}.exr").channelnames) == {"R", "G", "B", "A", "Z"}
    result = _cli(*base, "--out", tmp_path / "bad.####.exr", "--layers", "swap,depth")
    assert result.returncode == 2 and "--layers" in result.stderr and "depth" in result.stderr


def test_render_defaults_are_the_declared_ones_and_the_old_ones_can_be_asked_for(shot, tmp_path):
    """No setting flags: the unified defaults (erode 4, feather 12, rct), stamped in the header."""
    from facegraft.inference.render.settings import default

    base = ["render", shot["plate"], "--track", shot["track"], "--model", shot["model"], "--frames", str(FIRST)]
    assert _cli(*base, "--out", tmp_path / "new.####.exr").returncode == 0
    old = _cli(*base, "--out", tmp_path / "old.####.exr", "--erode", "0", "--feather", "0", "--color-match", "none")
    assert old.returncode == 0, old.stderr
    stamps = {name: json.loads(exr.read_header(tmp_path / f"{name}.{FIRST}.exr").get_string_attribute("facegraft/params"))
              for name in ("new", "old")}
    for name in ("erode", "feather", "color_match", "blend", "holdout_channel", "plate_colorspace", "plate_part"):
        assert stamps["new"][name] == default(name), name
    assert stamps["new"]["ocio_config"] == colour.resolve_config(default("ocio_config"))  # the versioned URI
    assert (stamps["new"]["erode"], stamps["new"]["feather"], stamps["new"]["color_match"]) == (4, 12, "rct")
    assert (stamps["old"]["erode"], stamps["old"]["feather"], stamps["old"]["color_match"]) == (0, 0, "none")
    new, before = (exr.read_image(tmp_path / f"{name}.{FIRST}.exr").get(["swap.A"])[..., 0] for name in ("new", "old"))
    # the default matte is eroded and feathered: softer (fewer solid pixels), and no larger overall
    solid_new, solid_before = (new > 0.999).sum(), (before > 0.999).sum()
    assert solid_before > 100 and solid_new < solid_before / 2, (solid_new, solid_before)
    assert 0 < new.sum() < before.sum() and new.max() > 0.5


def test_render_takes_frame_files_for_the_plate_and_the_holdout(shot, tmp_path):
    roto = tmp_path / "roto"
    roto.mkdir()
    spec = exr.new_spec(40, 30, ["A"], np.float16)
    for frame in range(FIRST, FIRST + 10):
        exr.write_image(roto / f"hands.{frame:04d}.exr", np.full((30, 40, 1), 0.5, np.float16), spec)
    frame_file = shot["plate"].replace("####", f"{FIRST + 3:04d}")
    base = ["render", "--track", shot["track"], "--model", shot["model"], "--frames", f"{FIRST}-{FIRST + 1}"]
    by_file = _cli(*base, frame_file, "--holdout", roto / f"hands.{FIRST:04d}.exr", "--out", tmp_path / "a" / "r.####.exr")
    assert by_file.returncode == 0, by_file.stderr
    assert f"plate.{FIRST + 3}.exr is a frame of the sequence {shot['plate']} (10 frame(s) on disk" in by_file.stderr
    assert f"hands.{FIRST}.exr is a frame of the sequence {roto / 'hands.####.exr'}" in by_file.stderr
    by_pattern = _cli(*base, shot["plate"], "--holdout", roto / "hands.####.exr", "--out", tmp_path / "b" / "r.####.exr")
    assert by_pattern.returncode == 0 and "is a frame of" not in by_pattern.stderr
    for frame in (FIRST, FIRST + 1):
        assert (tmp_path / "a" / f"r.{frame}.exr").read_bytes() == (tmp_path / "b" / f"r.{frame}.exr").read_bytes()
    exr.write_image(roto / "matte.exr", np.full((30, 40, 1), 0.5, np.float16), spec)
    still = _cli(*base, shot["plate"], "--holdout", roto / "matte.exr", "--out", tmp_path / "c" / "r.####.exr")
    assert still.returncode == 2 and "the holdout is one still image, not a sequence" in still.stderr


def test_render_out_must_be_a_pattern_and_says_which(shot, tmp_path):
    result = _cli("render", shot["plate"], "--track", shot["track"], "--model", shot["model"],
                  "--out", tmp_path / "r.1001.exr")
    assert result.returncode == 2 and f"write the sequence as {tmp_path / 'r.####.exr'}" in result.stderr


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def _parts(path):
    """Every part of ``path`` as stored: name -> (channels, pixels)."""
    import OpenImageIO as oiio

    source = oiio.ImageInput.open(str(path))
    found = {}
    try:
        index = 0
        while source.seek_subimage(index, 0):
            spec = oiio.ImageSpec(source.spec())
            pixels = np.asarray(source.read_image(index, 0, 0, spec.nchannels, "float"))
            found[exr.part_name(spec)] = (list(spec.channelnames), pixels.reshape(spec.height, spec.width, -1))
            index += 1
    finally:
        source.close()
    return found


def test_render_swaps_the_plate_part_asked_for(shot, tmp_path):
    """--plate-part beauty: the part called beauty is swapped and the first RGB part passes through
    bit for bit; without it the first part with R, G, B is the one swapped. The part is stamped."""
    folder = tmp_path / "mp"
    folder.mkdir()
    for frame in (FIRST, FIRST + 1):
        pixels, names = exr.read_image(shot["plate"].replace("####", f"{frame:04d}")).pixels, ["R", "G", "B"]
        parts = []
        for name, scale in (("decoy", 0.5), ("beauty", 1.0)):
            spec = exr.make_spec(exr.read_header(shot["plate"].replace("####", f"{frame:04d}")), names)
            spec.attribute("oiio:subimagename", name)
            parts.append(exr.Part(spec, pixels=(pixels[..., :3] * np.float16(scale)).astype(np.float16)))
        exr.write_parts(folder / f"mp.{frame:04d}.exr", parts)
    plate = str(folder / "mp.####.exr")
    base = ["render", plate, "--track", shot["track"], "--model", shot["model"], "--frames", f"{FIRST}-{FIRST + 1}"]
    named = _cli(*base, "--out", tmp_path / "a" / "r.####.exr", "--plate-part", "beauty")
    assert named.returncode == 0, named.stderr
    first = _cli(*base, "--out", tmp_path / "b" / "r.####.exr")
    assert first.returncode == 0, first.stderr
    given = _parts(folder / f"mp.{FIRST:04d}.exr")
    a, b = _parts(tmp_path / "a" / f"r.{FIRST:04d}.exr"), _parts(tmp_path / "b" / f"r.{FIRST:04d}.exr")
    assert list(a)[:2] == ["decoy", "beauty"] and "facegraft_swap" in a
    assert np.array_equal(_bits(a["decoy"][1]), _bits(given["decoy"][1]))  # passed through
    assert not np.array_equal(a["beauty"][1], given["beauty"][1])  # swapped
    assert np.array_equal(_bits(b["beauty"][1]), _bits(given["beauty"][1]))
    assert not np.array_equal(b["decoy"][1], given["decoy"][1])
    params = json.loads(exr.read_header(tmp_path / "a" / f"r.{FIRST:04d}.exr").get_string_attribute("facegraft/params"))
    assert params["plate_part"] == "beauty"
    again = _cli(*base, "--out", tmp_path / "a" / "r.####.exr", "--json-progress")  # the other part now
    assert json.loads(again.stdout.splitlines()[-1])["rerendered_why"] == {"settings changed": f"{FIRST}-{FIRST + 1}"}
    missing = _cli(*base, "--out", tmp_path / "c" / "r.####.exr", "--plate-part", "diffuse")
    assert missing.returncode == 2 and "no part 'diffuse' (parts: decoy (R, G, B); beauty (R, G, B))" in missing.stderr


def test_render_reads_an_exr_still_with_its_float_pixels(shot, tmp_path):
    """A still (no frame number) renders as frame 1; outside the matte the beauty is the still's
    float pixels bit for bit, values above 1, negatives, NaN and Inf included."""
    image = exr.read_image(shot["plate"].replace("####", f"{FIRST:04d}"))
    pixels = image.pixels[..., :3].astype(np.float32)
    pixels[20, 30] = [1234.5, -0.75, np.nan]
    spec = exr.make_spec(image.spec, ["R", "G", "B"], np.float32)
    exr.write_image(tmp_path / "still.exr", pixels, spec)
    track = tmp_path / "still.fgtrack.json"
    save_track(make_track([1], aligned_transform(64, "whole_face", (64, 40))), track)
    result = _cli("render", tmp_path / "still.exr", "--track", track, "--model", shot["model"],
                  "--out", tmp_path / "o" / "r.####.exr")
    assert result.returncode == 0, result.stderr
    assert "still.exr is a still: read as a one-frame sequence (frame 1)" in result.stderr
    out = exr.read_image(tmp_path / "o" / "r.0001.exr")
    matte = out.get(["swap.A"])[..., 0]
    rgb = out.get(["R", "G", "B"])
    assert out.pixels.dtype == np.float32 and (matte == 0).sum() > 1000 and (matte > 0.5).sum() > 100
    outside = matte == 0
    assert np.array_equal(_bits(rgb[outside]), _bits(pixels[outside]))
    assert rgb[20, 30, 0] == np.float32(1234.5) and np.isnan(rgb[20, 30, 2])
