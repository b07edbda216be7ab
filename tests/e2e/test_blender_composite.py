"""FaceGraft's layers composited in a third-party compositor (Blender) match FaceGraft's own composite.

Blender reads FaceGraft's multi-part EXR: each part is a layer of the Image node, so the
``facegraft_swap`` part (on a data window around the face) gives the layer ``facegraft_swap``
whose ``swap`` output holds ``swap.R/G/B/A``. Blender (4.5) ignores a part's data window: it
draws the part from the top-left corner of the frame, so a Translate node by the data window's
offset puts it back (docs/layers.md). Blender's Alpha Over of that (premultiplied) swap over the
plate must give the render's R,G,B within half-float precision, and leave every pixel outside
the matte exactly the plate's.

The main case is a real shot: ``facegraft track`` and ``facegraft render`` (subprocesses of the
CLI) on frames of the sample footage with a model that shifts the face's colour. The second case
is a render-shaped file whose plate holds values above 1 and negatives, which camera footage
converted from video never has.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facegraft.inference.io import exr, layers
from facegraft.inference.io.sequence import SequencePattern

bpy = pytest.importorskip("bpy", reason="Blender as a module (pip install bpy, Python 3.11) is not installed")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from render_models import build_identity_model  # noqa: E402

FACEGRAFT = str(Path(sys.executable).parent / "facegraft")
FRAMES = (1001, 1003)
HALF = {"rtol": 2e-3, "atol": 2e-3}  # half float: 11-bit mantissa


def facegraft(*args: str) -> None:
    done = subprocess.run([FACEGRAFT, *args, "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def real_render(single_face_plate: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SequencePattern]:
    """The sample plate tracked and rendered by the real CLI, with a swap that differs from the plate."""
    root = tmp_path_factory.mktemp("blender_real")
    model = build_identity_model(root / "shifted.onnx", res=64, shift=(0.25, -0.15, 0.1), mask="ellipse")
    track = str(root / "shot.fgtrack.json")
    out = str(root / "render" / "shot.####.exr")
    frames = f"{FRAMES[0]}-{FRAMES[-1]}"
    facegraft("track", single_face_plate, "--out", track, "--frames", frames)
    facegraft("render", single_face_plate, "--track", track, "--model", str(model), "--out", out,
              "--frames", frames, "--feather", "6", "--erode", "2", "--color-match", "none")
    return {"plate": SequencePattern(single_face_plate), "render": SequencePattern(out)}


def blender_over(plate: Path, render: Path, out: Path) -> None:
    """Blender's compositor: the render file's ``swap`` layer Alpha Over (premultiplied) the plate."""
    width, height = exr.read_header(plate).full_width, exr.read_header(plate).full_height
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()

    def image(path: Path) -> object:
        loaded = bpy.data.images.load(str(path), check_existing=False)
        loaded.colorspace_settings.name = "Non-Color"  # pixels as stored: no colour conversion
        node = tree.nodes.new("CompositorNodeImage")
        node.image = loaded
        return node

    background, rendered = image(plate), image(render)
    rendered.layer = layers.PARTS["swap"]  # the multi-part file's parts are the Image node's layers
    assert "swap" in rendered.outputs, f"Blender sees no swap layer in {render}: {list(rendered.outputs.keys())}"
    part = {exr.part_name(spec): spec for spec in exr.read_headers(render)}[layers.PARTS["swap"]]
    place = tree.nodes.new("CompositorNodeTranslate")  # Blender draws the part from the top-left corner
    place.inputs["X"].default_value = part.x - part.full_x
    place.inputs["Y"].default_value = -(part.y - part.full_y)  # Blender's y goes up
    tree.links.new(rendered.outputs["swap"], place.inputs["Image"])
    over = tree.nodes.new("CompositorNodeAlphaOver")
    over.use_premultiply = False  # the swap layer is already premultiplied
    tree.links.new(background.outputs["Image"], over.inputs[1])
    tree.links.new(place.outputs["Image"], over.inputs[2])
    composite = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(over.outputs["Image"], composite.inputs["Image"])
    settings = scene.render.image_settings
    settings.file_format, settings.color_depth, settings.color_mode = "OPEN_EXR", "32", "RGBA"
    scene.view_settings.view_transform = "Standard"
    scene.render.filepath = str(out)
    bpy.ops.render.render(write_still=True)


def check_blender_matches(plate: Path, render: Path, out: Path) -> np.ndarray:
    """Composite in Blender and compare with FaceGraft's R,G,B; returns swap.A."""
    blender_over(plate, render, out)
    got = exr.read_image(out).get(["R", "G", "B"])
    image = exr.read_image(render)  # every part, as one image over the beauty's data window
    expected = image.get(["R", "G", "B"])
    plate_rgb = exr.read_image(plate).get(["R", "G", "B"])
    alpha = image.get(["swap.A"])[..., 0]
    assert got.shape == expected.shape == plate_rgb.shape
    np.testing.assert_allclose(got, expected, **HALF)
    outside = alpha == 0
    assert outside.any()
    # outside the matte: FaceGraft's pixels are the plate's bit for bit, and so are Blender's
    np.testing.assert_array_equal(expected[outside], plate_rgb[outside])
    np.testing.assert_array_equal(got[outside], plate_rgb[outside])
    return alpha


