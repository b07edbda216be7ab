"""FaceGraftApply: a delivered FaceGraft render comped onto the live plate in Nuke nodes (no CLI, no model),
rendered through the graph from real EXRs: the merge, the grade, the edge, the holdout, the mix."""
from __future__ import annotations

from pathlib import Path

import nk_graph
import nuke
import numpy as np
import pytest
import scenes
from facegraft_nuke import apply
from facegraft_nuke.errors import NodeError
from nuke_support import plate_read, save_script

SCENE = nk_graph.Scene(scenes.WIDTH, scenes.HEIGHT, "ocio://studio-config-latest", "scene_linear")
RGB = ["rgba.red", "rgba.green", "rgba.blue"]


def _scene(tmp_path: Path) -> tuple[nuke.Gizmo, nuke.Node, str]:
    save_script(tmp_path / "comp" / "sh010_comp_v001.nk", 1001, 1005)
    plate = scenes.write_plate(str(tmp_path / "plates" / "sh010.####.exr"), range(1001, 1006))
    delivered = str(tmp_path / "delivery" / "sh010_facegraft.####.exr")
    scenes.write_render(delivered, range(1002, 1005))
    read = plate_read(plate, 1001, 1005)
    node = nuke.createNode("FaceGraftApply")
    node.setInput(0, read)
    node["file"].setValue(delivered + " 1002-1004")  # as Nuke's file browser hands a sequence over
    nuke.set_this(node, node["file"])
    apply.knob_changed(node, node["file"])
    return node, read, delivered


def _render(node: nuke.Node, frame: int) -> tuple[nk_graph.Image, nk_graph.Image, nk_graph.Image]:
    graph = nk_graph.Renderer(SCENE)
    delivered = nk_graph.read_exr(scenes.frame_file(node["file"].value(), frame), scenes.WIDTH, scenes.HEIGHT) \
        if frame in range(int(node["first_frame"].value()), int(node["last_frame"].value()) + 1) else {}
    return graph.render(node, frame), graph.render(node.input(0), frame), delivered


def test_defaults_reproduce_the_delivered_composite_on_the_live_plate(fake: object, tmp_path: Path) -> None:
    node, read, delivered = _scene(tmp_path)
    assert (node["file"].value(), node["first_frame"].value(), node["last_frame"].value()) == (delivered, 1002, 1004)
    out, stream, render = _render(node, 1003)
    for channel in ("red", "green", "blue"):
        np.testing.assert_allclose(out[f"rgba.{channel}"], render[f"rgba.{channel}"], atol=2e-3)
    np.testing.assert_allclose(out["swap.alpha"], render["swap.alpha"], atol=1e-6)
    np.testing.assert_array_equal(out["stmap.red"], render["stmap.red"])
    np.testing.assert_array_equal(out["depth.Z"], stream["depth.Z"])
    for frame in (1001, 1005):  # outside the delivered frames: the plate, untouched
        out, stream, _ = _render(node, frame)
        for channel in RGB + ["depth.Z", "crypto00.red"]:
            np.testing.assert_array_equal(out[channel], stream[channel])
        assert "swap.red" not in out or not out["swap.red"].any()


def test_grade_gain_and_offset_act_on_the_swap_only(fake: object, tmp_path: Path) -> None:
    node, _, _ = _scene(tmp_path)
    node["gain"].setValue([2.0, 1.0, 0.5])
    node["offset"].setValue([0.1, 0.0, 0.0])
    out, stream, render = _render(node, 1003)
    alpha = render["swap.alpha"]
    colour = {c: np.where(alpha > 0, render[f"swap.{c}"] / np.where(alpha > 0, alpha, 1), 0) for c in ("red", "green", "blue")}
    graded = {"red": colour["red"] * 2.0 + 0.1, "green": colour["green"], "blue": colour["blue"] * 0.5}
    for channel in ("red", "green", "blue"):
        expected = graded[channel] * alpha + stream[f"rgba.{channel}"] * (1 - alpha)
        np.testing.assert_allclose(out[f"rgba.{channel}"], expected, atol=1e-5)
    off = alpha == 0
    np.testing.assert_array_equal(out["rgba.red"][off], stream["rgba.red"][off])


