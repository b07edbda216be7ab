"""Jobs run for real with `openjd run`: the real `facegraft track` and `facegraft render`
on the sample plate, an identity model. Chunked renders must be byte-identical to one process,
and a chunk killed mid-frame must complete on retry with every frame valid."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from farm_support import facegraft, source_fingerprint
from render_models import build_identity_model

from facegraft.farm import openjd
from facegraft.farm.job import default_executable
from facegraft.farm.submit import make_job, make_shot
from facegraft.inference.io import exr
from facegraft.inference.io.sequence import SequencePattern

FRAMES = range(1001, 1013)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chunked(single_face_plate: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The shot submitted with --engine openjd (run here by `openjd run`) in chunks of 5."""
    root = tmp_path_factory.mktemp("openjd_run")
    code = source_fingerprint()
    model = str(root / "identity.onnx")
    build_identity_model(model, res=64)
    out = str(root / "chunked" / "sh010_swap.####.exr")
    result = facegraft("farm", "submit", single_face_plate, "--model", model, "--out", out, "--frames", "1001-1012",
                       "--chunk", "5", "--engine", "openjd", "--job-dir", str(root / "job"), "--device", "cpu",
                       "--no-gpu", timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    track = str(root / "chunked" / "sh010_swap.fgtrack.json")
    single = str(root / "single" / "sh010_swap.####.exr")
    one = facegraft("render", single_face_plate, "--track", track, "--model", model, "--out", single,
                    "--frames", "1001-1012", "--device", "cpu", timeout=600)
    assert one.returncode == 0, one.stderr[-4000:]
    return {"root": str(root), "plate": single_face_plate, "model": model, "out": out, "track": track,
            "single": single, "log": result.stderr, "code": code}


def test_openjd_ran_track_then_three_chunks(chunked: dict[str, str]) -> None:
    log = chunked["log"]
    # facegraft's JSON progress events show in the session log: the whole track runs before any render
    last_track = log.rindex('"stage": "track"')
    assert last_track < log.index('"stage": "render"')
    for chunk in ("1001-1005", "1006-1010", "1011-1012"):
        assert f"Chunk(STRING) = {chunk}" in log
    assert json.loads(Path(chunked["track"]).read_text())  # the track step wrote the shot track


def _same_code(chunked: dict[str, str]) -> None:
    """Frames rendered by processes started minutes apart can only match when the code did not change between them."""
    if source_fingerprint() != chunked["code"]:
        pytest.fail("FaceGraft's sources (inference/, farm/) changed while this module ran; its renders "
                    "came from different code and cannot be compared: run the module again")


def test_chunked_render_is_byte_identical_to_one_process(chunked: dict[str, str]) -> None:
    a, b = SequencePattern(chunked["out"]), SequencePattern(chunked["single"])
    for frame in FRAMES:
        if Path(a.path(frame)).read_bytes() != Path(b.path(frame)).read_bytes():
            _same_code(chunked)
            raise AssertionError(f"frame {frame} differs: "
                                 f"{_difference(exr.read_image(a.path(frame)), exr.read_image(b.path(frame)))}")


def test_chunk_killed_mid_frame_completes_on_retry(chunked: dict[str, str]) -> None:
    root = Path(chunked["root"])
    out = str(root / "killed" / "sh010_swap.####.exr")
    shot = make_shot(chunked["plate"], chunked["model"], out, frames="1001-1012", track=chunked["track"],
                     options={"device": "cpu"})
    job = make_job(shot, chunk=12, executable=default_executable(), gpu=False)
    job_dir = root / "killed_job"
    from facegraft.farm.submit import write_files

    write_files(openjd.files(job, job_dir), job_dir)
    (task,) = job.tasks()[1:]
    folder = Path(out).parent
    proc = subprocess.Popen(list(task.argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        # wait until a frame is being written (a temporary file), or at worst until one exists
        while time.monotonic() < deadline and proc.poll() is None:
            names = os.listdir(folder) if folder.is_dir() else []
            if any(n.endswith(".tmp.exr") for n in names) or len([n for n in names if n.endswith(".exr")]) >= 3:
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the render finished before it could be killed"
    seq = SequencePattern(out)
    done_before = [f for f in FRAMES if exr.is_complete(seq.path(f))]
    assert len(done_before) < len(FRAMES)
    retry = subprocess.run(openjd.run_command(job_dir, tasks=[str(task.frames)], dependencies=False),
                           capture_output=True, text=True, timeout=600)
    assert retry.returncode == 0, retry.stdout[-4000:]
    single = SequencePattern(chunked["single"])
    for frame in FRAMES:
        image = exr.read_image(seq.path(frame))
        assert image.pixels.size
        if Path(seq.path(frame)).read_bytes() != Path(single.path(frame)).read_bytes():
            _same_code(chunked)
            raise AssertionError(f"frame {frame} differs after the retry (frames complete before it: "
                                 f"{done_before}): {_difference(image, exr.read_image(single.path(frame)))}")


def _difference(a: exr.Image, b: exr.Image) -> str:
    """Where two frames differ: pixel count and first positions, and header attributes."""
    same = (a.pixels == b.pixels) | (np.isnan(a.pixels) & np.isnan(b.pixels))
    attrs_a, attrs_b = exr.attributes(a.spec), exr.attributes(b.spec)
    attrs = {k: (v, attrs_b.get(k)) for k, v in attrs_a.items() if attrs_b.get(k) != v}
    return f"{int((~same).sum())} values, first at {np.argwhere(~same)[:3].tolist()}; attributes {attrs}"
