"""`facegraft track`: the track file, the summary, JSON progress and user errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from facegraft.cli import main as cli
from facegraft.inference import assets
from facegraft.inference.track import trackfile


def test_track_writes_a_track_file_and_a_summary(single_face_plate: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shot.fgtrack.json"
    code = cli.main(["track", single_face_plate, "--out", str(out), "--frames", "1001-1006", "--smooth", "0.3",
                     "--device", "cpu", "--tiled-every", "2"])
    assert code == 0
    shot = trackfile.load_track(out)
    assert shot.frame_numbers == list(range(1001, 1007)) and shot.target == 1
    assert shot.params["smooth"] == 0.3 and shot.params["face"] == "largest"
    assert shot.params["redetect"] == 12 and shot.params["tiled_every"] == 2
    assert all(shot.face(n) is not None for n in shot.frame_numbers)
    err = capsys.readouterr().err
    assert "6 frame(s), 6 face(s) in 1 track(s); target track: 1" in err
    assert "no-face frames: none" in err


def test_json_progress_lines(single_face_plate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shot.fgtrack.json"
    assert cli.main(["track", single_face_plate, "--out", str(out), "--frames", "1001-1003", "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and events[0]["stage"] == "track" and events[0]["total"] == 3
    assert [e["frame"] for e in events if e["event"] == "progress"] == [1001, 1002, 1003]
    assert "done" in kinds
    result = next(e for e in events if e["event"] == "result")
    assert result["target"] == 1 and result["no_face"] == [] and result["track_file"] == str(out)


def test_video_plate(tmp_path: Path) -> None:
    out = tmp_path / "clip.fgtrack.json"
    assert cli.main(["track", str(assets.footage_path("single_face.mp4")), "--out", str(out), "--frames", "1-4"]) == 0
    shot = trackfile.load_track(out)
    assert shot.frame_numbers == [1, 2, 3, 4] and shot.plate["video_start"] == 1


def test_unknown_face_id_is_a_user_error(single_face_plate: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shot.fgtrack.json"
    code = cli.main(["track", single_face_plate, "--out", str(out), "--frames", "1001-1002", "--face", "5"])
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "no face track 5" in err and "tracks found: 1" in err


def test_bad_arguments(single_face_plate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["track", single_face_plate, "--out", str(tmp_path / "a.fgtrack.json"), "--smooth", "2"])
    assert info.value.code == 2
    assert "--smooth must be between 0 and 1" in capsys.readouterr().err
    assert cli.main(["track", str(tmp_path / "none.####.exr"), "--out", str(tmp_path / "b.fgtrack.json")]) == 2
    assert cli.main(["track", single_face_plate, "--out", str(tmp_path / "c.txt")]) == 2


def test_console_entry_point(single_face_plate: str, tmp_path: Path) -> None:
    out = tmp_path / "shot.fgtrack.json"
    exe = Path(sys.executable).with_name("facegraft")
    result = subprocess.run([str(exe), "track", single_face_plate, "--out", str(out), "--frames", "1001-1002"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.is_file() and "wrote" in result.stderr


@pytest.mark.parametrize("argv", [
    ["track", "p.####.exr", "--out", "a.fgtrack.json"],
    ["extract", "p.####.exr", "--identity", "x", "--out", "fs"],
    ["farm", "submit", "p.####.exr", "--model", "m.onnx", "--out", "r.####.exr"],
])
def test_smooth_is_checked_by_every_command_that_tracks(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from facegraft.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args([*argv, "--smooth", "0.25"]).smooth == 0.25
    for bad in ("1.5", "-0.1", "soft"):
        with pytest.raises(SystemExit):
            parser.parse_args([*argv, "--smooth", bad])
        assert "--smooth must be" in capsys.readouterr().err