def test_erode_and_feather_tighten_the_edge_inside_the_rendered_matte(fake: object, tmp_path: Path) -> None:
    node, _, _ = _scene(tmp_path)
    node["erode"].setValue(2.0)
    node["feather"].setValue(3.0)
    out, stream, render = _render(node, 1003)
    matte, rendered = out["swap.alpha"], render["swap.alpha"]
    assert (matte <= rendered + 1e-6).all() and matte.sum() < 0.8 * rendered.sum()
    assert matte.max() > 0.9  # the core of the face stays
    off = rendered == 0
    np.testing.assert_array_equal(out["rgba.red"][off], stream["rgba.red"][off])


def test_holdout_channel_and_mix(fake: object, tmp_path: Path) -> None:
    node, _, _ = _scene(tmp_path)
    pattern = str(tmp_path / "roto" / "hands.####.exr")
    for frame in range(1001, 1006):
        holdout = np.zeros((scenes.HEIGHT, scenes.WIDTH), np.float32)
        holdout[:, : scenes.WIDTH // 2] = 1.0
        nk_graph.write_exr(scenes.frame_file(pattern, frame), {"rgba.red": holdout, "rgba.alpha": holdout[:, ::-1]},
                           ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"])
    node.setInput(1, plate_read(pattern, 1001, 1005, name="Roto1"))
    out, stream, _ = _render(node, 1003)  # alpha: the right half is held out
    right = slice(scenes.WIDTH // 2, None)
    np.testing.assert_array_equal(out["rgba.red"][:, right], stream["rgba.red"][:, right])
    assert not np.array_equal(out["rgba.red"][:, : scenes.WIDTH // 2], stream["rgba.red"][:, : scenes.WIDTH // 2])
    node["holdout_channel"].setValue("red")  # now the left half
    out, stream, _ = _render(node, 1003)
    np.testing.assert_array_equal(out["rgba.red"][:, : scenes.WIDTH // 2], stream["rgba.red"][:, : scenes.WIDTH // 2])
    node.setInput(1, None)
    node["mix"].setValue(0.0)
    out, stream, _ = _render(node, 1003)
    np.testing.assert_array_equal(out["rgba.red"], stream["rgba.red"])


def test_no_file_passes_the_plate_through_and_the_range_comes_from_disk(fake: object, tmp_path: Path) -> None:
    node, read, delivered = _scene(tmp_path)
    node["file"].setValue("")
    graph = nk_graph.Renderer(SCENE)
    assert graph.render(node, 1003).keys() == graph.render(read, 1003).keys()
    assert not [r for r in graph.reads if "delivery" in r[0]]  # the render is not even opened
    node["file"].setValue(delivered)
    apply.knob_changed(node, node["file"])
    assert [node["first_frame"].value(), node["last_frame"].value()] == [1002, 1004]
    node["file"].setValue(str(tmp_path / "nowhere" / "r.####.exr"))
    with pytest.raises(NodeError, match="no frames"):
        apply.detect_range(node)


def test_the_render_colour_space_is_applied_on_load_and_when_changed(fake: object, tmp_path: Path) -> None:
    node, _, _ = _scene(tmp_path)
    convert = node.node("SwapColour")
    assert (convert["in_colorspace"].value(), convert["out_colorspace"].value()) == ("scene_linear", "scene_linear")
    node["render_colorspace"].setValue("ACES2065-1")
    apply.knob_changed(node, node["render_colorspace"])
    assert convert["in_colorspace"].value() == "ACES2065-1"
    convert["in_colorspace"].setValue("scene_linear")  # reopening the script resets gizmo internals
    nuke.run_callbacks("OnCreate", node)
    assert convert["in_colorspace"].value() == "ACES2065-1"
