"""The per-face composite on synthetic arrays: pass-through pixels bit for bit, the swap under a
full matte, holdouts, matte shaping, colour match, and the packing into the output's parts."""
from __future__ import annotations

import numpy as np
import pytest
from render_fixtures import aligned_transform, make_face

from facegraft.inference.io import colour, exr, layers
from facegraft.inference.render import composite as comp
from facegraft.inference.render import output
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import mattes

RES = 32
SHAPE = (64, 80)  # the region: rows, columns
OFFSET = (24, 16)  # the crop square covers region columns 24..56, rows 16..48
POISON = [np.nan, np.inf, -np.inf, 60000.0, -5.0, 3.5]
PLAIN = {"erode": 0.0, "feather": 0.0, "color_match": "none", "blend": "alpha"}


def _copy(rgb: np.ndarray) -> np.ndarray:
    return np.array(rgb, dtype=np.float32, order="C", copy=True)


SAME_SPACE = comp.Spaces(to_model=_copy, to_plate=_copy)


def _place() -> comp.Placement:
    transform = aligned_transform(RES, "whole_face", OFFSET)
    return comp.Placement(transform, make_face(transform).landmarks, RES, "whole_face", origin=(0, 0), shape=SHAPE)


def _plate(poison_everywhere: bool = True) -> np.ndarray:
    """A half-float ramp with NaN, Inf, values above 1 and negatives, also over the face."""
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(np.float32)
    plate = np.stack([0.01 * xx, 0.01 * yy, np.full_like(xx, 0.3)], axis=-1).astype(np.float16)
    if poison_everywhere:
        rng = np.random.default_rng(1)
        rows, cols = rng.integers(0, SHAPE[0], 60), rng.integers(0, SHAPE[1], 60)
        for i, (row, col) in enumerate(zip(rows, cols)):
            plate[row, col, i % 3] = POISON[i % len(POISON)]
    return plate


def _swap(value: tuple[float, float, float]) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, np.float32), (RES, RES, 3)).copy()


def _composite(plate, mask, swap=None, **kwargs) -> comp.FaceLayers:
    settings = RenderSettings(**{**PLAIN, **kwargs.pop("settings", {})})
    swap = _swap((0.2, 0.5, 0.8)) if swap is None else swap
    crop = kwargs.pop("crop", np.full((RES, RES, 3), 0.4, np.float32))
    return comp.composite(plate, crop, swap, mask, _place(), settings, kwargs.pop("spaces", SAME_SPACE), **kwargs)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint16 if a.dtype == np.float16 else np.uint32)


def test_zero_mask_leaves_every_plate_pixel_bit_identical():
    plate = _plate()
    alpha = np.full(SHAPE, 0.25, np.float16)
    alpha[3, 4], alpha[30, 40] = np.nan, np.inf
    out = _composite(plate, np.zeros((RES, RES), np.float32), plate_alpha=alpha)
    assert out.rgb.dtype == np.float16
    assert np.array_equal(_bits(out.rgb), _bits(plate))  # NaN, Inf, 60000, -5 included, over the face too
    assert np.array_equal(_bits(out.alpha), _bits(alpha))
    assert not out.matte.any() and not out.swap.any() and not out.face_matte.any()


def test_full_mask_gives_the_swap_inside_and_the_plate_outside():
    plate = _plate(poison_everywhere=False)
    plate[2, 3] = [np.nan, np.inf, 60000.0]  # far from the face
    out = _composite(plate, np.ones((RES, RES), np.float32))
    inner = out.matte == 1.0
    assert inner.sum() > 200
    assert np.all(out.rgb[inner] == np.float16([0.2, 0.5, 0.8]))
    assert np.all(out.swap[inner] == np.float16([0.2, 0.5, 0.8]))
    outside = out.matte == 0
    assert outside[2, 3] and np.array_equal(_bits(out.rgb[outside]), _bits(plate[outside]))
    # nothing outside the crop square, whatever the face matte says
    square = np.zeros(SHAPE, bool)
    square[OFFSET[1]:OFFSET[1] + RES, OFFSET[0]:OFFSET[0] + RES] = True
    assert not out.matte[~square].any() and not out.face_matte[~square].any()
    # swap over plate is the beauty (the layers a compositor merges)
    over = out.swap.astype(np.float32) + plate.astype(np.float32) * (1.0 - out.matte[..., None])
    np.testing.assert_allclose(over, out.rgb.astype(np.float32), atol=2e-3)


