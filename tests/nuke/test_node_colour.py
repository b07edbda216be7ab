"""Colour from the script: the OCIO config and working space Nuke uses, the plate's space from its Read, the
CLI told both, and the swap brought back into the working space -- checked with real OCIO transforms on
an ACES script (a plate read as ACES2065-1) and a nuke-default script (legacy colour management)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nk_graph
import nuke
import numpy as np
import PyOpenColorIO as ocio
import pytest
import scenes
from facegraft_nuke import colour, commands, node_settings, nodes, paths, rendering
from facegraft_nuke.errors import NodeError
from nuke_support import build_facegraft, plate_read, save_script

from facegraft.cli.main import build_parser

NUKE_DEFAULT = """ocio_profile_version: 2
roles:
  default: linear
  scene_linear: linear
  reference: linear
  color_picking: sRGB
  data: raw
file_rules:
  - !<Rule> {name: Default, colorspace: linear}
displays:
  sRGB:
    - !<View> {name: Film, colorspace: sRGB}
active_displays: []
active_views: []
colorspaces:
  - !<ColorSpace>
    name: linear
  - !<ColorSpace>
    name: sRGB
    to_scene_reference: !<ExponentWithLinearTransform> {gamma: 2.4, offset: 0.055}
  - !<ColorSpace>
    name: raw
    isdata: true
"""


def nuke_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Nuke install whose nuke-default config is a small OCIO config with the same names."""
    exe = tmp_path / "Nuke16.0v1" / "Nuke16.0"
    config = exe.parent / "plugins" / "OCIOConfigs" / "configs" / "nuke-default" / "config.ocio"
    config.parent.mkdir(parents=True)
    config.write_text(NUKE_DEFAULT)
    monkeypatch.setattr(nuke, "EXE_PATH", str(exe))
    return config


def nuke_default_script() -> None:
    root = nuke.root()
    root["colorManagement"].setValue("Nuke")
    root["OCIO_config"].setValue("nuke-default")
    root["workingSpaceLUT"].setValue("linear")


def aces_script(config: str = "fn-nuke_studio-config-v2.1.0_aces-v1.3_ocio-v2.3") -> None:
    root = nuke.root()
    root["colorManagement"].setValue("OCIO")
    root["OCIO_config"].setValue(config)
    root["workingSpaceLUT"].setValue("scene_linear (ACEScg)")


def test_colour_space_names_as_knobs_show_them() -> None:
    for shown, name in (("default (linear)", "linear"), ("scene_linear (ACES - ACEScg)", "ACES - ACEScg"),
                        ("default (scene_linear (ACEScg))", "ACEScg"), ("ACES2065-1", "ACES2065-1"),
                        ("Output - sRGB (D60 sim.)", "Output - sRGB (D60 sim.)"),
                        ("Input - ARRI - V3 LogC (EI800) - Wide Gamut", "Input - ARRI - V3 LogC (EI800) - Wide Gamut")):
        assert colour.plain_space(shown) == name, shown


