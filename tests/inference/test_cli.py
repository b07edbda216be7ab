"""The facegraft command: help that teaches, errors without tracebacks, JSON error events."""
from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "facegraft.cli.main"]


def test_help_lists_the_stages():
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("setup", "ingest", "info"):
        assert f"    {command}" in out
    assert "a shot, start to finish" in out


def test_user_error_is_one_clean_message_with_exit_code(tmp_path):
    result = subprocess.run([*CLI, "info", str(tmp_path / "nothing.####.exr")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "nothing.####.exr" in result.stderr and "no frames found" in result.stderr


def test_json_progress_reports_errors_as_events(tmp_path):
    result = subprocess.run([*CLI, "ingest", str(tmp_path / "missing.mp4"), str(tmp_path / "o.####.exr"),
                             "--json-progress"], capture_output=True, text=True)
    assert result.returncode == 2
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["event"] == "error" and event["file"].endswith("missing.mp4")


def test_json_progress_events_during_work(tmp_path):
    from facegraft.inference import assets

    result = subprocess.run([*CLI, "ingest", str(assets.footage_path("single_face.mp4")), str(tmp_path / "o.####.exr"),
                             "--frames", "1001-1003", "--json-progress"], capture_output=True, text=True, check=True)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["total"] == 3
    assert [e["frame"] for e in events if e["event"] == "progress"] == [1001, 1002, 1003]
    assert "done" in kinds