def test_new_pixels_are_rounded_to_their_precision():
    plate = _plate(poison_everywhere=False)
    out = _composite(plate, np.ones((RES, RES), np.float32), settings={"feather": 3.0}, swap=_swap((0.123, 0.456, 0.789)))
    assert ((out.matte > 0) & (out.matte < 1)).sum() > 20 and out.matte.dtype == np.float32
    np.testing.assert_array_equal(out.matte.astype(np.float16).astype(np.float32), out.matte)
    assert out.swap.dtype == out.face_matte.dtype == np.float16
    wide = _composite(plate.astype(np.float32), np.ones((RES, RES), np.float32), settings={"feather": 3.0},
                      precision=np.float32)
    assert wide.rgb.dtype == wide.swap.dtype == np.float32
    soft = (wide.matte > 0) & (wide.matte < 1)
    assert np.any(wide.matte[soft].astype(np.float16).astype(np.float32) != wide.matte[soft])


def test_holdout_subtracts_from_the_matte():
    plate = _plate()
    holdout = np.zeros(SHAPE, np.float32)
    holdout[:, 36:44] = 1.0  # a "hand" across the face
    holdout[:, 44:48] = 0.25
    free = _composite(plate, np.ones((RES, RES), np.float32))
    held = _composite(plate, np.ones((RES, RES), np.float32), holdout=holdout)
    assert free.matte[:, 36:44].max() == 1.0
    assert not held.matte[:, 36:44].any()
    assert np.array_equal(_bits(held.rgb[:, 36:44]), _bits(plate[:, 36:44]))
    np.testing.assert_allclose(held.matte[:, 44:48], free.matte[:, 44:48] * 0.75, rtol=1e-3)  # half precision
    np.testing.assert_array_equal(held.matte[:, :36], free.matte[:, :36])
    np.testing.assert_array_equal(held.face_matte, free.face_matte)  # matte.face is before the holdout


def test_background_is_what_the_beauty_keeps_off_the_matte():
    plate = _plate(poison_everywhere=False)
    background = np.full_like(plate, np.float16(7.0))
    out = _composite(plate, np.ones((RES, RES), np.float32), background=background)
    assert np.all(out.rgb[out.matte == 0] == 7.0)
    assert np.all(out.rgb[out.matte == 1] == np.float16([0.2, 0.5, 0.8]))


def test_plate_alpha_gets_the_matte_over_it():
    plate = _plate(poison_everywhere=False)
    alpha = np.full(SHAPE, 0.25, np.float16)
    alpha[0, 0] = np.nan
    out = _composite(plate, np.ones((RES, RES), np.float32), settings={"feather": 2.0}, plate_alpha=alpha)
    assert out.alpha is not None
    inner, soft, off = out.matte == 1, (out.matte > 0) & (out.matte < 1), out.matte == 0
    assert np.all(out.alpha[inner] == 1.0)
    expected = (out.matte[soft] + 0.25 * (1 - out.matte[soft])).astype(np.float16)
    np.testing.assert_array_equal(out.alpha[soft], expected)
    assert np.array_equal(_bits(out.alpha[off]), _bits(alpha[off]))


def test_only_the_layers_asked_for_are_computed():
    plate = _plate(poison_everywhere=False)
    some = _composite(plate, np.ones((RES, RES), np.float32), groups=("swap",))
    assert some.swap is not None and some.face_matte is None and some.stmap is None
    none = _composite(plate, np.ones((RES, RES), np.float32), groups=())
    assert none.swap is None and none.face_matte is None and none.stmap is None
    everything = _composite(plate, np.ones((RES, RES), np.float32))
    assert np.array_equal(_bits(none.rgb), _bits(everything.rgb)) and np.array_equal(none.matte, everything.matte)


def test_stmap_points_into_the_crop():
    plate = _plate(poison_everywhere=False)
    out = _composite(plate, np.ones((RES, RES), np.float32))
    assert out.stmap is not None
    s, t = (np.broadcast_to(p, SHAPE) for p in out.stmap)
    for row, col in [(16, 24), (30, 40), (47, 55)]:  # region pixel -> crop pixel (col - 24, row - 16)
        assert s[row, col] == np.float16((col - OFFSET[0] + 0.5) / RES)
        assert t[row, col] == np.float16(1.0 - (row - OFFSET[1] + 0.5) / RES)


def _square_matte() -> np.ndarray:
    raw = np.zeros((40, 40), np.float32)
    raw[10:30, 10:30] = 1.0
    return raw


