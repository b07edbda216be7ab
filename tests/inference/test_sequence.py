"""Sequence patterns, frame ranges and paths as users give them, on real files."""
from __future__ import annotations

import pytest

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.sequence import (
    STILL_FRAME,
    Resolved,
    SequencePattern,
    format_frames,
    parse_frames,
    resolve_frames,
    resolve_input,
)


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


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_a_frame_file_means_its_sequence(tmp_path):
    _touch(tmp_path, "sh010.1001.exr", "sh010.1002.exr", "sh010.1004.exr", "sh010.1001.png")
    resolved = resolve_input(str(tmp_path / "sh010.1002.exr"))
    assert resolved.kind == "frame" and resolved.text == str(tmp_path / "sh010.####.exr")
    assert resolved.sequence is not None and resolved.sequence.on_disk() == [1001, 1002, 1004]
    assert resolved.note == (f"sh010.1002.exr is a frame of the sequence {tmp_path / 'sh010.####.exr'} "
                             "(3 frame(s) on disk, 1001-1002,1004): using the sequence")
    assert resolve_frames(resolved.sequence, "1001-1002") == [1001, 1002]


@pytest.mark.parametrize(("names", "given", "pattern", "frames"), [
    (["p_0998.exr", "p_0999.exr", "p_1000.exr"], "p_1000.exr", "p_####.exr", [998, 999, 1000]),  # padding from 0998
    (["p.9.exr", "p.10.exr", "p.11.exr"], "p.10.exr", "p.#.exr", [9, 10, 11]),  # unpadded
    (["p.9999.exr", "p.10000.exr"], "p.10000.exr", "p.####.exr", [9999, 10000]),  # past the padding
    (["shot12_v003.0042.dpx"], "shot12_v003.0042.dpx", "shot12_v003.####.dpx", [42]),  # one frame on disk
])
def test_the_padding_comes_from_the_files_on_disk(tmp_path, names, given, pattern, frames):
    _touch(tmp_path, *names)
    resolved = resolve_input(str(tmp_path / given))
    assert resolved.text == str(tmp_path / pattern) and resolved.sequence.on_disk() == frames


def test_a_still_is_a_one_frame_sequence(tmp_path):
    _touch(tmp_path, "still.exr")
    resolved = resolve_input(str(tmp_path / "still.exr"))
    assert resolved.kind == "still" and resolved.text == str(tmp_path / "still.exr")
    seq = resolved.sequence
    assert seq is not None and seq.on_disk() == [STILL_FRAME] and seq.path(STILL_FRAME) == str(tmp_path / "still.exr")
    assert resolve_frames(seq) == [STILL_FRAME]
    assert resolved.note == f"still.exr is a still: read as a one-frame sequence (frame {STILL_FRAME})"


def test_patterns_videos_and_missing_files(tmp_path):
    assert resolve_input(str(tmp_path / "p.####.exr")) == Resolved(str(tmp_path / "p.####.exr"),
                                                                  SequencePattern(str(tmp_path / "p.####.exr")), "pattern")
    assert resolve_input(str(tmp_path / "clip.mov"), keep={".mov"}).kind == "other"
    with pytest.raises(FaceGraftError) as err:
        resolve_input(str(tmp_path / "sh010.1001.exr"))
    assert "no such file" in err.value.message and err.value.hint == f"for the sequence, write {tmp_path / 'sh010.####.exr'}"


def test_a_frame_file_where_a_pattern_is_needed_is_refused_with_the_pattern_to_write():
    with pytest.raises(FaceGraftError) as err:
        SequencePattern("renders/sh010.1001.exr")
    assert err.value.hint == "write the sequence as renders/sh010.####.exr"
