"""GPU execution on a CPU machine: provider options, the TensorRT engine cache, I/O binding, fp16.

What needs no GPU is tested here for real: the engine cache's key (with fake GPU and TensorRT
facts), its folders, publication and lock; I/O binding through the CPU provider (the same code
path as CUDA); the float16 conversion, run by onnxruntime's CPU provider and compared with
float32. The ``gpu``-marked tests at the end run the same checks on CUDA and TensorRT.
"""
from __future__ import annotations

import json
import os
import stat
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from render_models import build_conv_model, build_dfm_model, build_identity_model

from facegraft.inference.errors import DeviceError
from facegraft.inference.models import binding, face_model, fp16, providers, runtime
from facegraft.inference.models.providers import EngineKey, GpuInfo

H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
KEY = EngineKey(model_hash="ab" * 32, precision="fp16", input_shape=(4, 3, 512, 512), gpu=H100.name,
                compute_capability="9.0", tensorrt="10.3.0", onnxruntime="1.31.1")
ALL_PROVIDERS = [runtime.TENSORRT, runtime.CUDA, runtime.CPU]


@pytest.fixture
def gpu_machine(monkeypatch):
    """This onnxruntime offers every provider and the machine says it has a GPU (no GPU is touched)."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(ALL_PROVIDERS))
    monkeypatch.setattr(runtime, "_gpu_present", lambda: True)


# -- the engine key ----------------------------------------------------------------------------------------
def test_the_key_is_stable_and_names_its_folder(tmp_path):
    again = EngineKey(**{**KEY.as_dict(), "input_shape": (4, 3, 512, 512)})
    assert again.digest == KEY.digest and len(KEY.digest) == 64
    folder = KEY.folder(tmp_path)
    assert folder.parent == tmp_path / "trt" / ("ab" * 8)
    assert folder.name == f"nvidia-h100-80gb-hbm3_sm90_trt10.3.0_{KEY.digest[:12]}"
    assert KEY.timing_folder(tmp_path) == tmp_path / "trt" / "timing" / "nvidia-h100-80gb-hbm3_sm90_trt10.3.0"


@pytest.mark.parametrize("field, value", [
    ("model_hash", "cd" * 32), ("precision", "fp32"), ("input_shape", (8, 3, 512, 512)),
    ("gpu", "NVIDIA H200"), ("compute_capability", "8.9"), ("tensorrt", "10.4.0"), ("onnxruntime", "1.32.0"),
])
def test_every_field_changes_the_key(tmp_path, field, value):
    other = replace(KEY, **{field: value})
    assert other.digest != KEY.digest
    assert other.folder(tmp_path) != KEY.folder(tmp_path)


def test_the_home_defaults_to_facegraft_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGRAFT_HOME", str(tmp_path / "home"))
    assert KEY.folder().is_relative_to(tmp_path / "home" / "trt")


# -- what the machine reports --------------------------------------------------------------------------------
def _fake_tool(folder: Path, name: str, script: str) -> None:
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def test_gpu_facts_from_nvidia_smi(tmp_path, monkeypatch):
    _fake_tool(tmp_path / "bin", "nvidia-smi", 'echo "NVIDIA H200, 9.0"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert providers._gpu_from_smi(0) == GpuInfo("NVIDIA H200", "9.0", 0)


def test_an_nvidia_smi_without_compute_capability_says_nothing(tmp_path, monkeypatch):
    _fake_tool(tmp_path / "bin", "nvidia-smi", 'echo "Field compute_cap is not a valid field"; exit 2\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert providers._gpu_from_smi(0) is None


@pytest.mark.skipif(runtime._gpu_present(), reason="a GPU is present here")
def test_no_gpu_answers_here():
    assert providers.gpu_info() is None


# -- provider plans ----------------------------------------------------------------------------------------
def test_cpu_and_auto_without_a_gpu_take_no_options(monkeypatch):
    monkeypatch.setattr(runtime, "_gpu_present", lambda: False)
    for device in ("cpu", "auto"):
        p = providers.plan(device, "ab" * 32, "fp32", "face", (4, 3, 64, 64))
        assert p.providers == [runtime.CPU] and p.options == {} and p.key is None


def test_cuda_gets_its_options(gpu_machine):
    p = providers.plan("cuda", "ab" * 32, "fp32", "face", (4, 3, 64, 64))
    assert p.providers == [runtime.CUDA, runtime.CPU] and p.key is None
    assert p.options[runtime.CUDA]["cudnn_conv_algo_search"] == "EXHAUSTIVE"


def test_tensorrt_is_keyed_by_model_precision_shape_gpu_and_versions(gpu_machine, tmp_path):
    p = providers.plan("tensorrt", "ab" * 32, "fp16", "face", (4, 3, 512, 512), home=tmp_path, gpu=H100,
                       trt_version="10.3.0")
    assert p.providers == ALL_PROVIDERS and p.tensorrt
    assert p.key == replace(KEY, onnxruntime=ort.__version__)
    with providers.session_options(p) as (options, slot):
        assert slot is not None and not slot.cached
        trt = options[runtime.TENSORRT]
        assert trt["trt_engine_cache_enable"] == "True" and trt["trt_engine_cache_path"] == str(slot.cache_path)
        assert trt["trt_fp16_enable"] == "True"
        assert trt["trt_profile_opt_shapes"] == trt["trt_profile_min_shapes"] == trt["trt_profile_max_shapes"] \
            == "face:4x3x512x512"
        assert Path(trt["trt_timing_cache_path"]) == p.key.timing_folder(tmp_path)
        assert options[runtime.CUDA] == providers.cuda_options()


def test_tensorrt_profiles_only_where_the_graph_needs_and_takes_one(tmp_path):
    assert "trt_profile_opt_shapes" not in providers.tensorrt_options(KEY, tmp_path, "face", dynamic_batch=False,
                                                                       home=tmp_path)
    assert "trt_profile_opt_shapes" not in providers.tensorrt_options(KEY, tmp_path, "in_face:0", dynamic_batch=True,
                                                                       home=tmp_path)
    assert providers.tensorrt_options(replace(KEY, precision="fp32"), tmp_path, "face", True,
                                      home=tmp_path)["trt_fp16_enable"] == "False"


def test_explicit_tensorrt_without_its_facts_is_a_device_error(gpu_machine, monkeypatch):
    monkeypatch.setattr(providers, "tensorrt_version", lambda: None)
    with pytest.raises(DeviceError, match="device 'tensorrt' was asked for but the TensorRT version") as err:
        providers.plan("tensorrt", "ab" * 32, "fp32", "face", (4, 3, 64, 64), gpu=H100)
    assert "--device cpu" in (err.value.hint or "")


def test_auto_tensorrt_without_its_facts_warns_that_engines_are_not_cached(gpu_machine, monkeypatch):
    monkeypatch.setenv("FACEGRAFT_TENSORRT", "1")
    monkeypatch.setattr(providers, "gpu_info", lambda index=0: None)
    p = providers.plan("auto", "ab" * 32, "fp32", "face", (4, 3, 64, 64), trt_version="10.3.0")
    assert p.providers == ALL_PROVIDERS and p.key is None
    assert p.warnings == ["TensorRT engines are not cached (no GPU answers the CUDA driver or nvidia-smi): "
                          "every render builds its own"]


# -- the engine cache ----------------------------------------------------------------------------------------
def _build(slot: providers.EngineSlot, name: str = "TensorrtExecutionProvider_TRTKernel_sm90.engine") -> None:
    """What onnxruntime's TensorRT provider does in a session it creates: write its engine."""
    (slot.cache_path / name).write_bytes(os.urandom(64))


