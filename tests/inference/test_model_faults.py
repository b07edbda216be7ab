"""Broken model files are refused before frame 1, with a FaceGraft error naming the file.

Each fault is a real file: a cut-short ONNX, graphs whose shapes break the contract (declared or
only at run time), NaN/Inf weights, files that are not ONNX, an unsupported format version, a
crop template the renderer does not implement. Loading (``face_model.load``) refuses them; the
``render`` command exits 5 having written no frame.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from render_fixtures import FIRST, aligned_transform, make_plate, make_track
from render_models import OPSET, build_dfm_model, build_identity_model

from facegraft.cli.main import main
from facegraft.inference.errors import ModelFileError
from facegraft.inference.models import face_model, formats, modelfile, runtime
from facegraft.inference.track.trackfile import save_track

RES = 16


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    plate = make_plate(root / "plate", frames=range(FIRST, FIRST + 2))
    track = root / "shot.fgtrack.json"
    save_track(make_track(range(FIRST, FIRST + 2), aligned_transform(RES, "whole_face", (64, 40))), track)
    return {"plate": plate, "track": str(track)}


def _render(shot, model, out_dir: Path, *extra: str) -> int:
    return main(["render", shot["plate"], "--track", shot["track"], "--model", str(model),
                 "--out", str(out_dir / "r.####.exr"), "--device", "cpu", *extra])


def _refused(shot, model: Path, tmp_path: Path, capsys, message: str) -> None:
    """``render`` exits 5 before writing anything, naming the file and what is wrong."""
    out = tmp_path / "out"
    assert _render(shot, model, out) == 5
    err = capsys.readouterr().err
    assert str(model) in err and message in err, err
    assert not out.exists() or not any(out.iterdir())


def _graph(nodes, inits, res=RES, outputs=None, name="face", input_shape=None):
    """A FaceGraft-stamped graph from ``nodes`` (input ``face``; outputs ``swap`` and ``mask``)."""
    outputs = outputs or [helper.make_tensor_value_info("swap", TensorProto.FLOAT, ["N", 3, res, res]),
                          helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, res, res])]
    graph = helper.make_graph(nodes, "fault", [helper.make_tensor_value_info(
        name, TensorProto.FLOAT, input_shape or ["N", 3, res, res])], outputs, inits)
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    return model


def _save_stamped(model: onnx.ModelProto, path: Path, res: int = RES) -> Path:
    stamped = modelfile.stamp(model, resolution=res, coverage="whole_face", colorspace="ACEScct",
                              source="a", target="b")
    return modelfile.save(stamped, path)


def _mask_nodes():
    """``mask`` = ones shaped like the first channel of ``face``."""
    return ([helper.make_node("Slice", ["face", "s0", "s1", "s1"], ["first"]),
             helper.make_node("Mul", ["first", "zero"], ["zeros"]),
             helper.make_node("Add", ["zeros", "one"], ["mask"])],
            [numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.ones(1, np.float32), "one")])


# -- cut short -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["facegraft", "dfm"])
def test_truncated_model_is_refused_wherever_it_is_cut(tmp_path, kind):
    whole = (build_identity_model(tmp_path / "m.onnx", RES, conv_layers=2, conv_width=8) if kind == "facegraft"
             else build_dfm_model(tmp_path / "m.dfm", RES))
    data = whole.read_bytes()
    step = 1 if kind == "dfm" else 5  # every byte of the small one: field boundaries included
    for cut in [*range(0, len(data) - 50, step), *range(len(data) - 50, len(data))]:
        path = tmp_path / f"cut{cut}{whole.suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError) as err:
            face_model.load(path, device="cpu")
        assert err.value.path == str(path) and err.value.exit_code == 5, (cut, err.value)


def test_render_refuses_a_truncated_model_before_frame_1(shot, tmp_path, capsys):
    data = build_identity_model(tmp_path / "m.onnx", RES).read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    _refused(shot, cut, tmp_path, capsys, "not an ONNX model, or the file is cut short")


# -- wrong shapes ------------------------------------------------------------------------------------
def test_declared_shapes_that_disagree_with_the_metadata(shot, tmp_path, capsys):
    model = onnx.load(str(build_identity_model(tmp_path / "m.onnx", RES)))
    for prop in model.metadata_props:
        if prop.key == "facegraft.resolution":
            prop.value = "32"
    onnx.save(model, str(tmp_path / "res32.onnx"))
    _refused(shot, tmp_path / "res32.onnx", tmp_path, capsys, "expected [N,3,32,32]")


def test_a_graph_returning_the_wrong_size_is_refused_at_load(shot, tmp_path, capsys):
    # declares dynamic spatial dims (so the file passes the contract check) but halves the face
    mask_nodes, mask_inits = _mask_nodes()
    nodes = [helper.make_node("AveragePool", ["face"], ["swap"], kernel_shape=[2, 2], strides=[2, 2]), *mask_nodes]
    outputs = [helper.make_tensor_value_info("swap", TensorProto.FLOAT, ["N", 3, "h", "w"]),
               helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, RES, RES])]
    path = _save_stamped(_graph(nodes, mask_inits, outputs=outputs), tmp_path / "half.onnx")
    formats.read_info(path)  # the file itself is well formed
    with pytest.raises(ModelFileError, match=r"returned swap \[4, 3, 8, 8\].*expected \[4,3,16,16\]"):
        face_model.load(path, device="cpu")
    _refused(shot, path, tmp_path, capsys, "returned swap")


def test_a_graph_whose_own_shapes_clash_is_refused(tmp_path):
    mask_nodes, mask_inits = _mask_nodes()
    four = numpy_helper.from_array(np.zeros((1, 4, 1, 1), np.float32), "four")  # 3 channels + 4: no broadcast
    path = _save_stamped(_graph([helper.make_node("Add", ["face", "four"], ["swap"]), *mask_nodes],
                                [four, *mask_inits]), tmp_path / "clash.onnx")
    with pytest.raises(ModelFileError) as err:
        face_model.load(path, device="cpu")
    assert err.value.path == str(path) and "onnxruntime" not in type(err.value).__module__


def test_a_graph_that_fails_at_run_time_is_refused_at_load_and_never_retried(tmp_path, monkeypatch):
    # Reshape to rows of 7: loads fine, fails on the first batch (3*16*16 values per face)
    mask_nodes, mask_inits = _mask_nodes()
    shape = numpy_helper.from_array(np.array([-1, 7], np.int64), "rows7")
    nodes = [helper.make_node("Reshape", ["face", "rows7"], ["flat"]),
             helper.make_node("Identity", ["face"], ["swap"]), helper.make_node("Identity", ["flat"], ["flat_out"]),
             *mask_nodes]
    outputs = [helper.make_tensor_value_info("swap", TensorProto.FLOAT, ["N", 3, RES, RES]),
               helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, RES, RES]),
               helper.make_tensor_value_info("flat_out", TensorProto.FLOAT, [None, 7])]
    path = _save_stamped(_graph(nodes, [shape, *mask_inits], outputs=outputs), tmp_path / "runfail.onnx")
    with pytest.raises(ModelFileError, match="the model failed to run on cpu") as err:
        face_model.load(path, device="cpu")
    assert err.value.path == str(path) and err.value.hint
    # the same under auto where a GPU is expected: an error about the file, not a quiet second try
    monkeypatch.setattr(runtime, "_gpu_present", lambda: True)
    with pytest.raises(ModelFileError, match="failed to run"):
        face_model.load(path, device="auto")
    # and a model that passed its load fails the same way mid-render, naming the file
    model = face_model.load(path, device="cpu", probe=False)
    with pytest.raises(ModelFileError, match="failed to run") as err:
        model.run(np.zeros((2, 3, RES, RES), np.float32))
    assert err.value.path == str(path) and model.providers == ("CPUExecutionProvider",)


def test_a_graph_onnxruntime_cannot_load_is_a_model_error_on_every_device(tmp_path, monkeypatch):
    mask_nodes, mask_inits = _mask_nodes()
    path = _save_stamped(_graph([helper.make_node("NoSuchOperator", ["face"], ["swap"]), *mask_nodes], mask_inits),
                         tmp_path / "unknown_op.onnx")
    for device, gpu in (("cpu", False), ("auto", False), ("auto", True)):
        monkeypatch.setattr(runtime, "_gpu_present", lambda gpu=gpu: gpu)
        with pytest.raises(ModelFileError, match="onnxruntime cannot load the model: .*NoSuchOperator") as err:
            face_model.load(path, device=device)
        assert err.value.path == str(path)


def test_a_dfm_with_the_wrong_layout_is_refused(tmp_path):
    # the face comes back NCHW while the input is NHWC: DeepFaceLab's contract broken
    res = RES
    nodes = [helper.make_node("Transpose", ["in_face:0"], ["out_celeb_face:0"], perm=[0, 3, 1, 2]),
             helper.make_node("ReduceMean", ["in_face:0"], ["out_celeb_face_mask:0"], axes=[3], keepdims=1)]
    graph = helper.make_graph(nodes, "dfm", [helper.make_tensor_value_info("in_face:0", TensorProto.FLOAT,
                                                                           ["N", res, res, 3])],
                              [helper.make_tensor_value_info("out_celeb_face:0", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("out_celeb_face_mask:0", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    path = modelfile.save(model, tmp_path / "nchw.dfm")
    with pytest.raises(ModelFileError, match=r"outputs \(\[4, 3, 16, 16\], \[4, 16, 16, 1\]\) do not fit its format"
                       ) as err:
        face_model.load(path, device="cpu")
    assert err.value.path == str(path)


# -- weights that are not finite -----------------------------------------------------------------------
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_refused(shot, tmp_path, capsys, value):
    model = onnx.load(str(build_identity_model(tmp_path / "m.onnx", RES, conv_layers=2, conv_width=8)))
    weights = next(t for t in model.graph.initializer if t.name == "w0")
    array = numpy_helper.to_array(weights).copy()
    array.flat[[3, 40]] = value
    weights.CopyFrom(numpy_helper.from_array(array, "w0"))
    del model.metadata_props[:]
    path = _save_stamped(model, tmp_path / "nan.onnx")  # a consistent file: the hash matches
    with pytest.raises(ModelFileError, match=f"NaN or Inf values: 'w0' \\(2 of {array.size}\\)"):
        formats.read_info(path)
    _refused(shot, path, tmp_path, capsys, "NaN or Inf")


def test_nan_in_a_constant_node_of_a_dfm_is_refused(tmp_path):
    model = onnx.load(str(build_dfm_model(tmp_path / "m.dfm", RES)))
    model.graph.node.append(helper.make_node("Constant", [], ["unused"], value=numpy_helper.from_array(
        np.array([1.0, np.nan], np.float32), "bad_constant")))
    path = modelfile.save(model, tmp_path / "nan.dfm")
    with pytest.raises(ModelFileError, match="'bad_constant' \\(1 of 2\\)"):
        face_model.load(path, device="cpu")


def test_a_model_that_returns_nan_is_refused(tmp_path):
    mask_nodes, mask_inits = _mask_nodes()
    ten = numpy_helper.from_array(np.full((1, 1, 1, 1), 10.0, np.float32), "ten")
    nodes = [helper.make_node("Sub", ["face", "ten"], ["neg"]), helper.make_node("Log", ["neg"], ["swap"]),
             *mask_nodes]
    path = _save_stamped(_graph(nodes, [ten, *mask_inits]), tmp_path / "log.onnx")
    with pytest.raises(ModelFileError, match="returns NaN or Inf for a plain grey face"):
        face_model.load(path, device="cpu")


# -- not ONNX, unsupported version, unknown template ------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
                                     b"ir_version: 8\ngraph { name: 'x' }\n", b"PK\x03\x04" + b"\x00" * 200])
def test_files_that_are_not_onnx(shot, tmp_path, capsys, content):
    path = tmp_path / "face.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not an ONNX model"):
        face_model.load(path, device="cpu")
    _refused(shot, path, tmp_path, capsys, "not an ONNX model")


def _with_meta(path: Path, out: Path, key: str, value: str) -> Path:
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
    onnx.save(model, str(out))
    return out


def test_unsupported_format_version(shot, tmp_path, capsys):
    path = _with_meta(build_identity_model(tmp_path / "m.onnx", RES), tmp_path / "v9.onnx",
                      "facegraft.format_version", "9")
    _refused(shot, path, tmp_path, capsys, "model format version 9 is not supported")


@pytest.mark.parametrize("template, coverage, message", [
    ("insightface-112", "whole_face", "the crop template 'insightface-112' is not implemented"),
    ("deepfacelab-wf", "head", "the crop template 'deepfacelab-wf' has no coverage 'head'"),
])
def test_a_crop_template_the_renderer_does_not_implement(shot, tmp_path, capsys, template, coverage, message):
    model = onnx.load(str(build_identity_model(tmp_path / "m.onnx", RES, coverage=coverage)))
    for prop in model.metadata_props:
        if prop.key == "facegraft.template":
            prop.value = template
    onnx.save(model, str(tmp_path / "t.onnx"))
    with pytest.raises(ModelFileError, match=message) as err:
        formats.read_info(tmp_path / "t.onnx")
    assert "update FaceGraft" in (err.value.hint or "")
    _refused(shot, tmp_path / "t.onnx", tmp_path, capsys, message)


def test_the_render_process_reports_a_model_fault_as_json(shot, tmp_path):
    """A real process, as the farm and the Nuke node run it: exit 5, an error event naming the file."""
    path = tmp_path / "broken.onnx"
    path.write_bytes(build_identity_model(tmp_path / "m.onnx", RES).read_bytes()[:300])
    result = subprocess.run([sys.executable, "-m", "facegraft.cli.main", "render", shot["plate"], "--track",
                             shot["track"], "--model", str(path), "--out", str(tmp_path / "o" / "r.####.exr"),
                             "--json-progress"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 5, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "error" and events[-1]["file"] == str(path)
    assert not any(e["event"] == "progress" for e in events)
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()
