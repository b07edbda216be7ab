"""DeepFaceLab .dfm models load through the adapter and follow the FaceGraft contract."""
from __future__ import annotations

import dfl_reference
import numpy as np
import onnx
import pytest
from render_fixtures import FIRST, OVERSCAN, make_plate, make_track, rotated_transform
from render_models import build_dfm_model, build_identity_model

from facegraft.inference.errors import ModelFileError
from facegraft.inference.io import exr, frames
from facegraft.inference.models import dfm, face_model, formats, modelfile
from facegraft.inference.render.renderer import render_shot
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import align


def test_dfm_info(tmp_path):
    path = build_dfm_model(tmp_path / "actor.dfm", res=32)
    info = formats.read_info(path)
    assert info.kind == "dfm"
    assert info.resolution == 32
    assert info.coverage == "whole_face"
    assert info.template == align.DFL_WHOLE_FACE == "deepfacelab-wf"
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
    path = build_dfm_model(tmp_path / "actor.dfm", res=16)
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[3].dim_value = 4
    onnx.save(model, str(tmp_path / "bad.dfm"))
    with pytest.raises(ModelFileError, match="expected \\[N,R,R,3\\]"):
        formats.read_info(tmp_path / "bad.dfm")


def test_each_format_is_read_by_its_own_adapter(tmp_path):
    dfm_graph = onnx.load(str(build_dfm_model(tmp_path / "actor.dfm", res=16)))
    facegraft_graph = onnx.load(str(build_identity_model(tmp_path / "m.onnx", res=16)))
    assert formats.adapter_for(dfm_graph) is dfm.ADAPTER
    assert formats.adapter_for(facegraft_graph) is modelfile.ADAPTER
    with pytest.raises(ModelFileError, match="not a DeepFaceLab model"):
        dfm.info_from_proto(facegraft_graph, "m.onnx")
    # DeepFaceLab's names with FaceGraft metadata: the metadata decides
    dfm_graph.metadata_props.add(key="facegraft.format_version", value="1")
    assert formats.adapter_for(dfm_graph) is modelfile.ADAPTER


def test_the_adapter_packs_nchw_rgb_as_nhwc_bgr_and_back():
    faces = np.random.default_rng(3).uniform(-0.5, 1.5, (2, 3, 4, 4)).astype(np.float32)
    packed = dfm.ADAPTER.pack(faces)
    assert packed.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(packed[..., 0], np.clip(faces[:, 2], 0, 1))  # blue first, clipped
    half = np.full((2, 4, 4, 1), 0.5, np.float32)
    swap, mask = dfm.ADAPTER.unpack([packed, half, half])
    np.testing.assert_array_equal(swap, np.clip(faces, 0, 1))
    np.testing.assert_array_equal(mask, 0.25)  # the product of the masks


def test_dfm_renders_with_deepfacelabs_own_crop(tmp_path):
    """The STMap of a .dfm render says where each plate pixel sits in the model's crop: it is
    DeepFaceLab's whole-face crop of the tracked landmarks, not FaceGraft's."""
    res = 48
    plate = make_plate(tmp_path / "plate", frames=[FIRST])
    track = make_track([FIRST], rotated_transform((96.0, 70.0), 60.0, 12.0))
    model = face_model.load(build_dfm_model(tmp_path / "actor.dfm", res), device="cpu")
    out = str(tmp_path / "r.####.exr")
    report = render_shot(frames.open_source(plate), track, model, out, RenderSettings(feather=0.0, erode=0.0))
    assert report.rendered == [FIRST]
    image = exr.read_image(out.replace("####", f"{FIRST:04d}"))
    st, alpha = image.get(["stmap.R", "stmap.G"]), image.get(["swap.A"])[..., 0]
    # DeepFaceLab's matrix from the 68 points (its pixel convention: centres at 0, ours at 0.5)
    mesh = track.face(FIRST).landmarks[:, :2]
    lm68 = np.full((68, 2), np.nan)
    for i68, i_mesh in align.MESH_OF_68.items():
        lm68[i68] = mesh[i_mesh] - 0.5
    matrix = dfl_reference.whole_face_matrix(lm68, res)
    rows, cols = np.nonzero(alpha > 0.5)
    assert len(rows) > 1000  # the face was composited
    display = np.column_stack([cols - OVERSCAN[0], rows - OVERSCAN[1]]).astype(np.float64)  # pixel indices
    crop = display @ matrix[:, :2].T + matrix[:, 2] + 0.5  # continuous crop position of each pixel centre
    np.testing.assert_allclose(st[rows, cols, 0], crop[:, 0] / res, atol=2e-4)
    np.testing.assert_allclose(st[rows, cols, 1], 1.0 - crop[:, 1] / res, atol=2e-4)
    # FaceGraft's own whole-face crop would put the pixels elsewhere
    fg = align.crop_matrix(track.face(FIRST).transform, res, "whole_face")
    fg_crop = (display + 0.5) @ fg[:, :2].T + fg[:, 2]
    assert np.abs(fg_crop - crop).max() > 3.0  # crop pixels