def test_the_script_config_is_found_where_nuke_keeps_it(fake: object, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    installed = nuke_install(tmp_path, monkeypatch)
    nuke_default_script()
    assert colour.script_config() == str(installed) and colour.working_space() == "linear"
    aces_script("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    assert colour.script_config() == "ocio://cg-config-v1.0.0_aces-v1.3_ocio-v2.1"
    assert colour.working_space() == "ACEScg"
    aces_script("aces_1.2")
    assert colour.script_config() == str(installed.parent.parent / "aces_1.2" / "config.ocio")
    with pytest.raises(NodeError, match="aces_1.2/config.ocio was not found"):
        colour.check_config(colour.script_config())
    aces_script("custom")
    monkeypatch.setenv("SHOW_CONFIGS", str(tmp_path / "show"))
    nuke.root()["customOCIOConfigPath"].setValue("[getenv SHOW_CONFIGS]/config.ocio")
    assert colour.script_config() == f"{tmp_path}/show/config.ocio"
    monkeypatch.setenv("OCIO", "/studio/ocio/config.ocio")  # Nuke then uses $OCIO, and so does FaceGraft
    assert colour.script_config() == "/studio/ocio/config.ocio"


def _node(tmp_path: Path, read: nuke.Node) -> nuke.Gizmo:
    save_script(tmp_path / "comp" / "sh010_comp_v001.nk", 1001, 1003)
    model = tmp_path / "face.onnx"
    model.write_bytes(b"only its existence is checked here")
    node = nuke.createNode("FaceGraft")
    node.setInput(0, read)
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    return node


def test_the_cli_gets_the_plate_space_of_the_read_and_the_script_config(fake: object, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    installed = nuke_install(tmp_path, monkeypatch)
    aces_script()
    read = plate_read(str(tmp_path / "plates" / "sh010.####.exr"), 1001, 1003, colorspace="ACES2065-1")
    node = _node(tmp_path, read)
    chosen = node_settings.read(node)
    parsed = build_parser().parse_args(commands.render_argv(chosen)[len(chosen.cli):])
    assert (parsed.plate_colorspace, parsed.ocio_config) == ("ACES2065-1", "ocio://studio-config-v2.1.0_aces-v1.3_ocio-v2.3")
    read["colorspace"].setValue("default")
    assert node_settings.read(node).plate_colorspace == "ACEScg"  # the script's default for float files
    node.setInput(0, nuke.Node("Grade", "Grade1"))  # cached through the node's Write: the working space
    assert node_settings.read(node).plate_colorspace == "ACEScg"
    node["plate_colorspace"].setValue("ACEScct")  # the knob says what the stream holds
    node["ocio_config"].setValue("/shows/x/config.ocio")
    chosen = node_settings.read(node)
    assert (chosen.plate_colorspace, chosen.ocio_config) == ("ACEScct", "/shows/x/config.ocio")
    nuke_default_script()
    node["plate_colorspace"].setValue("")
    node["ocio_config"].setValue("")
    track = build_parser().parse_args(commands.track_argv(node_settings.read(node))[len(chosen.cli):])
    assert (track.plate_colorspace, track.ocio_config) == ("linear", str(installed))


def _to(config: str, source: str, target: str):  # type: ignore[no-untyped-def]
    processor = ocio.Config.CreateFromFile(config).getProcessor(source, target).getDefaultCPUProcessor()

    def convert(rgb: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(rgb, np.float32).copy()
        processor.applyRGB(out.reshape(-1, 3))
        return out
    return convert


@pytest.mark.parametrize("script", ["aces", "nuke-default"])
def test_the_swap_comes_back_in_the_working_space(fake: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  script: str) -> None:
    """The plate is on disk in another space than the working one (ACES2065-1 in an ACEScg script, sRGB in a
    linear one): FaceGraft renders in the plate's space, and the node converts the swap (unpremultiplied)
    into the working space before it merges it over the stream, which Nuke's Read converted the same way."""
    installed = nuke_install(tmp_path, monkeypatch)
    if script == "aces":
        aces_script()
        config, disk, working = "ocio://studio-config-v2.1.0_aces-v1.3_ocio-v2.3", "ACES2065-1", "ACEScg"
    else:
        nuke_default_script()
        config, disk, working = str(installed), "sRGB", "linear"
    to_disk = _to(config, working, disk)
    pattern = str(tmp_path / "plates" / "sh010.####.exr")
    for frame in range(1001, 1004):  # the plate on disk, in its own space
        pixels = scenes.plate_pixels(frame)
        rgb = to_disk(np.stack([pixels[c] for c in "RGB"], -1))
        for index, c in enumerate("RGB"):
            pixels[c] = rgb[..., index]
        nk_graph.write_exr(scenes.frame_file(pattern, frame),
                           {nk_graph.nuke_channel(k): v for k, v in pixels.items()},
                           [nk_graph.nuke_channel(k) for k in pixels])
    read = plate_read(pattern, 1001, 1003, colorspace=disk)
    node = _node(tmp_path, read)
    chosen = node_settings.read(node)
    assert chosen.plate_colorspace == disk
    scenes.write_render(chosen.out, range(1001, 1004), convert=to_disk)
    rendering.show_render(node, chosen.plate_colorspace, rendering.Rendered(chosen.out, 1001, 1003))
    convert = node.node(nodes.SWAP_COLOUR)
    assert (convert["in_colorspace"].value(), convert["out_colorspace"].value()) == (disk, working)

    graph = nk_graph.Renderer(nk_graph.Scene(scenes.WIDTH, scenes.HEIGHT, config, working))
    out, stream = graph.render(node, 1002), graph.render(read, 1002)
    matte = scenes.face_matte()
    face = [0.8 + 0.02, 0.4, 0.3]  # the render's face colour in the working space (scenes.render_pixels)
    for index, channel in enumerate(("red", "green", "blue")):
        expected = face[index] * matte + stream[f"rgba.{channel}"] * (1 - matte)
        np.testing.assert_allclose(out[f"rgba.{channel}"], expected, atol=4e-3, rtol=4e-3)
    convert["in_colorspace"].setValue(working)  # what the node showed when it ignored the plate's space
    ignored = graph.render(node, 1002)
    assert np.abs(ignored["rgba.red"] - out["rgba.red"])[matte > 0.9].min() > 0.05

    # a script reopened: the gizmo's internals come from the gizmo file, onCreate points them again
    reopened = build_facegraft("FaceGraft9")
    for name in ("node_id", "render_colorspace", "rendered", "rendered_first", "rendered_last"):
        reopened[name].setValue(node[name].value())
    assert reopened.node(nodes.SWAP_COLOUR)["in_colorspace"].value() == "scene_linear"
    nuke.run_callbacks("OnCreate", reopened)
    assert reopened.node(nodes.SWAP_COLOUR)["in_colorspace"].value() == disk
    assert reopened.node(nodes.SWAP_COLOUR)["out_colorspace"].value() == working


def test_a_script_config_that_cannot_be_found_is_named(fake: object, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    nuke_install(tmp_path, monkeypatch)
    aces_script("aces_1.2")
    node = _node(tmp_path, nuke.Node("Grade", "Grade1"))
    with pytest.raises(NodeError, match="aces_1.2/config.ocio was not found.*'OCIO config' knob"):
        node_settings.read(node)
    assert os.path.isdir(paths.tcl_dirname(str(tmp_path / "comp" / "x.nk")))
