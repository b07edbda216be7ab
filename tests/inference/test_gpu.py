"""Where models run (``--device``): no silent fall-back to the CPU.

On a machine without a working CUDA (this one): an explicit ``cuda``/``tensorrt`` is an error
(``DeviceError``, exit 6); ``auto`` runs on the CPU, quietly where no GPU is present, with a
warning and a header stamp where a GPU is present but unusable (simulated by saying a GPU is
present: onnxruntime-gpu then really fails to initialise CUDA, or really lacks the provider).
The tests with the ``gpu`` mark run only where a CUDA GPU answers (see tests/conftest.py).
"""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from render_fixtures import FIRST, aligned_transform, make_plate, make_track
from render_models import build_conv_model, build_identity_model

from facegraft.cli.main import main
from facegraft.inference.errors import DeviceError, FaceGraftError
from facegraft.inference.io import exr
from facegraft.inference.models import face_model, runtime
from facegraft.inference.track.trackfile import save_track

RES = 16
CUDA_HERE = runtime._gpu_present() and "CUDAExecutionProvider" in ort.get_available_providers()
no_cuda = pytest.mark.skipif(CUDA_HERE, reason="a CUDA GPU answers here: the fall-back paths cannot be seen")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return build_identity_model(tmp_path_factory.mktemp("m") / "actor.onnx", RES, shift=[0.1, 0.0, 0.0])


@pytest.fixture
def gpu_expected(monkeypatch):
    """This machine says it has a GPU: ``auto`` then asks onnxruntime for CUDA."""
    monkeypatch.setattr(runtime, "_gpu_present", lambda: True)


# -- explicit devices ------------------------------------------------------------------------------------
@no_cuda
@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_an_explicit_gpu_that_cannot_run_is_an_error(model_path, device):
    with pytest.raises(DeviceError, match=f"device '{device}' was asked for but") as err:
        face_model.load(model_path, device=device)
    assert err.value.exit_code == 6 and "--device cpu" in (err.value.hint or "")


@no_cuda
def test_render_with_an_explicit_gpu_exits_6_before_writing(model_path, tmp_path, capsys):
    plate = make_plate(tmp_path / "plate", frames=[FIRST])
    track = tmp_path / "t.fgtrack.json"
    save_track(make_track([FIRST], aligned_transform(RES, "whole_face", (64, 40))), track)
    code = main(["render", plate, "--track", str(track), "--model", str(model_path), "--out",
                 str(tmp_path / "o" / "r.####.exr"), "--device", "cuda", "--json-progress"])
    assert code == 6
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "error" and "device 'cuda' was asked for" in events[-1]["message"]
    assert not (tmp_path / "o").exists()


def test_unknown_device():
    with pytest.raises(FaceGraftError, match="(?s)unknown device .gpu.*auto, cuda, tensorrt, cpu"):
        runtime.providers_for("gpu")


# -- auto ------------------------------------------------------------------------------------------------
@no_cuda
def test_auto_without_a_gpu_is_the_cpu_without_a_warning(model_path, monkeypatch):
    monkeypatch.setattr(runtime, "_gpu_present", lambda: False)
    model = face_model.load(model_path, device="auto")
    assert (model.device, model.fallback, model.warnings) == ("cpu", None, [])
    assert model.providers == ("CPUExecutionProvider",)


@no_cuda
def test_auto_where_cuda_does_not_initialise_falls_back_visibly(model_path, gpu_expected):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA provider to fail (the next test covers that case)")
    model = face_model.load(model_path, device="auto")
    assert model.device == "cpu"
    assert model.fallback and "could not initialise CUDAExecutionProvider" in model.fallback
    assert model.warnings == [f"the model runs on the CPU: {model.fallback}"]


@no_cuda
def test_auto_where_onnxruntime_has_no_cuda_falls_back_visibly(model_path, gpu_expected, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    model = face_model.load(model_path, device="auto")
    assert model.device == "cpu" and model.fallback and "offers no CUDAExecutionProvider" in model.fallback


@no_cuda
def test_a_fallback_is_said_and_stamped_in_every_frame(model_path, gpu_expected, tmp_path, capsys):
    plate = make_plate(tmp_path / "plate", frames=[FIRST, FIRST + 1])
    track = tmp_path / "t.fgtrack.json"
    save_track(make_track([FIRST, FIRST + 1], aligned_transform(RES, "whole_face", (64, 40))), track)
    base = ["render", plate, "--track", str(track), "--model", str(model_path), "--device", "auto", "--occlusion", "none"]
    assert main([*base, "--out", str(tmp_path / "text" / "r.####.exr")]) == 0
    assert "warning: the model runs on the CPU: " in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "json" / "r.####.exr"), "--json-progress"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [e for e in events if e["event"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["message"].startswith("the model runs on the CPU: ")
    assert warnings[0]["file"] == str(model_path)
    for frame in (FIRST, FIRST + 1):
        attrs = exr.attributes(exr.read_header(tmp_path / "json" / f"r.{frame}.exr"))
        assert attrs["facegraft/device"] == "cpu"
        assert attrs["facegraft/device_fallback"] == warnings[0]["message"].removeprefix("the model runs on the CPU: ")


def test_cpu_is_stamped_without_a_fallback(model_path, tmp_path):
    plate = make_plate(tmp_path / "plate", frames=[FIRST])
    track = tmp_path / "t.fgtrack.json"
    save_track(make_track([FIRST], aligned_transform(RES, "whole_face", (64, 40))), track)
    assert main(["render", plate, "--track", str(track), "--model", str(model_path), "--device", "cpu",
                 "--out", str(tmp_path / "r.####.exr")]) == 0
    attrs = exr.attributes(exr.read_header(tmp_path / f"r.{FIRST}.exr"))
    assert attrs["facegraft/device"] == "cpu" and "facegraft/device_fallback" not in attrs


# -- on a GPU ----------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_auto_device_picks_cuda(model_path):
    assert runtime.providers_for("auto")[0] == "CUDAExecutionProvider"
    assert runtime.providers_for("cuda")[:2] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    model = face_model.load(model_path, device="auto")
    assert (model.device, model.fallback, model.warnings) == ("cuda", None, [])


@pytest.mark.gpu
def test_cuda_model_matches_cpu(tmp_path):
    path = build_conv_model(tmp_path / "conv.onnx", res=128, layers=3, width=8)
    cpu = face_model.load(path, device="cpu")
    gpu = face_model.load(path, device="cuda")
    assert gpu.device == "cuda" and gpu.providers[0] == "CUDAExecutionProvider"
    faces = np.random.default_rng(0).uniform(0, 1, (5, 3, 128, 128)).astype(np.float32)
    swap_cpu, mask_cpu = cpu.run(faces)
    swap_gpu, mask_gpu = gpu.run(faces)
    assert np.abs(swap_cpu - swap_gpu).max() < 1e-3
    assert np.abs(mask_cpu - mask_gpu).max() < 1e-3
    again, _ = gpu.run(faces)
    assert np.array_equal(again, swap_gpu)  # the same bytes twice on the same GPU
