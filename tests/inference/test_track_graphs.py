"""The CPU graph rewrites (``track.graphs``): the prepared models keep their answers on real
crops, lose their PRelus and channel pads, and run with fewer layout reorders; graphs the
rewrites do not fit are left as they are."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tracking_support import clip_frames

from facegraft.inference import assets
from facegraft.inference.errors import DeviceError
from facegraft.inference.io import colour
from facegraft.inference.models import runtime
from facegraft.inference.track import detect, graphs, landmarks


def _session(model: object, optimized: Path | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def crops() -> dict[str, np.ndarray]:
    """Real network inputs from a frame of the woman's clip: the FaceMesh crop, both eye crops, a palm square."""
    rgb = clip_frames("WolfgangLanger_Pexels.mp4", 1)[0]
    det = detect.Detectors("cpu", 1).detect(rgb, plate_space="ACEScg")[0]
    models = landmarks.LandmarkModels("cpu", 1)
    roi = landmarks.roi_from_detection(det)
    mesh, _ = models.mesh_points(rgb, roi, (0, 0), "ACEScg")
    warp = lambda m, s: detect.warp_to_srgb(rgb, m, (s, s), "ACEScg", colour.DEFAULT_CONFIG)  # noqa: E731
    eyes = [warp(landmarks._eye_roi(mesh, a, b).matrix(landmarks.IRIS_SIZE, mirror=mirror), landmarks.IRIS_SIZE)
            for a, b, mirror in landmarks.EYES]
    x0, y0, x1, y1 = det.box
    side = 2.5 * max(x1 - x0, y1 - y0)
    k = 192 / side
    square = np.array([[k, 0.0, 96 - k * (x0 + x1) / 2], [0.0, k, 96 - k * (y0 + y1) / 2]])
    nchw = lambda a: np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2), dtype=np.float32)  # noqa: E731
    return {"face_landmark": nchw([warp(roi.matrix(192), 192)]), "iris_landmark": nchw(eyes),
            "palm_detection_full": nchw([warp(square, 192)])}


@pytest.mark.parametrize("name", ["face_landmark", "iris_landmark", "palm_detection_full"])
def test_rewritten_models_answer_as_the_converted_ones(name: str, crops: dict[str, np.ndarray], tmp_path: Path) -> None:
    path = assets.model_path(name)
    source = landmarks.batched_graph(path) if name == "iris_landmark" else path  # both eyes in one call
    fast = graphs.fast_graph(source)
    ops = [n.op_type for n in onnx.load_from_string(fast).graph.node]
    assert "PRelu" not in ops and "Pad" not in ops
    original = _session(source, tmp_path / "original.onnx")
    rewritten = _session(fast, tmp_path / "rewritten.onnx")
    x = crops[name]
    want = original.run(None, {original.get_inputs()[0].name: x})
    got = rewritten.run(None, {rewritten.get_inputs()[0].name: x})
    for a, b in zip(want, got):
        # float rounding only: the fused kernels sum in another order (outputs are crop px, logits)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))

    def reorders(optimized: Path) -> int:
        return sum(n.op_type in ("ReorderInput", "ReorderOutput") for n in onnx.load(str(optimized)).graph.node)

    # what makes them fast: onnxruntime keeps the blocked layout across the activations
    assert reorders(tmp_path / "rewritten.onnx") < reorders(tmp_path / "original.onnx") / 2


def _prelu_graph(slope: np.ndarray, slope_is_input: bool = False) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])
    inputs = [x]
    initializers = []
    if slope_is_input:
        inputs.append(helper.make_tensor_value_info("slope", TensorProto.FLOAT, list(slope.shape)))
    else:
        initializers.append(numpy_helper.from_array(slope.astype(np.float32), "slope"))
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "slope"], ["y"])], "g", inputs, [y], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)


def test_prelu_rewrite_is_exact_and_leaves_other_prelus_alone() -> None:
    slope = np.array([0.25, -0.5, 2.0], np.float32).reshape(1, 3, 1, 1)
    model = _prelu_graph(slope)
    assert graphs.prelu_as_convs(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Relu", "Conv", "Relu", "Conv", "Add"]
    assert "slope" not in {i.name for i in model.graph.initializer}  # the old slope is dropped
    x = np.array([-3.0, -1e-30, 0.0, 1.5] * 3, np.float32).reshape(1, 3, 2, 2)
    got = _session(model.SerializeToString()).run(None, {"x": x})[0]
    assert np.array_equal(got, np.where(x > 0, x, x * slope))
    # a slope that is not a per-channel constant (here a graph input) is not rewritten
    dynamic = _prelu_graph(slope, slope_is_input=True)
    assert graphs.prelu_as_convs(dynamic) == 0 and [n.op_type for n in dynamic.graph.node] == ["PRelu"]


def _pad_graph(pads: list[int]) -> onnx.ModelProto:
    out = [1 + pads[0] + pads[4], 2 + pads[1] + pads[5], 3 + pads[2] + pads[6], 3 + pads[3] + pads[7]]
    graph = helper.make_graph(
        [helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        [numpy_helper.from_array(np.array(pads, np.int64), "pads")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=7)


def test_channel_pad_rewrite_is_exact_and_leaves_spatial_pads_alone() -> None:
    model = _pad_graph([0, 0, 0, 0, 0, 3, 0, 0])
    assert graphs.channel_pads_as_convs(model) == 1 and [n.op_type for n in model.graph.node] == ["Conv"]
    x = np.random.default_rng(0).normal(size=(1, 2, 3, 3)).astype(np.float32)
    got = _session(model.SerializeToString()).run(None, {"x": x})[0]
    assert got.shape == (1, 5, 3, 3) and np.array_equal(got[:, :2], x) and not got[:, 2:].any()
    spatial = _pad_graph([0, 0, 1, 1, 0, 0, 1, 1])
    assert graphs.channel_pads_as_convs(spatial) == 0 and [n.op_type for n in spatial.graph.node] == ["Pad"]


def test_the_rewrite_is_for_the_cpu_only() -> None:
    path = assets.model_path("face_landmark")
    on_cpu = graphs.for_device(path, "cpu")
    assert isinstance(on_cpu, bytes) and "PRelu" not in {n.op_type for n in onnx.load_from_string(on_cpu).graph.node}
    # on a GPU the converted graph runs as it is; without CUDA it is left for the session to report
    assert graphs.for_device(path, "cuda") == path
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DeviceError):
            runtime.create_session(graphs.for_device(path, "cuda"), device="cuda")
