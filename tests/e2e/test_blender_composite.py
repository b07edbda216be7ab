"""FaceGraft's layers composited in a third-party compositor (Blender) match FaceGraft's own composite.

Blender's Image node reads ``layer.pass.channel`` multilayer EXRs, not single-part ``swap.R``
layers, so the swap layer is written to its own RGBA EXR (exr_io) before Blender loads it.
Blender's Alpha Over (premultiplied foreground) of swap over plate must give the composite
R,G,B within half-float precision.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegraft.inference import exr_io

bpy = pytest.importorskip("bpy", reason="Blender as a module (pip install bpy, Python 3.11) is not installed")

H, W = 72, 128


def render_like_exr(path: Path) -> None:
    """A render-shaped EXR: R,G,B,A composite, swap.R/G/B/A premultiplied, matte.face."""
    rng = np.random.default_rng(7)
    plate = (rng.random((H, W, 3)) * 6 - 1).astype(np.float16)  # above 1 and negative, as plates are
    yy, xx = np.mgrid[0:H, 0:W]
    matte = np.clip(1.2 - np.hypot((xx - W / 2) / 30, (yy - H / 2) / 20), 0, 1).astype(np.float16)[..., None]
    face = (rng.random((H, W, 3)) * 3).astype(np.float16)
    swap = np.concatenate([(face.astype(np.float32) * matte).astype(np.float16), matte], axis=2)
    comp = (swap[..., :3].astype(np.float32) + plate.astype(np.float32) * (1 - matte.astype(np.float32)))
    pixels = np.concatenate([comp.astype(np.float16), np.ones((H, W, 1), np.float16), swap, matte], axis=2)
    names = ["R", "G", "B", "A", "swap.R", "swap.G", "swap.B", "swap.A", "matte.face"]
    exr_io.write_image(path, pixels, exr_io.new_spec(W, H, names))
    exr_io.write_image(path.with_name("plate.exr"), plate, exr_io.new_spec(W, H, ["R", "G", "B"]))


def blender_over(plate: Path, swap: Path, out: Path) -> None:
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()

    def image(path: Path) -> object:
        loaded = bpy.data.images.load(str(path), check_existing=False)
        loaded.colorspace_settings.name = "Non-Color"  # pixels as stored: no colour conversion
        node = tree.nodes.new("CompositorNodeImage")
        node.image = loaded
        return node

    background, foreground = image(plate), image(swap)
    over = tree.nodes.new("CompositorNodeAlphaOver")
    over.use_premultiply = False  # the swap layer is already premultiplied
    tree.links.new(background.outputs["Image"], over.inputs[1])
    tree.links.new(foreground.outputs["Image"], over.inputs[2])
    composite = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(over.outputs["Image"], composite.inputs["Image"])
    settings = scene.render.image_settings
    settings.file_format, settings.color_depth, settings.color_mode = "OPEN_EXR", "32", "RGBA"
    scene.view_settings.view_transform = "Standard"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)


def test_blender_alpha_over_matches_facegraft_composite(tmp_path: Path) -> None:
    render = tmp_path / "render.1001.exr"
    render_like_exr(render)
    image = exr_io.read_image(render)
    swap = tmp_path / "swap.1001.exr"
    exr_io.write_image(swap, image.get(["swap.R", "swap.G", "swap.B", "swap.A"], np.float16),
                       exr_io.new_spec(W, H, ["R", "G", "B", "A"]))
    out = tmp_path / "blender.exr"
    blender_over(tmp_path / "plate.exr", swap, out)
    got = exr_io.read_image(out).get(["R", "G", "B"])
    expected = image.get(["R", "G", "B"])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)  # half precision: 11-bit mantissa
    inside = image.get(["swap.A"])[..., 0] > 0.5
    assert inside.any() and np.abs(got - image.get(["R", "G", "B"]))[inside].max() < 0.05