def test_erode_shrinks_and_negative_erode_grows_the_matte():
    raw, footprint = _square_matte(), np.ones((40, 40), np.float32)
    plain = comp.shape_matte(raw, footprint, 0.0, 0.0)
    np.testing.assert_array_equal(plain, raw)
    eroded = comp.shape_matte(raw, footprint, 3.0, 0.0)
    assert eroded[13:27, 13:27].all() and not eroded[10:13].any() and not eroded[:, 27:30].any()
    grown = comp.shape_matte(raw, footprint, -3.0, 0.0)
    assert grown[7:33, 15:25].all() and (grown > 0).sum() > (raw > 0).sum()


def test_feather_softens_the_edge_and_the_footprint_cuts_it():
    raw, footprint = _square_matte(), np.ones((40, 40), np.float32)
    soft = comp.shape_matte(raw, footprint, 0.0, 4.0)
    assert soft[20, 20] > 0.99  # the middle stays solid
    edge = soft[20, 6:14]  # across the left edge: rises smoothly, half way at the edge
    assert np.all(np.diff(edge) > 0) and 0.3 < soft[20, 10] < 0.7 and soft[20, 4] > 0
    cut = np.ones((40, 40), np.float32)
    cut[:, :10] = 0.0
    assert not comp.shape_matte(raw, cut, 0.0, 4.0)[:, :10].any()


def test_colour_match_moves_the_swap_towards_the_plate():
    rng = np.random.default_rng(0)
    crop = (0.3 + 0.05 * rng.standard_normal((RES, RES, 3))).astype(np.float32)
    swap = crop + np.float32([0.2, -0.1, 0.05])
    mask = np.ones((RES, RES), np.float32)
    place = _place()
    assert comp.match_colour(swap, crop, mask, place, RenderSettings(color_match="none")) is swap
    matched = comp.match_colour(swap, crop, mask, place, RenderSettings(color_match="rct"))
    face = comp.raw_matte(mask, np.ones((RES, RES), np.float32),
                          comp.Placement(place.transform, place.landmarks, RES, "whole_face", OFFSET, (RES, RES)),
                          0.2) > 0.99  # the face matte in crop pixels
    np.testing.assert_allclose(matched[face].mean(axis=0), crop[face].mean(axis=0), atol=5e-3)
    assert np.abs(swap[face].mean(axis=0) - crop[face].mean(axis=0)).max() > 0.09


