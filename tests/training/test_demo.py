"""The demo's own decisions: which way to swap, and how its figures meet the targets.

The whole demo (ingest, track, train, render, report) is `make demo`; it takes minutes, so the
tests check the parts it decides with, on small facesets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegraft.training.demo import DEMO_TRAINING, TARGETS, choose_direction, judge, main, target_lines
from facegraft.training.faceset import FacesetWriter
from facegraft.training.loop import TrainConfig

RES = 16


def _faceset(folder: Path, identity: str, looks: list[tuple[float, float]]) -> Path:
    """A faceset whose faces have the given (eye openness, mouth openness), head straight."""
    with FacesetWriter(folder, identity=identity, resolution=RES, coverage="whole_face", colorspace="ACEScct",
                       min_motion=0.0) as writer:
        for i, (eyes, mouth) in enumerate(looks):
            record = {"eye_left": eyes, "eye_right": eyes, "mouth": mouth, "yaw": 0.0, "pitch": 0.0, "roll": 0.0}
            mattes = {n: np.ones((RES, RES), np.float32) for n in ("face", "left_eye", "right_eye", "mouth")}
            writer.add(np.full((RES, RES, 3), 0.4, np.float32), mattes, np.zeros((478, 2), np.float32) + i,
                       source="clip", frame=i, expression=record)
    return folder


def test_the_source_is_the_footage_that_covers_the_other(tmp_path: Path) -> None:
    """An actor who blinks, talks and laughs covers one who only looks on; not the other way round."""
    lively = [(eyes, mouth) for eyes in (0.05, 0.15, 0.3) for mouth in (0.0, 0.2, 0.4)]
    still = [(0.3, 0.0), (0.3, 0.02), (0.05, 0.0)]  # open eyes, mouth shut, one blink
    facesets = {"still": _faceset(tmp_path / "still", "still", still),
                "lively": _faceset(tmp_path / "lively", "lively", lively)}
    source, target, coverage = choose_direction(facesets, tmp_path / "coverage")
    assert (source, target) == ("lively", "still")
    assert coverage["lively_onto_still"]["covered"] == 3 and coverage["still_onto_lively"]["covered"] < 9
    assert (tmp_path / "coverage" / "lively_onto_still" / "coverage.json").is_file()


def test_the_targets_are_judged_from_the_figures() -> None:
    figures = {"expression_nme": 0.05, "eye_correlation": 0.71, "identity_margin": None, "minutes": 11.5}
    judged = judge(figures)
    assert set(judged) == set(TARGETS)
    assert [judged[k]["met"] for k in ("expression_nme", "eye_correlation", "identity_margin", "minutes")] == \
        [False, True, None, True]
    lines = "\n".join(target_lines({"targets": judged}))
    assert "NOT met" in lines and "not measured" in lines


def test_the_demo_trains_with_options_the_loop_knows() -> None:
    TrainConfig(facesets=[], out="", **DEMO_TRAINING)  # every demo option is a training setting
    assert DEMO_TRAINING["expression"] > 0 and DEMO_TRAINING["balance"] > 0


def test_the_demo_refuses_a_frame_count_the_clips_cannot_give(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--frames", "500", "--out", "unused"])
    assert "--frames must be 2 to 72" in capsys.readouterr().err
