"""Real OCIO transforms: the built-in studio config, its versioned name, and a model's own config."""
from __future__ import annotations

import re

import numpy as np
import onnx
import PyOpenColorIO as ocio
import pytest
from render_fixtures import FIRST, aligned_transform, make_plate, make_track
from render_models import build_identity_model

from facegraft.inference.errors import FaceGraftError, ModelFileError
from facegraft.inference.io import colour, exr, frames
from facegraft.inference.models import face_model
from facegraft.inference.render.renderer import render_shot
from facegraft.inference.render.settings import RenderSettings

RES = 64


def test_plate_to_model_round_trip_under_1e_4():
    rng = np.random.default_rng(0)
    rgb = np.concatenate([rng.uniform(0, 1, (64, 64, 3)), rng.uniform(1, 60, (64, 64, 3))]).astype(np.float32)
    log = colour.converter("ACEScg", "ACEScct")(rgb)
    back = colour.converter("ACEScct", "ACEScg")(log)
    assert np.max(np.abs(back - rgb) / np.maximum(rgb, 1.0)) < 1e-4
    # ACEScct is a log space: 18% grey sits near 0.41, and highlights stay below ~1.5.
    grey = colour.converter("ACEScg", "ACEScct")(np.full((1, 1, 3), 0.18, np.float32))
    assert abs(float(grey[0, 0, 0]) - 0.4135) < 1e-3
    assert float(log.max()) < 1.5


def test_converter_returns_a_new_array():
    rgb = np.full((2, 2, 3), 0.5, np.float32)
    out = colour.converter("ACEScg", "ACEScct")(rgb)
    assert np.all(rgb == 0.5) and not np.allclose(out, 0.5)


def test_roles_resolve_and_unknown_space_is_explained():
    assert colour.resolve_space("scene_linear") == "ACEScg"
    with pytest.raises(FaceGraftError, match="no colour space 'Kodak 2383'"):
        colour.converter("Kodak 2383", "ACEScg")


def test_display_picture_and_sanitize():
    rgb = np.array([[[0.18, 0.18, 0.18], [np.nan, np.inf, -np.inf]]], np.float32)
    clean = colour.sanitize(rgb)
    assert np.isfinite(clean).all() and clean[0, 1, 0] == 0
    shown = colour.to_display_uint8(rgb, "ACEScg")
    assert shown.dtype == np.uint8 and 100 < shown[0, 0, 0] < 130  # 18% grey encodes near 118
    toned = colour.to_display_uint8(rgb, "ACEScg", tone_map=True)
    assert toned.dtype == np.uint8


# -- configs: versioned names, the model's own config -------------------------------------------------
SHOW_CONFIG = """ocio_profile_version: 2
roles:
  aces_interchange: ACES2065-1
  default: ACES2065-1
  scene_linear: ACES2065-1
{extra_roles}
file_rules:
  - !<Rule> {{name: Default, colorspace: default}}
displays:
  sRGB:
    - !<View> {{name: Raw, colorspace: ACES2065-1}}
colorspaces:
  - !<ColorSpace>
    name: ACES2065-1
  - !<ColorSpace>
    name: Half AP0
    from_scene_reference: !<MatrixTransform> {{matrix: [0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1]}}
"""


def _show_config(path, interchange=True):
    text = SHOW_CONFIG.format(extra_roles="")
    if not interchange:
        text = text.replace("  aces_interchange: ACES2065-1\n", "")
    path.write_text(text)
    return str(path)


def test_the_latest_alias_resolves_to_the_versioned_builtin():
    resolved = colour.resolve_config("ocio://studio-config-latest")
    assert resolved == ocio.ResolveConfigPath("ocio://studio-config-latest")
    assert re.fullmatch(r"ocio://studio-config-v\d+\.\d+\.\d+_aces-v[\d.]+_ocio-v[\d.]+", resolved), resolved
    assert not colour.is_versioned("ocio://studio-config-latest") and colour.is_versioned(resolved)
    assert colour.resolve_config(resolved) == resolved and colour.resolve_config("/shows/x.ocio") == "/shows/x.ocio"
    assert colour.load_config("ocio://studio-config-latest") is colour.load_config(resolved)


def test_a_builtin_this_ocio_does_not_have_is_explained():
    with pytest.raises(FaceGraftError, match="cannot load the OCIO config") as err:
        colour.load_config("ocio://studio-config-v99.0.0_aces-v9.9_ocio-v9.9")
    assert "install a matching OpenColorIO" in (err.value.hint or "")


def test_conversion_between_two_configs_goes_through_their_interchange_space(tmp_path):
    show = _show_config(tmp_path / "show.ocio")
    rgb = np.random.default_rng(1).uniform(0.0, 4.0, (8, 8, 3)).astype(np.float32)
    to_show = colour.converter("ACEScg", "Half AP0", colour.DEFAULT_CONFIG, show)
    expected = colour.converter("ACEScg", "ACES2065-1")(rgb) * 0.5  # AP0, halved by the show's space
    np.testing.assert_allclose(to_show(rgb), expected, rtol=1e-5, atol=1e-6)
    back = colour.converter("Half AP0", "ACEScg", show, colour.DEFAULT_CONFIG)
    np.testing.assert_allclose(back(to_show(rgb)), rgb, rtol=1e-4, atol=1e-5)


