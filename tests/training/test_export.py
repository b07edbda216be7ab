"""Export: ONNX parity with torch, the model-file contract, fp16, and rendering a frame."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import exr
from facegraft.inference.io.frames import open_source
from facegraft.inference.models import formats
from facegraft.inference.models.face_model import load as load_face_model
from facegraft.inference.models.runtime import create_session
from facegraft.inference.render.renderer import render_shot
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track.trackfile import load_track
from facegraft.training.export import export_model


def test_export_matches_torch_and_the_contract(tiny_run: Path, tmp_path: Path) -> None:
    result = export_model(tiny_run, source="man", target="woman", out=tmp_path / "m.onnx")
    assert result.max_abs_diff < 1e-4
    info = formats.read_info(result.path)
    assert (info.source, info.target, info.resolution, info.coverage) == ("man", "woman", 32, "whole_face")
    assert info.colorspace == "ACEScct" and info.input_dtype == "float32" and info.batch is None
    assert info.provenance["steps"] == 8 and info.provenance["precision"] == "fp32"
    session = create_session(result.path, device="cpu")
    swap, mask = session.run(None, {"face": np.full((5, 3, 32, 32), 0.4, np.float32)})  # any batch size
    assert swap.shape == (5, 3, 32, 32) and mask.shape == (5, 1, 32, 32)


def test_fp16_export_runs_on_the_cpu_with_float32_io(tiny_run: Path, tmp_path: Path) -> None:
    full = export_model(tiny_run, source="man", target="woman", out=tmp_path / "m32.onnx")
    half = export_model(tiny_run, source="man", target="woman", out=tmp_path / "m16.onnx", fp16=True)
    assert half.info.input_dtype == "float32" and half.info.provenance["precision"] == "fp16"
    assert half.max_abs_diff < 5e-2
    assert half.path.stat().st_size < 0.6 * full.path.stat().st_size


def test_export_with_an_unknown_identity_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(FaceGraftError, match="no identity 'alice'") as info:
        export_model(tiny_run, source="alice", target="woman", out=tmp_path / "m.onnx")
    assert "man, woman" in (info.value.hint or "")
    with pytest.raises(FaceGraftError, match="both 'man'"):
        export_model(tiny_run, source="man", target="man", out=tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_the_exported_model_renders_a_frame(tiny_run: Path, man_extract, single_face_plate: str, tmp_path: Path) -> None:
    model_path = export_model(tiny_run, source="woman", target="man", out=tmp_path / "m.onnx").path
    model = load_face_model(model_path, device="cpu")
    out = str(tmp_path / "render" / "swap.####.exr")
    settings = RenderSettings(erode=0.0, feather=0.0)  # the model's own mask, unshaped: a 32 px net's is soft
    report = render_shot(open_source(single_face_plate, "1001"), load_track(man_extract.track_path), model, out,
                         settings, frames=[1001])
    assert report.rendered == [1001]
    image = exr.read_image(out.replace("####", "1001"))
    alpha = image.get(["swap.A"])[..., 0].astype(np.float32)
    assert alpha.max() > 0.5  # the swap landed on the face
    assert sys.modules.get("torch") is not None  # training tests run with torch; rendering never needs it