def test_a_built_engine_is_published_then_loaded_not_rebuilt(tmp_path):
    with providers.engine_slot(KEY, tmp_path) as first:
        assert not first.cached and first.cache_path != first.folder and first.cache_path.is_dir()
        _build(first)
        assert not providers.is_cached(first.folder)  # nothing is trusted before the session exists
    assert first.built and providers.is_cached(first.folder) and not first.cache_path.exists()
    written = json.loads((first.folder / providers.KEY_FILE).read_text())
    assert written["digest"] == KEY.digest and written["input_shape"] == [4, 3, 512, 512]
    assert written["gpu"] == H100.name and written["tensorrt"] == "10.3.0"

    with providers.engine_slot(KEY, tmp_path) as second:  # the next chunk
        assert second.cached and second.cache_path == first.folder
    assert not second.built
    listed = providers.cached_engines(tmp_path)
    assert [e["digest"] for e in listed] == [KEY.digest] and listed[0]["bytes"] > 64


def test_an_engine_rebuilt_over_the_cached_one_is_noticed(tmp_path):
    with providers.engine_slot(KEY, tmp_path) as slot:
        _build(slot)
    time.sleep(0.01)
    with providers.engine_slot(KEY, tmp_path) as slot:
        _build(slot)  # onnxruntime found the engine unusable and wrote another
    assert slot.cached and slot.built