def test_configs_without_interchange_roles_are_not_bridged(tmp_path):
    bare = _show_config(tmp_path / "bare.ocio", interchange=False)
    with pytest.raises(FaceGraftError, match="cannot convert 'ACEScg' .* to 'Half AP0'") as err:
        colour.converter("ACEScg", "Half AP0", colour.DEFAULT_CONFIG, bare)
    assert "interchange roles" in (err.value.hint or "")


def _model_in(tmp_path, config, colorspace="Half AP0", shift=(0.05, 0.0, 0.0), name="m.onnx"):
    """A model stamped with ``config``; then the metadata set as given (the hash ignores metadata)."""
    path = build_identity_model(tmp_path / name, RES, shift=list(shift), colorspace="ACEScct")
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "facegraft.ocio_config":
            prop.value = config
        if prop.key == "facegraft.colorspace":
            prop.value = colorspace
    onnx.save(model, str(path))
    return path


def test_a_render_honours_the_models_own_config(tmp_path):
    show = _show_config(tmp_path / "show.ocio")
    model = face_model.load(_model_in(tmp_path, show), device="cpu")  # "Half AP0" exists only in show.ocio
    plate = make_plate(tmp_path / "plate", frames=[FIRST])
    track = make_track([FIRST], aligned_transform(RES, "whole_face", (64, 40)))
    out = str(tmp_path / "r.####.exr")
    settings = RenderSettings(erode=0.0, feather=0.0, color_match="none", blend="alpha")
    render_shot(frames.open_source(plate), track, model, out, settings)
    o, p = exr.read_image(out.replace("####", f"{FIRST}")), exr.read_image(plate.replace("####", f"{FIRST}"))
    inside = o.get(["swap.A"])[..., 0] > 0.999
    assert inside.sum() > 100
    # the model added 0.05 to red in its space: half AP0 of the render's config
    to_model = colour.converter("ACEScg", "ACES2065-1")
    expected = colour.converter("ACES2065-1", "ACEScg")((to_model(p.rgb()[inside]) * 0.5 + [0.05, 0, 0]) / 0.5)
    np.testing.assert_allclose(o.rgb()[inside], expected, rtol=2e-3, atol=2e-3)


def test_a_model_config_that_cannot_be_used_here_is_refused(tmp_path):
    missing = _model_in(tmp_path, str(tmp_path / "gone.ocio"), name="missing.onnx")
    with pytest.raises(ModelFileError, match="colour space 'Half AP0' of OCIO config .*gone.ocio cannot be used") as err:
        face_model.load(missing, device="cpu")
    assert err.value.path == str(missing)
    future = _model_in(tmp_path, "ocio://studio-config-v99.0.0_aces-v9.9_ocio-v9.9", "ACEScct", name="future.onnx")
    with pytest.raises(ModelFileError, match="cannot be used here") as err:
        face_model.load(future, device="cpu")
    assert "OpenColorIO" in (err.value.hint or "")


def test_a_model_stamped_with_the_alias_is_read_as_this_ocios_latest_and_says_so(tmp_path):
    model = face_model.load(_model_in(tmp_path, "ocio://studio-config-latest", "ACEScct"), device="cpu")
    assert model.warnings == [f"the model records the OCIO config alias ocio://studio-config-latest, read as "
                              f"{colour.resolve_config('ocio://studio-config-latest')} with this OpenColorIO; "
                              f"re-export it to pin the version"]


def test_own_spaces_bridge_into_a_show_config_that_lacks_them() -> None:
    """Nuke's built-in cg-config has no 'sRGB Encoded Rec.709 (sRGB)': detection still gets the
    plate's sRGB encoding, through the interchange roles into FaceGraft's reference config."""
    cg = "ocio://cg-config-v2.1.0_aces-v1.3_ocio-v2.3"
    assert colour.load_config(cg).getColorSpace(colour.SRGB_ENCODED) is None
    linear = np.array([[[0.18, 0.18, 0.18], [1.0, 0.5, 0.25]]], np.float32)
    in_show = colour.converter("ACEScg", colour.SRGB_ENCODED, cg)(linear)
    in_reference = colour.converter("ACEScg", colour.SRGB_ENCODED)(linear)
    np.testing.assert_allclose(in_show, in_reference, atol=1e-4)
    assert 0.45 < float(in_show[0, 0, 0]) < 0.5  # mid grey encodes near 0.46


def test_a_space_the_user_names_is_never_looked_up_elsewhere() -> None:
    cg = "ocio://cg-config-v2.1.0_aces-v1.3_ocio-v2.3"
    with pytest.raises(FaceGraftError, match="no colour space 'ACEScg typo'"):
        colour.converter("ACEScg typo", colour.SRGB_ENCODED, cg)
