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


def _write_exr(path, width=8, height=6):
    import numpy as np

    from facegraft.inference.io import exr

    spec = exr.new_spec(width, height, ["R", "G", "B"], np.float16)
    exr.write_image(path, np.zeros((height, width, 3), np.float16), spec)


def test_info_takes_a_frame_file_of_a_sequence_and_says_so(tmp_path):
    for frame in (1001, 1002, 1004):
        _write_exr(tmp_path / f"sh010.{frame}.exr")
    result = subprocess.run([*CLI, "info", str(tmp_path / "sh010.1002.exr")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(tmp_path / "sh010.####.exr")
    assert "1001-1004 (3 on disk)" in result.stdout and "missing     1003" in result.stdout
    assert result.stderr.strip() == (f"sh010.1002.exr is a frame of the sequence {tmp_path / 'sh010.####.exr'} "
                                     "(3 frame(s) on disk, 1001-1002,1004): using the sequence")


def test_info_takes_a_still_as_a_one_frame_sequence(tmp_path):
    _write_exr(tmp_path / "still.exr", 16, 9)
    result = subprocess.run([*CLI, "info", str(tmp_path / "still.exr"), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["first"], info["last"], info["count"], info["given_as"]) == (1, 1, 1, "still")
    assert info["display_window"] == [0, 0, 16, 9] and "one-frame sequence" in info["note"]


def _two_part_frame(path, face_rgb, decoy_rgb):
    """A two-part EXR: part 'decoy' (R, G, B) first, then part 'beauty' (R, G, B, Z), both half."""
    import numpy as np

    from facegraft.inference.io import exr

    h, w = face_rgb.shape[:2]
    decoy = exr.make_spec(exr.new_spec(w, h, ["R", "G", "B"]), ["R", "G", "B"], compression="zips")
    decoy.attribute("oiio:subimagename", "decoy")
    beauty = exr.make_spec(exr.new_spec(w, h, ["R", "G", "B", "Z"]), ["R", "G", "B", "Z"],
                           formats=[np.float16] * 3 + [np.float32], compression="piz")
    beauty.attribute("oiio:subimagename", "beauty")
    z = np.full((h, w, 1), 7.25, np.float32)
    exr.write_parts(path, [exr.Part(decoy, pixels=decoy_rgb.astype(np.float16)),
                           exr.Part(beauty, pixels=np.concatenate([face_rgb, z], axis=-1).astype(np.float32))])


def test_info_lists_every_part_of_a_frame(tmp_path):
    import numpy as np

    rgb = np.zeros((6, 8, 3), np.float32)
    for frame in (1001, 1002):
        _two_part_frame(tmp_path / f"mp.{frame}.exr", rgb, rgb)
    info = json.loads(subprocess.run([*CLI, "info", str(tmp_path / "mp.####.exr"), "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    assert [(p["index"], p["name"], p["channels"], p["compression"]) for p in info["parts"]] == [
        (0, "decoy", ["R", "G", "B"], "zips"), (1, "beauty", ["R", "G", "B", "Z"], "piz")]
    assert info["parts"][1]["formats"] == ["half", "half", "half", "float"] and info["parts"][1]["data_window"] == [
        0, 0, 8, 6]
    assert info["rgb_part"] == 0 and info["rgb_problem"] == "" and info["views"] == []
    assert info["parts_text"] == "decoy (R, G, B); beauty (R, G, B, Z)"
    text = subprocess.run([*CLI, "info", str(tmp_path / "mp.1001.exr")], capture_output=True, text=True, check=True)
    assert "parts       2 (of frame 1001)" in text.stdout
    assert "0 'decoy' (the RGB tracked and swapped): R, G, B (half)" in text.stdout
    assert "1 'beauty': R, G, B (half), Z (float)" in text.stdout and "piz compression" in text.stdout


def test_info_says_why_a_stereo_plate_cannot_be_swapped(tmp_path):
    import numpy as np

    from facegraft.inference.io import exr

    parts = []
    for view in ("left", "right"):
        spec = exr.new_spec(8, 6, ["R", "G", "B"])
        spec.attribute("oiio:subimagename", view)
        spec.attribute("view", view)
        parts.append(exr.Part(spec, pixels=np.zeros((6, 8, 3), np.float16)))
    exr.write_parts(tmp_path / "st.1001.exr", parts)
    info = json.loads(subprocess.run([*CLI, "info", str(tmp_path / "st.1001.exr"), "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    assert [p["view"] for p in info["parts"]] == ["left", "right"] and info["views"] == ["left", "right"]
    assert info["rgb_part"] is None and "multi-view (stereo) plate, views left, right" in info["rgb_problem"]


def _sample_frame(plate: str, frame: int):
    import numpy as np

    from facegraft.inference.io import exr

    image = exr.read_image(plate.replace("####", f"{frame:04d}"))
    return np.asarray(image.pixels, np.float32)


def test_track_reads_a_plate_part_and_an_exr_still(single_face_plate, tmp_path, capsys):
    """`--plate-part` picks the part tracked; a still (no frame number) is read as frame 1, its float
    pixels exactly as a sequence frame's: the same detection, landmark for landmark."""
    import numpy as np

    from facegraft.cli import main as cli
    from facegraft.inference.io import exr
    from facegraft.inference.track import trackfile

    face = _sample_frame(single_face_plate, 1001)
    for frame in (1001, 1002):
        _two_part_frame(tmp_path / f"mp.{frame}.exr", _sample_frame(single_face_plate, frame), np.zeros_like(face))
    common = ["--device", "cpu", "--no-hands", "--frames", "1001-1002"]
    assert cli.main(["track", str(tmp_path / "mp.####.exr"), "--out", str(tmp_path / "first.fgtrack.json"), *common]) == 0
    assert cli.main(["track", str(tmp_path / "mp.####.exr"), "--out", str(tmp_path / "beauty.fgtrack.json"),
                     "--plate-part", "beauty", *common]) == 0
    first, beauty = (trackfile.load_track(tmp_path / f"{n}.fgtrack.json") for n in ("first", "beauty"))
    assert [first.face(n) for n in (1001, 1002)] == [None, None]  # the first RGB part is black
    assert all(beauty.face(n) is not None for n in (1001, 1002))
    assert cli.main(["track", str(tmp_path / "mp.####.exr"), "--out", str(tmp_path / "x.fgtrack.json"),
                     "--plate-part", "depth", *common]) == 2
    assert "no part 'depth' (parts: decoy (R, G, B); beauty (R, G, B, Z))" in capsys.readouterr().err

    bright = face * 3.0  # scene-linear values far above 1: an 8-bit reader would clip them
    exr.write_image(tmp_path / "still.exr", bright, exr.new_spec(face.shape[1], face.shape[0], ["R", "G", "B"],
                                                                np.float32))
    exr.write_image(tmp_path / "seq.1001.exr", bright, exr.new_spec(face.shape[1], face.shape[0], ["R", "G", "B"],
                                                                   np.float32))
    capsys.readouterr()
    assert cli.main(["track", str(tmp_path / "still.exr"), "--out", str(tmp_path / "still.fgtrack.json"),
                     "--device", "cpu", "--no-hands"]) == 0
    assert "still.exr is a still: read as a one-frame sequence (frame 1)" in capsys.readouterr().err
    assert cli.main(["track", str(tmp_path / "seq.####.exr"), "--out", str(tmp_path / "seq.fgtrack.json"),
                     "--device", "cpu", "--no-hands"]) == 0
    still, seq = (trackfile.load_track(tmp_path / f"{n}.fgtrack.json") for n in ("still", "seq"))
    assert still.frame_numbers == [1] and still.face(1) is not None
    np.testing.assert_array_equal(still.face(1).landmarks_raw, seq.face(1001).landmarks_raw)
