"""The face model file contract: stamping, reading, and clear refusals."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from render_models import build_identity_model

from facegraft.inference.errors import ModelFileError
from facegraft.inference.io import colour
from facegraft.inference.models import face_model, formats, modelfile, onnx_graph


def test_stamp_and_read_round_trip(tmp_path):
    path = build_identity_model(tmp_path / "m.onnx", res=32, coverage="face", colorspace="ACEScct")
    info = formats.read_info(path)
    assert info.kind == "facegraft"
    assert (info.resolution, info.coverage, info.colorspace) == (32, "face", "ACEScct")
    assert (info.source, info.target) == ("source_actor", "plate_actor")
    assert info.provenance["steps"] == 0 and "facegraft_version" in info.provenance
    assert info.template == "facegraft-5pt-v1"
    # the OCIO config is recorded by its versioned name, not the alias that changes with OCIO
    assert info.ocio_config == colour.resolve_config(colour.DEFAULT_CONFIG) != colour.DEFAULT_CONFIG
    assert info.ocio_config.startswith("ocio://studio-config-v")
    assert info.input_name == "face" and info.output_names == ("swap", "mask")
    assert info.batch is None
    assert info.content_hash == onnx_graph.content_hash(onnx.load(str(path)))
    json.dumps(info.as_dict())


def test_hash_ignores_metadata_and_sees_weights(tmp_path):
    path = build_identity_model(tmp_path / "a.onnx", res=16, shift=[0.1, 0, 0])
    other = build_identity_model(tmp_path / "b.onnx", res=16, shift=[0.2, 0, 0], source="someone_else")
    same = build_identity_model(tmp_path / "c.onnx", res=16, shift=[0.1, 0, 0], source="someone_else")
    a, b, c = (formats.read_info(p).content_hash for p in (path, other, same))
    assert a != b and a == c


def test_not_onnx(tmp_path):
    bad = tmp_path / "face.onnx"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a model at all" * 10)
    with pytest.raises(ModelFileError, match="not an ONNX model") as err:
        formats.read_info(bad)
    assert err.value.path == str(bad) and err.value.exit_code == 5


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        formats.read_info(tmp_path / "nope.onnx")


def test_no_metadata(tmp_path):
    path = build_identity_model(tmp_path / "m.onnx", res=16)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelFileError, match="no FaceGraft metadata"):
        formats.read_info(tmp_path / "bare.onnx")


def _edit_meta(path, out, key, value):
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize("key, value, message", [
    ("facegraft.format_version", "9", "version 9 is not supported"),  # unsupported version
    ("facegraft.resolution", "32", "resolution 32"),  # disagrees with the graph's shapes
])
def test_metadata_the_file_cannot_honour_is_refused(tmp_path, key, value, message):
    path = build_identity_model(tmp_path / "m.onnx", res=16)
    edited = _edit_meta(path, tmp_path / "edited.onnx", key, value)
    with pytest.raises(ModelFileError, match=message):
        formats.read_info(edited)


def test_stamp_refuses_wrong_shapes(tmp_path):
    path = build_identity_model(tmp_path / "m.onnx", res=16)
    with pytest.raises(ModelFileError, match="expected \\[N,3,24,24\\]"):
        modelfile.stamp(onnx.load(str(path)), resolution=24, coverage="whole_face", colorspace="ACEScct",
                        source="a", target="b")
    with pytest.raises(ModelFileError, match="unknown coverage"):
        modelfile.stamp(onnx.load(str(path)), resolution=16, coverage="torso", colorspace="ACEScct",
                        source="a", target="b")
    with pytest.raises(ModelFileError, match="crop template 'deepfacelab-wf' with coverage 'head'"):
        modelfile.stamp(onnx.load(str(path)), resolution=16, coverage="head", colorspace="ACEScct",
                        source="a", target="b", template="deepfacelab-wf")


def test_tampered_weights_detected(tmp_path):
    path = build_identity_model(tmp_path / "m.onnx", res=16, shift=[0.1, 0.1, 0.1])
    model = onnx.load(str(path))
    init = next(t for t in model.graph.initializer if t.name == "shift")
    init.CopyFrom(onnx.numpy_helper.from_array(np.full((1, 3, 1, 1), 0.5, np.float32), "shift"))
    onnx.save(model, str(tmp_path / "t.onnx"))
    with pytest.raises(ModelFileError, match="content hash"):
        formats.read_info(tmp_path / "t.onnx")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_face_model_runs_any_batch(tmp_path, dtype):
    path = build_identity_model(tmp_path / "m.onnx", res=16, shift=[0.25, 0.0, -0.25], dtype=dtype)
    model = face_model.load(path, device="cpu", batch=3)
    faces = np.random.default_rng(1).random((5, 3, 16, 16), dtype=np.float32)
    swap, mask = model.run(faces)
    assert swap.shape == (5, 3, 16, 16) and mask.shape == (5, 1, 16, 16)
    assert swap.dtype == np.float32
    tol = 2e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(swap, faces + np.array([0.25, 0, -0.25], np.float32)[None, :, None, None], atol=tol)
    np.testing.assert_array_equal(mask, 1.0)
    # a frame's result does not depend on the frames batched with it
    alone, _ = model.run(faces[3:4])
    np.testing.assert_array_equal(alone, swap[3:4])


def test_fixed_batch_model_is_padded(tmp_path):
    path = build_identity_model(tmp_path / "m.onnx", res=16, batch=2)
    model = face_model.load(path, device="cpu", batch=8)
    assert model.batch == 2
    faces = np.random.default_rng(2).random((3, 3, 16, 16), dtype=np.float32)
    swap, _ = model.run(faces)
    np.testing.assert_allclose(swap, faces, atol=1e-6)
