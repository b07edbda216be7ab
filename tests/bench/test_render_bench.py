"""bench/render.py: the 4-conv model and the exported comb network render rows with every stage
alone, the pipeline efficiency and the peak memory; the memory it reports is the row's own."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _peak_rss():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_bench import PeakRss

    return PeakRss


def test_peak_memory_is_measured_per_block() -> None:
    peak_rss = _peak_rss()
    with peak_rss() as big:
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        del block
    with peak_rss() as small:
        np.ones(10)
    if not big.exact:
        pytest.skip("this kernel cannot reset the memory high-water mark (/proc/self/clear_refs)")
    assert big.peak >= small.peak + 250, (big.peak, small.peak)
    assert small.exact and small.text() == f"{small.peak:.0f}"


@pytest.mark.slow
def test_the_real_network_rows_report_every_stage_and_the_efficiency(tmp_path: Path) -> None:
    env = {**os.environ, "FACEGRAFT_HOME": os.environ.get("FACEGRAFT_HOME", str(ROOT / ".cache" / "facegraft"))}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "render.py"), "--sizes", "320x180", "--compressions",
                           "zip", "--frames", "2", "--net-frames", "2", "--net-res", "64", "--net-width", "8"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=str(tmp_path))
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:] + out
    assert re.search(r"FaceGraft render benchmark  \d{4}-\d\d-\d\d \d\d:\d\d  .*load average [\d.]+ [\d.]+ [\d.]+", out)
    assert re.search(r"^device: \d+ CPU cores .*onnxruntime [\d.]+", out, re.M)
    assert "comb network exported at 64 px, width 8, random weights" in out
    rows = {}
    for line in out.splitlines():
        tokens = line.split()
        if line.startswith("320x180 zip"):
            rows[(tokens[2] + " " + tokens[3], tokens[4])] = tokens[5:]
    assert set(rows) == {("conv4 256", "all"), ("conv4 256", "none"), ("comb 64", "all")}, out
    for key, values in rows.items():
        read, write, floor, model, render, per_floor, eff, eff_rw = (float(v) for v in values[:8])
        assert min(read, write, floor, model, render) > 0, key
        assert per_floor == pytest.approx(render / floor, abs=0.011)
        assert eff == pytest.approx(render / min(floor, model), abs=0.011), key
        assert eff_rw == pytest.approx(render / min(read, write, model), abs=0.011), key
        rss, gpu = values[10], values[11]
        assert re.fullmatch(r"\d+\*?", rss) and int(rss.rstrip("*")) > 50 and gpu == "-", (key, rss, gpu)
        assert re.search(r"read=[\d.]+ crop=[\d.]+ model=[\d.]+ paste=[\d.]+ write=[\d.]+ wall=[\d.]+", " ".join(values))
    assert "-- comb 64: model on cpu fp32, batch 2, 2 frames a row" in out
    assert not list(tmp_path.iterdir())  # its plates and outputs lived in a temporary folder, now removed