def test_a_failed_or_empty_build_publishes_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with providers.engine_slot(KEY, tmp_path) as slot:
            _build(slot)
            raise RuntimeError("the session could not be created")
    with providers.engine_slot(KEY, tmp_path) as empty:
        pass  # the TensorRT provider was dropped: no engine
    assert not providers.is_cached(KEY.folder(tmp_path)) and not empty.built
    assert sorted(p.name for p in KEY.folder(tmp_path).parent.iterdir()) == [providers.LOCK_FILE]


def test_a_killed_build_is_not_trusted(tmp_path):
    half = KEY.folder(tmp_path)
    half.mkdir(parents=True)
    (half / "cut_short.engine").write_bytes(b"\0" * 10)  # an engine without key.json
    with providers.engine_slot(KEY, tmp_path) as slot:
        assert not slot.cached
        _build(slot)
    assert sorted(p.name for p in half.iterdir()) == ["TensorrtExecutionProvider_TRTKernel_sm90.engine",
                                                      providers.KEY_FILE]


def test_chunks_starting_together_build_the_engine_once(tmp_path):
    builds, results = [], []

    def chunk() -> None:
        with providers.engine_slot(KEY, tmp_path) as slot:
            if not slot.cached:
                time.sleep(0.3)  # an engine takes a while to build
                _build(slot)
                builds.append(1)
        results.append(slot.cached)

    threads = [threading.Thread(target=chunk) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and sorted(results) == [False, True, True]


# -- I/O binding -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conv_path(tmp_path_factory):
    return build_conv_model(tmp_path_factory.mktemp("conv") / "conv.onnx", res=32, layers=3, width=8)


def test_bound_runs_match_plain_runs_and_reuse_their_buffers(conv_path):
    session = ort.InferenceSession(str(conv_path), providers=[runtime.CPU])
    runner = binding.BoundRunner(session, "cpu", ["swap", "mask"])
    rng = np.random.default_rng(1)
    kept = []
    for _ in range(3):
        faces = rng.uniform(0, 1, (4, 3, 32, 32)).astype(np.float32)
        got = runner.run({"face": faces})
        want = session.run(["swap", "mask"], {"face": faces})
        assert all(np.array_equal(g, w) for g, w in zip(got, want))
        kept.append(got[0])
    assert len(runner.slots) == 1 and runner.uploads == 3
    slot = next(iter(runner.slots.values()))
    assert [v.shape() for v in slot.outputs.values()] == [[4, 3, 32, 32], [4, 1, 32, 32]]
    assert not np.array_equal(kept[0], kept[1])  # results the caller holds are not overwritten by later calls


def test_each_batch_shape_gets_its_slot(conv_path):
    session = ort.InferenceSession(str(conv_path), providers=[runtime.CPU])
    runner = binding.BoundRunner(session, "cpu")
    for n in range(1, binding.MAX_SLOTS + 2):
        swap, mask = runner.run({"face": np.full((n, 3, 32, 32), 0.4, np.float32)})
        assert swap.shape == (n, 3, 32, 32) and mask.shape == (n, 1, 32, 32)
    assert len(runner.slots) == binding.MAX_SLOTS


def test_a_float16_graph_is_fed_float16_and_answers_float32(tmp_path):
    path = build_identity_model(tmp_path / "h.onnx", res=16, shift=[0.25, 0, 0], dtype="float16")
    session = ort.InferenceSession(str(path), providers=[runtime.CPU])
    runner = binding.BoundRunner(session, "cpu")
    faces = np.random.default_rng(0).uniform(0, 1, (2, 3, 16, 16)).astype(np.float32)
    swap, mask = runner.run({"face": faces})
    assert swap.dtype == np.float32 and mask.dtype == np.float32
    shift = np.array([0.25, 0, 0], np.float32).reshape(1, 3, 1, 1)
    # the graph adds in float32 between its casts: float16 in, float16 out
    want = (faces.astype(np.float16).astype(np.float32) + shift).astype(np.float16).astype(np.float32)
    assert np.array_equal(swap, want)
    slot = next(iter(runner.slots.values()))
    assert slot.inputs["face"].data_type() == "tensor(float16)"


def test_unknown_inputs_are_named(conv_path):
    runner = binding.BoundRunner(ort.InferenceSession(str(conv_path), providers=[runtime.CPU]), "cpu")
    with pytest.raises(KeyError, match="no input 'image'.*inputs: face"):
        runner.run({"image": np.zeros((1, 3, 32, 32), np.float32)})


# -- the face model: I/O binding and fp16 -------------------------------------------------------------------
def build_comb_model(path: Path, res: int, width: int, fp16_export: bool = False) -> Path:
    """The network users train (the comb network, random weights), exported as a FaceGraft model."""
    import torch

    from facegraft.inference.models import modelfile
    from facegraft.training.export import _Half, to_onnx
    from facegraft.training.network import CombNet, NetConfig, Swapper

    torch.manual_seed(0)
    swapper = Swapper(CombNet(NetConfig(res=res, width=width, identities=["source", "target"])), "source").eval()
    proto = to_onnx(_Half(swapper) if fp16_export else swapper, res)
    stamped = modelfile.stamp(proto, resolution=res, coverage="whole_face", colorspace="ACEScct", source="source",
                              target="target", provenance={"steps": 0})
    return modelfile.save(stamped, path)


@pytest.fixture(scope="module")
def comb_path(tmp_path_factory):
    return build_comb_model(tmp_path_factory.mktemp("comb") / "comb64.onnx", res=64, width=16)


#: fp16 against fp32, on the swap and mask (both within 0..1 here). float16 spaces values in
#: [0.25, 0.5) by 2^-12 (2.4e-4) and in [0.5, 1) by 2^-11 (4.9e-4): the outputs alone are
#: rounded by up to half of that. Allowed: 4 steps of 4.9e-4 anywhere (2e-3, about 0.035 of a
#: stop in ACEScct) and one step of 2.4e-4 on average. Measured on the CPU for this network at
#: 64 px: max 2.5e-4, mean 1.2e-4.
FP16_MAX, FP16_MEAN = 2e-3, 2.5e-4


def _faces(res: int, n: int = 5) -> np.ndarray:
    return np.random.default_rng(3).uniform(0.1, 0.6, (n, 3, res, res)).astype(np.float32)


def test_the_face_model_runs_through_bound_buffers(comb_path):
    model = face_model.load(comb_path, device="cpu", batch=4)
    before = model._runner.uploads
    faces = _faces(64)
    swap, mask = model.run(faces)  # 5 faces: two batches of 4, the second padded
    assert model._runner.uploads == before + 2 and len(model._runner.slots) == 1
    session = ort.InferenceSession(str(comb_path), providers=[runtime.CPU])
    padded = np.concatenate([faces, np.zeros((3, 3, 64, 64), np.float32)])
    want = [np.concatenate(parts) for parts in zip(*(session.run(["swap", "mask"], {"face": padded[i:i + 4]})
                                                     for i in (0, 4)))]
    assert np.allclose(swap, want[0][:5], atol=1e-6) and np.allclose(mask, np.clip(want[1][:5], 0, 1), atol=1e-6)
    again, _ = model.run(faces)
    assert np.array_equal(again, swap)  # the same bytes twice


def test_fp16_converts_at_load_and_stays_close_to_fp32(comb_path):
    full = face_model.load(comb_path, device="cpu")
    half = face_model.load(comb_path, device="cpu", precision="fp16")
    assert (full.precision, full.conversion) == ("fp32", "as is")
    assert (half.precision, half.conversion) == ("fp16", "converted")
    assert half.session.get_inputs()[0].type == "tensor(float16)"
    assert {o.type for o in half.session.get_outputs()} == {"tensor(float16)"}
    faces = _faces(64)
    (s32, m32), (s16, m16) = full.run(faces), half.run(faces)
    assert s16.dtype == np.float32 and s16.shape == s32.shape
    for a, b in ((s16, s32), (m16, m32)):
        diff = np.abs(a - b)
        assert 0 < diff.max() <= FP16_MAX and diff.mean() <= FP16_MEAN


def test_a_model_exported_in_fp16_is_used_as_it_is(tmp_path):
    path = build_comb_model(tmp_path / "half.onnx", res=32, width=8, fp16_export=True)
    assert fp16.is_half(onnx.load(str(path)))
    model = face_model.load(path, device="cpu", precision="fp16")
    assert model.conversion == "as is" and model.session.get_inputs()[0].type == "tensor(float)"


def test_fp16_runs_a_dfm_model_with_its_extra_input(tmp_path):
    path = build_dfm_model(tmp_path / "m.dfm", res=16, shift=[0.1, 0.0, 0.0], morph=True)
    full = face_model.load(path, device="cpu")
    half = face_model.load(path, device="cpu", precision="fp16")
    faces = _faces(16, 2)
    assert half.conversion == "converted"
    assert np.abs(half.run(faces)[0] - full.run(faces)[0]).max() <= FP16_MAX


def test_fp16_conversion_refusals_name_the_file(tmp_path, monkeypatch):
    path = build_identity_model(tmp_path / "m.onnx", res=16)

    class Broken:
        @staticmethod
        def convert_float_to_float16(*_args, **_kwargs):
            raise ValueError("unsupported op")

    monkeypatch.setattr(fp16, "_converter", lambda: Broken)
    from facegraft.inference.errors import ModelFileError

    with pytest.raises(ModelFileError, match="cannot be converted to float16 .ValueError: unsupported op") as err:
        face_model.load(path, device="cpu", precision="fp16")
    assert err.value.path == str(path) and "--precision fp32" in (err.value.hint or "")


def test_converting_does_not_leave_onnxruntime_scripts_on_the_path():
    import sys

    before = list(sys.path)
    fp16._converter()
    assert sys.path == before


# -- on a GPU -----------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_cuda_binds_device_buffers_and_matches_plain_runs(comb_path):
    model = face_model.load(comb_path, device="cuda")
    assert model.device == "cuda"
    faces = _faces(64, 4)
    swap, _ = model.run(faces)
    slot = next(iter(model._runner.slots.values()))
    assert slot.inputs["face"].device_name() == "cuda"
    assert all(v.device_name() == "cuda" for v in slot.outputs.values())
    plain = ort.InferenceSession(str(comb_path), providers=[runtime.CUDA])
    assert np.abs(swap - plain.run(["swap"], {"face": faces})[0]).max() < 1e-4


@pytest.mark.gpu
def test_cuda_fp16_stays_close_to_cpu_fp32(comb_path):
    cpu = face_model.load(comb_path, device="cpu")
    gpu = face_model.load(comb_path, device="cuda", precision="fp16")
    assert gpu.device == "cuda" and gpu.conversion == "converted"
    faces = _faces(64)
    for a, b in zip(gpu.run(faces), cpu.run(faces)):
        diff = np.abs(a - b)
        assert diff.max() <= FP16_MAX and diff.mean() <= FP16_MEAN


@pytest.mark.gpu
def test_tensorrt_builds_its_engine_once_and_loads_it_after(comb_path, tmp_path, monkeypatch):
    if runtime.TENSORRT not in ort.get_available_providers() or providers.tensorrt_version() is None:
        pytest.skip("no TensorRT here")
    monkeypatch.setenv("FACEGRAFT_HOME", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = face_model.load(comb_path, device="tensorrt", precision="fp16")
        assert first.device == "tensorrt" and first.engine is not None
        assert not first.engine.cached and first.engine.built and providers.is_cached(first.engine.folder)
        second = face_model.load(comb_path, device="tensorrt", precision="fp16")  # the next farm chunk
    assert second.engine is not None and second.engine.cached and not second.engine.built
    assert second.engine.folder == first.engine.folder and second.warnings == []
    faces = _faces(64, 4)
    assert np.array_equal(first.run(faces)[0], second.run(faces)[0])


def test_builds_killed_half_way_are_cleared_by_the_next_build(tmp_path):
    leftover = KEY.folder(tmp_path).with_name(f".{KEY.folder(tmp_path).stem}.4242.77.tmp{KEY.folder(tmp_path).suffix}")
    leftover.mkdir(parents=True)
    (leftover / "half.engine").write_bytes(b"\0")
    with providers.engine_slot(KEY, tmp_path) as slot:
        _build(slot)
    assert not leftover.exists() and providers.is_cached(KEY.folder(tmp_path))


def test_an_unwritable_cache_is_a_clear_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "trt").write_text("a file where the cache folder should be")
    from facegraft.inference.errors import FaceGraftError

    with pytest.raises(FaceGraftError, match="engine cache cannot be written") as err:
        with providers.engine_slot(KEY, home):
            pass
    assert "FACEGRAFT_HOME" in (err.value.hint or "")
