"""`facegraft render` and `facegraft model-info` as a user runs them (real subprocesses)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from render_fixtures import FIRST, aligned_transform, make_plate, make_track
from render_models import build_conv_model, build_identity_model

from facegraft.inference.io import exr, frames
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


@pytest.mark.slow
def test_killed_render_resumes_cleanly(shot, tmp_path):
    model = build_conv_model(tmp_path / "heavy.onnx", res=64, layers=6, width=48)
    out = tmp_path / "out" / "r.####.exr"
    args = [*FACEGRAFT, "render", shot["plate"], "--track", shot["track"], "--model", model, "--out", out,
            "--batch", "1", "--json-progress"]
    process = subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    assert process.stdout is not None
    deadline = time.time() + 60
    for line in process.stdout:
        if json.loads(line)["event"] == "progress" or time.time() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    written = sorted((tmp_path / "out").iterdir())
    finished = [p for p in written if not p.name.startswith(".")]
    assert 1 <= len(finished) < 10
    for path in finished:  # whatever exists is a whole frame
        assert exr.is_complete(path) and exr.read_image(path).pixels.shape[-1] == 13
    result = subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["existing"] and summary["rendered"]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"r.{f}.exr" for f in range(FIRST, FIRST + 10)]  # no temporary files left
    clean = tmp_path / "clean" / "r.####.exr"
    clean_args = [*FACEGRAFT, "render", shot["plate"], "--track", shot["track"], "--model", model, "--out", clean]
    subprocess.run(list(map(str, clean_args)), check=True, capture_output=True, timeout=120)
    for f in range(FIRST, FIRST + 10):
        assert (tmp_path / "out" / f"r.{f}.exr").read_bytes() == (tmp_path / "clean" / f"r.{f}.exr").read_bytes()


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
    for name in ("erode", "feather", "color_match", "blend", "holdout_channel", "plate_colorspace", "ocio_config"):
        assert stamps["new"][name] == default(name), name
    assert (stamps["new"]["erode"], stamps["new"]["feather"], stamps["new"]["color_match"]) == (4, 12, "rct")
    assert (stamps["old"]["erode"], stamps["old"]["feather"], stamps["old"]["color_match"]) == (0, 0, "none")
    new, before = (exr.read_image(tmp_path / f"{name}.{FIRST}.exr").get(["swap.A"])[..., 0] for name in ("new", "old"))
    # the default matte is eroded and feathered: softer (fewer solid pixels), and no larger overall
    solid_new, solid_before = (new > 0.999).sum(), (before > 0.999).sum()
    assert solid_before > 100 and solid_new < solid_before / 2, (solid_new, solid_before)
    assert 0 < new.sum() < before.sum() and new.max() > 0.5