@pytest.mark.parametrize("frame", FRAMES)
def test_blender_alpha_over_of_a_real_render_matches_facegraft(real_render: dict[str, SequencePattern],
                                                               frame: int, tmp_path: Path) -> None:
    plate, render = Path(real_render["plate"].path(frame)), Path(real_render["render"].path(frame))
    image = exr.read_image(render)
    assert exr.attributes(image.spec, "facegraft/").get("facegraft/status") == "rendered"
    parts = exr.read_headers(render)
    assert [exr.part_name(p) for p in parts] == [layers.PLATE_PART, *layers.PARTS.values()]
    beauty, swap = parts[0], parts[1]
    assert swap.width < beauty.width and swap.height <= beauty.height and (swap.x, swap.y) != (beauty.x, beauty.y)
    alpha = check_blender_matches(plate, render, tmp_path / "blender.exr")
    inside = alpha > 0.9
    assert inside.sum() > 2000, "the face matte is (nearly) empty"
    changed = np.abs(image.get(["R", "G", "B"]) - exr.read_image(plate).get(["R", "G", "B"]))[inside]
    assert changed.mean() > 0.02, "the swap does not change the face: the comparison would prove nothing"


H, W = 72, 128


def render_like_exr(folder: Path) -> tuple[Path, Path]:
    """A plate with values above 1 and negatives, and a render-shaped EXR composited over it: the
    beauty part, and the swap in its own part on a window around the matte."""
    rng = np.random.default_rng(7)
    plate = (rng.random((H, W, 3)) * 6 - 1).astype(np.float16)
    yy, xx = np.mgrid[0:H, 0:W]
    matte = np.clip(1.2 - np.hypot((xx - W / 2) / 30, (yy - H / 2) / 20), 0, 1).astype(np.float16)[..., None]
    face = (rng.random((H, W, 3)) * 3).astype(np.float16)
    swap = np.concatenate([(face.astype(np.float32) * matte).astype(np.float16), matte], axis=2)
    comp = np.where(matte > 0, swap[..., :3].astype(np.float32) + plate.astype(np.float32) * (1 - matte.astype(np.float32)),
                    plate.astype(np.float32))
    beauty = np.concatenate([comp.astype(np.float16), np.ones((H, W, 1), np.float16)], axis=2)
    rows, cols = np.nonzero(matte[..., 0])
    y0, y1, x0, x1 = rows.min() - 2, rows.max() + 3, cols.min() - 2, cols.max() + 3
    part = exr.new_spec(x1 - x0, y1 - y0, list(layers.SWAP))
    part.x, part.y, part.full_width, part.full_height = int(x0), int(y0), W, H
    part.attribute("oiio:subimagename", layers.PARTS["swap"])
    part.attribute("compression", "zip")
    main = exr.new_spec(W, H, ["R", "G", "B", "A"])
    main.attribute("oiio:subimagename", layers.PLATE_PART)
    render, plate_path = folder / "render.1001.exr", folder / "plate.1001.exr"
    exr.write_parts(render, [exr.Part(main, pixels=beauty),
                             exr.Part(part, pixels=swap[y0:y1, x0:x1])])
    exr.write_image(plate_path, plate, exr.new_spec(W, H, ["R", "G", "B"]))
    return plate_path, render


def test_blender_alpha_over_keeps_hdr_and_negative_plate_values(tmp_path: Path) -> None:
    plate, render = render_like_exr(tmp_path)
    alpha = check_blender_matches(plate, render, tmp_path / "blender.exr")
    assert (alpha > 0.5).any()
