"""`facegraft batch`: shots from YAML, checked up front, rendered by workers, resumable after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from farm_support import FACEGRAFT, facegraft
from render_models import build_identity_model

from facegraft.farm.batch import Batch, load_shots, parse_gpus
from facegraft.farm.submit import make_shot
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import exr
from facegraft.inference.io.sequence import SequencePattern


def _yaml(folder: Path, plate: str, out: str, shots: list[dict]) -> Path:
    doc = {"defaults": {"plate": plate, "model": "identity.onnx", "options": {"device": "cpu"}},
           "shots": [{"out": f"{out}/{s['name']}.####.exr", **s} for s in shots]}
    path = folder / f"{out}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


TWO_SHOTS = [{"name": "sh010", "frames": "1001-1006"}, {"name": "sh020", "frames": "1007-1012", "options": {"smooth": 0.2}}]


def _frames(folder: Path, name: str, frames: range) -> list[Path]:
    seq = SequencePattern(str(folder / f"{name}.####.exr"))
    return [Path(seq.path(f)) for f in frames]


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_load_shots_resolves_paths_and_refuses_bad_entries(shot_files: dict[str, str], tmp_path: Path) -> None:
    root = Path(shot_files["root"])
    (root / "identity.onnx").write_bytes(Path(shot_files["model"]).read_bytes())
    good = _yaml(root, "plates/sh010.####.exr", "a", [{"name": "x", "frames": "1001-1010"}])
    (shot,) = load_shots(str(good))
    assert shot.plate == shot_files["plate"] and shot.out == str(root / "a" / "x.####.exr")
    assert shot.track == str(root / "a" / "x.fgtrack.json") and shot.options == {"device": "cpu"}
    cases = [
        ([{"name": "x", "frames": "1001-1010"}, {"name": "y", "frames": "1005-1012", "out": "b/x.####.exr"}], "same output"),
        ([{"name": "x", "colour": 1}], "unknown key"),
        ([{"name": "x", "options": {"blur": 3}}], "unknown option 'blur'"),
        ([{"name": "x", "frames": "1001-1030"}], "1025-1030"),
        ([{"name": "x", "frames": "1001-1010,1009"}], "overlap"),
        ([{"name": "x", "options": {"smooth": 2}}], "between 0 and 1"),
        ([{"name": "x", "options": {"blend": "poisson"}}], "option 'blend' must be one of alpha, multiband, not 'poisson'"),
        ([{"name": "x", "options": {"erode": "lots"}}], "option 'erode' must be a number, not 'lots'"),
        ([{"name": "x", "options": {"batch": 2.5}}], "option 'batch' must be a whole number, not 2.5"),
        ([{"name": "x", "options": {"face": "biggest"}}], "option 'face' must be 'largest' or a track id (a whole number), not 'biggest'"),
    ]
    for shots, words in cases:
        bad = _yaml(root, "plates/sh010.####.exr", "b", shots)
        with pytest.raises(FaceGraftError) as err:
            load_shots(str(bad))
        assert words in err.value.describe(), err.value.describe()
    with pytest.raises(FaceGraftError, match="GPU index"):
        parse_gpus("0,x")
    assert parse_gpus("0,1") == ["0", "1"] and parse_gpus(None) == [None]


def test_dry_run_prints_the_plan_and_writes_nothing(shot_files: dict[str, str]) -> None:
    root = Path(shot_files["root"])
    (root / "identity.onnx").write_bytes(Path(shot_files["model"]).read_bytes())
    path = _yaml(root, "plates/sh010.####.exr", "dry", TWO_SHOTS)
    result = facegraft("batch", str(path), "--gpus", "0,1", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "2 shot(s) on 2 worker(s): GPU 0, GPU 1" in result.stdout
    assert result.stdout.count(" render ") == 2 and result.stdout.count(" track ") == 2
    assert not (root / "dry").exists()


@pytest.mark.slow
def test_two_shots_render_resume_after_kill_and_skip_when_done(single_face_plate: str, tmp_path: Path) -> None:
    build_identity_model(tmp_path / "identity.onnx", res=64)
    killed = _yaml(tmp_path, single_face_plate, "killed", TWO_SHOTS)
    # 1. start, kill the whole process group as soon as the first frame lands
    proc = subprocess.Popen([FACEGRAFT, "batch", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first = _frames(tmp_path / "killed", "sh010", range(1001, 1002))[0]
    deadline = time.monotonic() + 180
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not all(p.exists() for p in _frames(tmp_path / "killed", "sh020", range(1007, 1013)))
    # 2. re-run: resumes and completes both shots
    resumed = facegraft("batch", str(killed), "--json-progress", timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    # 3. uninterrupted reference, two workers (CUDA_VISIBLE_DEVICES 0 and 1; the CPU where there is no GPU)
    clean = _yaml(tmp_path, single_face_plate, "clean", TWO_SHOTS)
    fresh = facegraft("batch", str(clean), "--gpus", "0,1", "--json-progress", timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-4000:]
    devices = {e.get("device") for e in _events(fresh.stdout) if e.get("state") == "rendering"}
    assert devices == {"GPU 0", "GPU 1"}
    for name, frames in (("sh010", range(1001, 1007)), ("sh020", range(1007, 1013))):
        for a, b in zip(_frames(tmp_path / "killed", name, frames), _frames(tmp_path / "clean", name, frames)):
            assert exr.is_complete(a)
            assert a.read_bytes() == b.read_bytes(), f"{a.name} differs after resume"
    # 4. a third run skips both shots
    again = facegraft("batch", str(killed), "--json-progress", timeout=120)
    assert again.returncode == 0
    states = {e["shot"]: e["state"] for e in _events(again.stdout) if e.get("event") == "shot"}
    assert states == {"sh010": "skipped", "sh020": "skipped"}


def test_a_failing_shot_reports_its_exit_code_and_the_others_finish(shot_files: dict[str, str]) -> None:
    root = Path(shot_files["root"])
    (root / "identity.onnx").write_bytes(Path(shot_files["model"]).read_bytes())
    path = _yaml(root, "plates/sh010.####.exr", "fail",
                 [{"name": "bad", "frames": "1001-1002"}, {"name": "good", "frames": "1003-1004"}])
    Path(shot_files["plate"].replace("####", "1002")).write_bytes(b"not an EXR")  # corrupt after the check
    result = facegraft("batch", str(path), "--json-progress", timeout=300)
    events = _events(result.stdout)
    assert result.returncode == 4, result.stderr  # bad frame
    states = {e["shot"]: e["state"] for e in events if e.get("event") == "shot" and e["state"] in ("done", "failed")}
    assert states == {"bad": "failed", "good": "done"}
    errors = [e for e in events if e.get("state") == "error"]
    assert any("1002" in e["message"] for e in errors), events


def test_a_worker_error_fails_the_shot_and_the_batch(shot_files: dict[str, str], tmp_path: Path) -> None:
    root = Path(shot_files["root"])
    (root / "identity.onnx").write_bytes(Path(shot_files["model"]).read_bytes())
    path = _yaml(root, "plates/sh010.####.exr", "noexe",
                 [{"name": "a", "frames": "1001-1002"}, {"name": "b", "frames": "1003-1004"}])
    batch = Batch(load_shots(str(path)), [None], (str(tmp_path / "no-such-facegraft"),))
    assert batch.run() != 0
    assert {name: r.state for name, r in batch.results.items()} == {"a": "failed", "b": "failed"}
    assert "no-such-facegraft" in batch.results["a"].message


class _Counter:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def update(self, n: int = 1, **info: object) -> None:
        self.steps.append(n)


def test_progress_counts_the_render_done_field(shot_files: dict[str, str]) -> None:
    shot = make_shot(shot_files["plate"], shot_files["model"], shot_files["out"], frames="1001-1010")
    batch = Batch([shot], [None], ("facegraft",))
    counter = _Counter()
    for done in (6, 7, 7, 10, 11):  # one event for the 6 frames already on disk, then one per frame
        batch._child_line(shot, json.dumps({"event": "progress", "stage": "render", "done": done, "total": 10}),
                          counter)
    batch._child_line(shot, json.dumps({"event": "progress", "stage": "track", "done": 3, "total": 10}), counter)
    assert counter.steps == [6, 1, 3]


def test_a_shot_is_skipped_only_when_every_frame_is_up_to_date(tmp_path: Path) -> None:
    """Render a shot, re-run (skipped), replace its model file, re-run: rendered again, no frame of the first model left."""
    from render_fixtures import FIRST, aligned_transform, make_plate, make_track

    from facegraft.inference.models.formats import read_info
    from facegraft.inference.track.trackfile import save_track

    frames = range(FIRST, FIRST + 3)
    plate = make_plate(tmp_path / "plates", frames=frames)
    save_track(make_track(frames, aligned_transform(64, "whole_face", (64, 40))), tmp_path / "sh010.fgtrack.json")
    model = tmp_path / "models" / "face.onnx"
    model.parent.mkdir()
    build_identity_model(model, 64, shift=[0.05, 0, 0])
    path = tmp_path / "shots.yaml"
    path.write_text(yaml.safe_dump({"shots": [{"name": "sh010", "plate": plate, "model": "models/face.onnx",
                                               "out": "out/sh010.####.exr", "track": "sh010.fgtrack.json",
                                               "options": {"device": "cpu", "feather": 2}}]}))

    def run() -> dict[str, list[str]]:
        result = facegraft("batch", str(path), "--json-progress", timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        states: dict[str, list[str]] = {}
        for event in _events(result.stdout):
            if event.get("event") == "shot":
                states.setdefault(event["shot"], []).append(event["state"])
        return states

    assert run()["sh010"][-1] == "done"
    assert run()["sh010"] == ["skipped"]
    assert "complete and up to date, skipped" in facegraft("batch", str(path), "--dry-run").stdout
    build_identity_model(model, 64, shift=[0, 0.1, 0])  # a better model exported to the same path
    plan = facegraft("batch", str(path), "--dry-run").stdout
    assert "0 of 3 frames up to date; 3 to render again (3 model changed)" in plan, plan
    states = run()["sh010"]
    assert "skipped" not in states and states[-1] == "done"
    new_hash = read_info(str(model)).content_hash
    for out in _frames(tmp_path / "out", "sh010", frames):
        assert exr.read_header(out).get_string_attribute("facegraft/model_hash") == new_hash
    assert run()["sh010"] == ["skipped"]


def test_a_missing_holdout_fails_the_batch_before_any_work(shot_files: dict[str, str]) -> None:
    root = Path(shot_files["root"])
    (root / "identity.onnx").write_bytes(Path(shot_files["model"]).read_bytes())
    path = _yaml(root, "plates/sh010.####.exr", "held",
                 [{"name": "a", "frames": "1001-1004", "options": {"holdout": "roto/hands.####.exr"}}])
    result = facegraft("batch", str(path))
    assert result.returncode == 2
    assert "shot 1 ('a')" in result.stderr and "the holdout has 4 missing frame(s): 1001-1004" in result.stderr
    assert not (root / "held").exists()
