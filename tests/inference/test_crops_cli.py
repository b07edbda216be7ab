"""`facegraft crops`: aligned crop EXRs with the face matte, and the contact sheet."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facegraft.cli import main as cli
from facegraft.inference.io import exr
from facegraft.inference.track import align, trackfile


@pytest.fixture(scope="module")
def track_file(single_face_plate: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("crops_track") / "shot.fgtrack.json"
    assert cli.main(["track", single_face_plate, "--out", str(out), "--frames", "1001-1006"]) == 0
    return str(out)


def test_crops_and_contact_sheet(track_file: str, single_face_plate: str, tmp_path: Path) -> None:
    out = tmp_path / "crops"
    assert cli.main(["crops", track_file, single_face_plate, "--out", str(out), "--res", "128"]) == 0
    files = sorted(p.name for p in out.glob("crop.*.exr"))
    assert files == [f"crop.{n}.exr" for n in range(1001, 1007)]
    image = exr.read_image(out / "crop.1003.exr")
    assert image.pixels.dtype == np.float16 and image.pixels.shape == (128, 128, 4)
    rgb, matte = image.get(["R", "G", "B"]), image.get(["A"])[..., 0]
    # the crop is the plate pixels through the track's transform (plate colour space, not display)
    track = trackfile.load_track(track_file)
    plate = exr.read_image(single_face_plate.replace("####", "1003")).rgb()
    expected = align.crop(plate, track.face(1003).transform, 128, "whole_face")
    assert np.abs(rgb - expected).max() < 2e-3 * max(1.0, float(np.abs(expected).max()))
    # the matte covers the middle of the face and not the corners
    assert matte[64, 64] > 0.99 and matte[2, 2] == 0.0 and 0.25 < matte.mean() < 0.85
    assert exr.attributes(image.spec, "facegraft/")["facegraft/track"] == 1
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] > 6 * 320
    # landmarks are drawn in the target colour (green) on the thumbnails
    green = (sheet[..., 1] > 180) & (sheet[..., 0] < 120) & (sheet[..., 2] < 120)
    assert green.sum() > 500


def test_flagged_frames_are_framed_red(track_file: str, single_face_plate: str, tmp_path: Path) -> None:
    track = trackfile.load_track(track_file)
    track.frames[1002].faces = []
    track.frames[1002].flags = ["no_face"]
    edited = tmp_path / "edited.fgtrack.json"
    trackfile.save_track(track, edited)
    out = tmp_path / "crops"
    assert cli.main(["crops", str(edited), single_face_plate, "--out", str(out), "--res", "64",
                     "--frames", "1001-1003"]) == 0
    assert not (out / "crop.1002.exr").exists() and (out / "crop.1003.exr").exists()
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    cell_w = 320 + 4
    red = lambda x0: sheet[4:30, x0 + 4:x0 + 8]  # noqa: E731  top-left corner of a cell's border
    is_red = lambda px: bool(((px[..., 2] > 180) & (px[..., 1] < 90)).mean() > 0.5)  # noqa: E731
    assert is_red(red(cell_w)) and not is_red(red(0))


def test_unknown_track_id(track_file: str, single_face_plate: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crops", track_file, single_face_plate, "--out", str(tmp_path), "--face", "9"]) == 2
    assert "no track 9" in capsys.readouterr().err
