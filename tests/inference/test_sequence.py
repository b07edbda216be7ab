"""Sequence patterns and frame ranges on real files."""
from __future__ import annotations

import pytest

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.sequence import SequencePattern, format_frames, parse_frames, resolve_frames


@pytest.mark.parametrize("pattern", ["plate.####.exr", "plate.%04d.exr", "plate.@@@@.exr"])
def test_patterns_name_the_same_files(tmp_path, pattern):
    for frame in (1001, 1002, 1004):
        (tmp_path / f"plate.{frame:04d}.exr").write_bytes(b"x")
    (tmp_path / "plate.10003.exr").write_bytes(b"x")  # longer than the padding: a real frame
    (tmp_path / "plate.101.exr").write_bytes(b"x")  # shorter than the padding: not this sequence
    seq = SequencePattern(str(tmp_path / pattern))
    assert seq.path(1001) == str(tmp_path / "plate.1001.exr")
    assert seq.path(10003) == str(tmp_path / "plate.10003.exr")
    assert seq.on_disk() == [1001, 1002, 1004, 10003]


def test_hash_is_one_digit_each(tmp_path):
    seq = SequencePattern(str(tmp_path / "p.##.exr"))
    assert seq.path(7) == str(tmp_path / "p.07.exr")


def test_ranges():
    assert parse_frames("1001-1005") == [1001, 1002, 1003, 1004, 1005]
    assert parse_frames("1001-1010x3") == [1001, 1004, 1007, 1010]
    assert parse_frames("1001,1005,1010-1012") == [1001, 1005, 1010, 1011, 1012]
    assert format_frames([1001, 1002, 1003, 1010]) == "1001-1003,1010"
    with pytest.raises(FaceGraftError, match="not a frame range"):
        parse_frames("ten to twenty")


def test_missing_frames_are_named(tmp_path):
    for frame in (1001, 1002, 1005):
        (tmp_path / f"p.{frame:04d}.exr").write_bytes(b"x")
    seq = SequencePattern(str(tmp_path / "p.####.exr"))
    with pytest.raises(FaceGraftError) as err:
        resolve_frames(seq)
    assert "1003-1004" in str(err.value)
    assert resolve_frames(seq, "1001-1002") == [1001, 1002]


def test_empty_folder_and_no_match(tmp_path):
    with pytest.raises(FaceGraftError, match="no frames found"):
        resolve_frames(SequencePattern(str(tmp_path / "p.####.exr")))
    with pytest.raises(FaceGraftError, match="folder does not exist"):
        resolve_frames(SequencePattern(str(tmp_path / "nowhere" / "p.####.exr")))


def test_pattern_without_frame_token():
    with pytest.raises(FaceGraftError, match="not an image sequence pattern"):
        SequencePattern("plate.exr")
