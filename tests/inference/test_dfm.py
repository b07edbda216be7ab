"""DeepFaceLab .dfm models load through the adapter and follow the FaceGraft contract."""
from __future__ import annotations

import numpy as np
import pytest
from render_models import build_dfm_model

from facegraft.inference.errors import ModelFileError
from facegraft.inference.models import dfm, face_model, modelfile


def test_dfm_info(tmp_path):
    path = build_dfm_model(tmp_path / "actor.dfm", res=32)
    info = modelfile.read_info(path)
    assert info.kind == "dfm"
    assert info.resolution == 32
    assert info.coverage == "whole_face"
    assert info.colorspace == dfm.COLORSPACE
    assert info.input_name == "in_face:0"
    assert info.output_names == ("out_celeb_face:0", "out_celeb_face_mask:0")


@pytest.mark.parametrize("masks", [("out_celeb_face_mask:0",), ("out_face_mask:0",),
                                   ("out_celeb_face_mask:0", "out_face_mask:0")])
def test_dfm_runs_as_nchw_rgb(tmp_path, masks):
    # the shift is given in the model's own BGR order: +0.2 on blue only
    path = build_dfm_model(tmp_path / "actor.dfm", res=16, shift=[0.2, 0.0, 0.0], masks=masks, morph=True)
    model = face_model.load(path, device="cpu")
    assert model.info.extra_inputs == {"morph_value:0": dfm.DEFAULT_MORPH}
    faces = np.random.default_rng(0).uniform(0.0, 0.7, (3, 3, 16, 16)).astype(np.float32)
    swap, mask = model.run(faces)
    assert swap.shape == (3, 3, 16, 16) and mask.shape == (3, 1, 16, 16)
    np.testing.assert_allclose(swap[:, :2], faces[:, :2], atol=1e-6)
    np.testing.assert_allclose(swap[:, 2], faces[:, 2] + 0.2, atol=1e-6)
    np.testing.assert_array_equal(mask, 1.0)


def test_dfm_wrong_input_shape(tmp_path):
    import onnx

    path = build_dfm_model(tmp_path / "actor.dfm", res=16)
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[3].dim_value = 4
    onnx.save(model, str(tmp_path / "bad.dfm"))
    with pytest.raises(ModelFileError, match="expected \\[N,R,R,3\\]"):
        modelfile.read_info(tmp_path / "bad.dfm")
