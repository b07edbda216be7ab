"""bench/gpu.sh --cpu: the GPU benchmark's every row, scaled down, runs end to end and prints its table."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_cpu_variant_runs_every_row_and_prints_one_table(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "FACEGRAFT_HOME": os.environ.get(
        "FACEGRAFT_HOME", str(ROOT / ".cache" / "facegraft"))}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--cpu", "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, env=env, timeout=600)
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out
    assert re.search(r"FaceGraft GPU benchmark  \d{4}-\d\d-\d\d \d\d:\d\d  mode: cpu", out)
    assert re.search(r"^device: \d+ CPU cores .*onnxruntime [\d.]+", out, re.M)
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    for name in ("gpu tests", "floor (oiiotool read+write)", "model alone cpu fp32", "render cpu fp32",
                 "model alone cpu fp16", "render cpu fp16", "train 32 px", "train 64 px"):
        assert name in rows, f"no '{name}' row in:\n{out}"
    assert re.search(r"\d+ (skipped|passed)", rows["gpu tests"]), rows["gpu tests"]
    fps = {name: float(re.search(r"  ([\d.]+) fps", rows[name]).group(1))  # type: ignore[union-attr]
           for name in rows if name.startswith(("floor", "model alone", "render"))}
    assert all(v > 0 for v in fps.values()), fps
    for name in ("render cpu fp32", "render cpu fp16"):
        efficiency = float(re.search(r"eff ([\d.]+)", rows[name]).group(1))  # type: ignore[union-attr]
        slowest = min(fps["floor (oiiotool read+write)"], fps[name.replace("render", "model alone")])
        assert efficiency == pytest.approx(fps[name] / slowest, abs=0.02)
        assert re.search(r"  \d+\s+-\s+slowest alone", rows[name]), rows[name]  # peak RSS, no GPU memory
    for name in ("train 32 px", "train 64 px"):
        assert re.search(r"[\d.]+ samples/s .* \d+ .*[\d.]+ [GT]FLOP/s; 2 steps of 4 faces; loader waited", rows[name]), rows[name]
    assert "failed" not in out and "timed out" not in out
    assert "bf16 peak assumed: H200 989" in out
    assert not (tmp_path / "work" / "out").exists() or not any((tmp_path / "work" / "out").rglob("*.exr"))


def _bench():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_bench

    return gpu_bench


def test_plates_are_synthetic_where_the_footage_is_not_prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from facegraft.inference.io import exr

    gpu_bench = _bench()
    monkeypatch.setenv("FACEGRAFT_HOME", str(tmp_path / "empty_home"))
    scale = replace(gpu_bench.CPU, size=(64, 36), frames=2)
    pattern, origin = gpu_bench.make_plates(tmp_path / "plates", scale)
    assert origin.startswith("synthetic")
    first, second = (exr.read_image(pattern % f) for f in (1001, 1002))
    assert first.pixels.shape == (36, 64, 3) and not (first.pixels == second.pixels).all()


def test_the_peak_is_known_for_h100_and_h200_boards() -> None:
    gpu_bench = _bench()
    assert gpu_bench.bf16_peak("NVIDIA H200") == gpu_bench.bf16_peak("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_bench.bf16_peak("NVIDIA H100 PCIe") == 756.0 and gpu_bench.bf16_peak("NVIDIA H100 NVL") == 835.0
    assert gpu_bench.bf16_peak("Tesla T4") is None
    assert "tests/inference/test_providers.py" in gpu_bench.gpu_test_files()