def test_multiband_blends_in_model_space_and_stays_positive():
    """A bright face on a dark plate: blended in ACEScct (real OCIO) no band pushes a pixel below 0."""
    spaces = comp.Spaces(colour.converter("ACEScg", "ACEScct"), colour.converter("ACEScct", "ACEScg"))
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    dark = np.repeat((0.001 + 0.049 * ((yy // 4 + xx // 4) % 2))[..., None], 3, axis=2).astype(np.float16)
    bright = spaces.to_model(np.full((RES, RES, 3), 0.9, np.float32))
    out = _composite(dark, np.ones((RES, RES), np.float32), swap=bright, spaces=spaces,
                     settings={"blend": "multiband", "feather": 3.0})
    assert out.matte.max() == 1.0 and out.rgb[out.matte > 0].astype(np.float32).min() >= 0.0
    # the face's detail came through; its overall level follows the plate (the coarsest band is the plate's)
    assert np.all(out.rgb[out.matte == 1].astype(np.float32) > 0.1) and dark.max() < 0.06
    assert np.array_equal(_bits(out.rgb[out.matte == 0]), _bits(dark[out.matte == 0]))


def test_over_is_premultiplied():
    colour_, plate = np.full((2, 2, 3), 0.8, np.float32), np.full((2, 2, 3), 0.2, np.float32)
    matte = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    premult, beauty = comp.over(colour_, matte, plate)
    np.testing.assert_allclose(premult[..., 0], 0.8 * matte)
    np.testing.assert_allclose(beauty[..., 0], 0.8 * matte + 0.2 * (1 - matte))


@pytest.mark.parametrize("groups", [layers.ALL, (), ("stmap",)])
def test_beauty_and_layers_packed_into_their_parts(groups):
    plate_channels = ["R", "G", "B", "Z"]
    lay = output.layout(plate_channels, [np.float16] * 4)
    assert lay.names == layers.beauty_channels(plate_channels) == ["R", "G", "B", "A", "Z"] and not lay.has_alpha
    stored = np.zeros((*SHAPE, 4), np.float16)
    stored[..., 3] = 9.0
    frame = output.FrameOutput(lay.runs, stored, len(lay.names), stored.dtype)
    block = frame.region((0, SHAPE[0], 0, SHAPE[1]))
    assert np.all(block[..., lay.index["A"]] == 1.0) and np.all(block[..., lay.index["Z"]] == 9.0)
    face = _composite(stored[..., :3], np.ones((RES, RES), np.float32), groups=groups)
    output.pack(block, lay.index, face)
    np.testing.assert_array_equal(block[..., :3], face.rgb)
    assert np.all(block[..., lay.index["A"]] == 1.0) and np.all(block[..., lay.index["Z"]] == 9.0)

    parts = output.layer_parts(groups, lay.new_format)
    assert [name for name, _, _ in parts] == [layers.PARTS[g] for g in layers.GROUPS if g in groups]
    assert [c for _, channels, _ in parts for c in channels] == list(layers.facegraft_channels(groups))
    holdout = np.linspace(0, 1, SHAPE[0] * SHAPE[1], dtype=np.float32).reshape(SHAPE)
    for name, channels, dtype in parts:
        assert dtype == (np.float32 if name == layers.PARTS["stmap"] else np.float16)
        part = output.layer_pixels(channels, dtype, SHAPE, face, holdout)
        assert part.shape == (*SHAPE, len(channels)) and part.dtype == dtype
        index = {n: i for i, n in enumerate(channels)}
        if "swap.A" in index:
            np.testing.assert_array_equal(part[..., index["swap.A"]], face.matte)
            np.testing.assert_array_equal(part[..., index["swap.R"]:index["swap.B"] + 1], face.swap)
        if "stmap.R" in index:  # float32 as computed: not rounded to the plate's half
            assert face.stmap is not None and face.stmap[0].dtype == np.float32
            np.testing.assert_array_equal(part[..., index["stmap.R"]], np.broadcast_to(face.stmap[0], SHAPE))
        if "matte.face" in index:
            np.testing.assert_array_equal(part[..., index["matte.face"]], face.face_matte)
            np.testing.assert_array_equal(part[..., index["matte.holdout"]], holdout.astype(np.float16))
        empty = output.layer_pixels(channels, dtype, (1, 1))
        assert empty.shape == (1, 1, len(channels)) and not empty.any()


def test_rows_are_the_frame_off_the_face_with_the_face_region_pasted():
    rng = np.random.default_rng(3)
    stored = rng.standard_normal((20, 30, 4)).astype(np.float16)
    stored[1, 2, 0], stored[18, 25, 3] = np.nan, np.inf
    lay = output.layout(["R", "G", "B", "Z"], [np.float16] * 4)
    frame = output.FrameOutput(lay.runs, stored, len(lay.names), stored.dtype)
    roi = (5, 12, 8, 20)
    frame.roi, frame.block = roi, np.full((7, 12, len(lay.names)), 2.0, np.float16)
    rows = np.concatenate([frame.rows(y0, min(20, y0 + 3)).copy() for y0 in range(0, 20, 3)])
    face = np.zeros((20, 30), bool)
    face[5:12, 8:20] = True
    assert np.all(rows[face] == 2.0)
    for name, plane in [("R", stored[..., 0]), ("B", stored[..., 2]), ("Z", stored[..., 3])]:
        assert np.array_equal(_bits(rows[..., lay.index[name]][~face]), _bits(plane[~face]))
    assert np.all(rows[..., lay.index["A"]][~face] == 1.0)


def test_layers_part_window_and_part_names():
    spec = exr.new_spec(30, 20, ["R", "G", "B"])
    spec.x, spec.y = -4, -2
    assert output.layers_window(spec, (5, 12, 8, 20)) == (4, 3, 12, 7)
    assert output.layers_window(spec, (0, 0, 0, 0)) == (-4, -2, 1, 1)  # no face: one pixel
    part = output.layers_header(spec, layers.PARTS["swap"], layers.SWAP, np.float16, (4, 3, 12, 7), {"facegraft/x": "1"})
    assert (part.x, part.y, part.width, part.height) == (4, 3, 12, 7)
    assert (part.full_width, part.full_height) == (30, 20) and str(part.format) == "half"
    assert exr.part_name(part) == "facegraft_swap" and part.getattribute("compression") == "zip"
    assert part.getattribute("facegraft/x") == "1"
    beauty = exr.new_spec(30, 20, ["R", "G", "B"])
    depth = exr.new_spec(30, 20, ["Z"])
    depth.attribute("oiio:subimagename", "depth")
    output.name_parts([beauty, depth, part])
    assert [exr.part_name(s) for s in (beauty, depth, part)] == [layers.PLATE_PART, "depth", "facegraft_swap"]
    alone = exr.new_spec(30, 20, ["R", "G", "B"])
    output.name_parts([alone])
    assert exr.part_name(alone) == ""  # a single-part output stays unnamed


def test_nonzero_box_bounds_every_lit_pixel_nan_included():
    a = np.zeros((10, 12), np.float32)
    b = np.zeros((10, 12), np.float16)
    assert mattes.nonzero_box([a, None, b]) == (0, 0, 0, 0)
    assert mattes.nonzero_box([]) == (0, 0, 0, 0)
    a[2, 3] = 0.5
    b[7, 9] = np.nan
    assert mattes.nonzero_box([a]) == (2, 3, 3, 4)
    assert mattes.nonzero_box([a, b]) == (2, 8, 3, 10)


def test_layer_parts_hold_exactly_what_the_region_holds_on_their_own_windows():
    """Each FaceGraft part's window is the box of what it holds; read back onto the region they are
    the face's layers there, 0 off their windows."""
    face = _composite(np.full((*SHAPE, 3), 0.3, np.float16), np.ones((RES, RES), np.float32))
    spec = exr.new_spec(SHAPE[1] + 10, SHAPE[0] + 6, ["R", "G", "B"], np.float16)
    roi = (3, 3 + SHAPE[0], 5, 5 + SHAPE[1])
    holdout = np.zeros((SHAPE[0] + 6, SHAPE[1] + 10), np.float32)
    parts = output.layers_parts(spec, layers.ALL, np.float16, {}, face, roi, holdout)
    by_name = {exr.part_name(p.spec): p for p in parts}
    swap = by_name[layers.PARTS["swap"]]
    stmap = by_name[layers.PARTS["stmap"]]
    assert (stmap.spec.x, stmap.spec.y, stmap.spec.width, stmap.spec.height) == (5, 3, SHAPE[1], SHAPE[0])
    assert swap.spec.width * swap.spec.height < SHAPE[0] * SHAPE[1]
    placed = np.zeros((*SHAPE, 4), np.float16)
    oy, ox = swap.spec.y - 3, swap.spec.x - 5
    assert swap.pixels is not None
    placed[oy:oy + swap.spec.height, ox:ox + swap.spec.width] = swap.pixels
    np.testing.assert_array_equal(placed[..., 3], face.matte.astype(np.float16))
    np.testing.assert_array_equal(placed[..., :3], face.swap)


def test_a_layer_that_is_zero_everywhere_gets_a_one_pixel_part():
    """A face held out whole: the swap is 0 over the region, so its part holds one pixel of 0 at the
    beauty's data window origin; ``matte.face`` (before the holdout) keeps its box, the STMap the region."""
    held = np.ones(SHAPE, np.float32)
    face = _composite(np.full((*SHAPE, 3), 0.3, np.float16), np.ones((RES, RES), np.float32), holdout=held)
    assert not face.matte.any()
    spec = exr.new_spec(SHAPE[1] + 10, SHAPE[0] + 6, ["R", "G", "B"], np.float16)
    spec.x, spec.y = -2, -1
    parts = output.layers_parts(spec, layers.ALL, np.float16, {}, face, (3, 3 + SHAPE[0], 5, 5 + SHAPE[1]))
    by_name = {exr.part_name(p.spec): p for p in parts}
    swap = by_name[layers.PARTS["swap"]]
    assert (swap.spec.x, swap.spec.y, swap.spec.width, swap.spec.height) == (-2, -1, 1, 1)
    assert swap.pixels is not None and not swap.pixels.any()
    matte = by_name[layers.PARTS["matte"]]
    assert matte.pixels is not None and matte.spec.width > 1 and matte.pixels[..., 0].any()
    stmap = by_name[layers.PARTS["stmap"]].spec
    assert (stmap.x, stmap.y, stmap.width, stmap.height) == (3, 2, SHAPE[1], SHAPE[0])


def test_the_matte_box_is_where_the_matte_is_and_moves_with_a_cut():
    face = _composite(np.full((*SHAPE, 3), 0.3, np.float16), np.ones((RES, RES), np.float32))
    assert face.box == mattes.nonzero_box([face.matte]) and face.box[1] > face.box[0]
    y0, y1, x0, x1 = face.box
    cut = face.within((y0 + 2, y1, x0 + 3, x1))
    assert cut.box == mattes.nonzero_box([cut.matte])
    assert face.within((0, 2, 0, 2)).box == (0, 0, 0, 0)  # the matte does not reach the corner
