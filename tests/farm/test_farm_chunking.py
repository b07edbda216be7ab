"""The one chunking rule, checked against itself and against pyoutline's own chunk maths."""
from __future__ import annotations

import outline
import pytest
from outline.modules.shell import Shell

from facegraft.farm.chunking import chunk_frames, parse_range, uniform_step
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io.sequence import format_frames

RANGES = ["1001-1240", "1001-1024", "1001-1100x3", "1,5,10-20", "1001", "7-9"]


@pytest.mark.parametrize("spec", RANGES)
@pytest.mark.parametrize("size", [1, 4, 10, 1000])
def test_chunks_cover_every_frame_once_in_order(spec: str, size: int) -> None:
    frames = [int(f) for f in parse_range(spec)]
    chunks = chunk_frames(frames, size)
    flat = [int(f) for c in chunks for f in c]
    assert flat == sorted(frames)
    assert all(len(c) == size for c in chunks[:-1])
    assert 1 <= len(chunks[-1]) <= size


def test_chunk_text_keeps_steps_and_gaps() -> None:
    assert [str(c) for c in chunk_frames(parse_range("1001-1100x2"), 10)][:2] == ["1001-1019x2", "1021-1039x2"]
    assert [str(c) for c in chunk_frames(parse_range("1001-1024"), 10)] == ["1001-1010", "1011-1020", "1021-1024"]
    assert [str(c) for c in chunk_frames(parse_range("1,5,10-20"), 4)] == ["1,5,10-11", "12-15", "16-19", "20"]


@pytest.mark.parametrize("spec", RANGES)
@pytest.mark.parametrize("size", [1, 3, 10])
def test_chunks_match_opencue_layer_chunking(spec: str, size: int) -> None:
    """Cuebot runs a layer with range+chunk as pyoutline computes it; our chunks must be the same."""
    text = format_frames(parse_range(spec))
    ol = outline.Outline("chunks", frame_range=text, serialize=False, current=False, show="s", shot="s", user="u")
    layer = Shell("render", command=["true"], range=text, chunk=size)
    ol.add_layer(layer)
    for chunk in chunk_frames(parse_range(spec), size):
        theirs = [int(f) for f in layer.get_local_frame_set(int(chunk[0]))]
        assert theirs == [int(f) for f in chunk]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("1001-1010,1005-1020", ["overlap", "1005-1010"]),
        ("1001-1010,1010", ["overlap", "1010"]),
        ("", ["empty"]),
        ("1001-10x", ["not a frame range"]),
        ("banana", ["not a frame range"]),
        ("1001,,1002", ["empty part"]),
    ],
)
def test_bad_ranges_are_refused_with_the_reason(spec: str, words: list[str]) -> None:
    with pytest.raises(FaceGraftError) as err:
        parse_range(spec)
    for word in words:
        assert word in err.value.describe()


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(FaceGraftError, match="chunk size"):
        chunk_frames([1, 2, 3], 0)


def test_uniform_step() -> None:
    assert uniform_step([int(f) for f in parse_range("1001-1100x4")]) == 4
    assert uniform_step([5]) == 1
    assert uniform_step([1, 2, 3]) == 1
    assert uniform_step([1, 2, 4]) is None
