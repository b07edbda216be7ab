"""Multi-part EXRs in and out: every plate part comes through a render, the FaceGraft layers in
parts of their own, stereo and deep plates refused, damaged files and resolution changes reported
with file and frame. Plates are written here with OpenImageIO (several parts with their own
channels, data windows, compressions, precisions and headers) and read back with it."""
from __future__ import annotations

import functools

import numpy as np
import OpenImageIO as oiio
import pytest
from render_fixtures import DISPLAY, FIRST, OVERSCAN, make_plate, make_track, plate_pixels, rotated_transform
from render_models import build_identity_model

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import exr, layers
from facegraft.inference.io.frames import SequenceSource, open_source
from facegraft.inference.models import face_model
from facegraft.inference.render.renderer import render_shot
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import align

RES = 64
FRAMES = [FIRST, FIRST + 1]
TRANSFORM = rotated_transform((96, 72), 44, 15)
PLAIN = {"erode": 0.0, "feather": 4.0, "color_match": "none", "blend": "alpha"}
FULL = (0, 0, *DISPLAY)


def _spec(channels, formats, window, name, compression, **attrs):
    """A part header: ``window`` = data window ``(x, y, w, h)`` inside the plate's display window."""
    spec = exr.make_spec(exr.new_spec(window[2], window[3], channels), channels, formats=formats)
    if any(f == np.uint32 for f in formats):
        spec.set_format("uint")
        spec.channelformats = ()
    spec.x, spec.y, spec.width, spec.height = window
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = FULL
    spec.attribute("compression", compression)
    spec.attribute("oiio:subimagename", name)
    for key, value in attrs.items():
        spec.attribute(key.replace("__", "/"), value)
    return spec


def plate_parts(frame: int) -> list[exr.Part]:
    """depth (float Z, PIZ, the display window) first, then the beauty (half RGBA, ZIP, overscan),
    motion (half, ZIPS, a window off to one side) and ids (uint, RLE, a small window)."""
    pixels, names = plate_pixels(frame, alpha=True)
    h, w = pixels.shape[:2]
    rng = np.random.default_rng(frame)
    depth = (rng.random((DISPLAY[1], DISPLAY[0], 1)) * 100 + np.float32(1 / 3)).astype(np.float32)
    depth[5, 7, 0] = np.nan
    motion = rng.normal(size=(60, 90, 2)).astype(np.float16) * 20
    ids = rng.integers(0, 2**32 - 1, size=(20, 30, 1), dtype=np.uint32)  # beyond float32's exact integers
    return [
        exr.Part(_spec(["Z"], [np.float32], FULL, "depth", "piz", depth__near=0.1), pixels=depth),
        exr.Part(_spec(names[:4], [np.float16] * 4, (-OVERSCAN[0], -OVERSCAN[1], w, h), "beauty", "zip",
                       studio__shot="sh010"), pixels=pixels[..., :4]),
        exr.Part(_spec(["motion.x", "motion.y"], [np.float16] * 2, (100, 80, 90, 60), "motion", "zips"), pixels=motion),
        exr.Part(_spec(["id"], [np.uint32], (3, 4, 30, 20), "ids", "rle"), pixels=ids),
    ]


def write_multipart_plate(folder, frames=FRAMES) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        exr.write_parts(folder / f"mp.{frame:04d}.exr", plate_parts(frame))
    return str(folder / "mp.####.exr")


def _read_parts(path):
    source = oiio.ImageInput.open(str(path))
    assert source is not None, oiio.geterror()
    parts = []
    try:
        while source.seek_subimage(len(parts), 0):
            spec = oiio.ImageSpec(source.spec())
            kinds = {str(f) for f in spec.channelformats} or {str(spec.format)}
            buffer = "uint" if kinds == {"uint"} else "float" if kinds != {"half"} else "half"
            pixels = source.read_image(len(parts), 0, 0, spec.nchannels, buffer)
            parts.append((spec, np.asarray(pixels).reshape(spec.height, spec.width, spec.nchannels)))
    finally:
        source.close()
    return parts


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = build_identity_model(tmp_path_factory.mktemp("m") / "shift.onnx", RES, shift=[0.1, -0.05, 0.05])
    return face_model.load(path, device="cpu")


def _render(plate, model, out, frames=FRAMES, part=None, **settings):
    source = open_source(plate, part=part)
    return render_shot(source, make_track(FRAMES, TRANSFORM), model, str(out), RenderSettings(**{**PLAIN, **settings}),
                       frames=frames)


LAYER_PARTS = list(layers.PARTS.values())


def test_every_plate_part_comes_through_and_the_layers_get_their_own(tmp_path, model):
    plate = write_multipart_plate(tmp_path / "plate")
    out = tmp_path / "out" / "r.####.exr"
    assert _render(plate, model, out).rendered == FRAMES
    for frame in FRAMES:
        given = {exr.part_name(s): (s, p) for s, p in _read_parts(plate.replace("####", f"{frame:04d}"))}
        got = _read_parts(str(out).replace("####", f"{frame:04d}"))
        assert [exr.part_name(s) for s, _ in got] == ["depth", "beauty", "motion", "ids", *LAYER_PARTS]
        parts = {exr.part_name(s): (s, p) for s, p in got}
        for name in ("depth", "motion", "ids"):  # bit for bit, with their windows, formats, compression, header
            (gs, gp), (ps, pp) = parts[name], given[name]
            assert gs.channelnames == ps.channelnames and (gs.x, gs.y, gs.width, gs.height) == (ps.x, ps.y, ps.width, ps.height)
            assert [str(f) for f in gs.channelformats] == [str(f) for f in ps.channelformats] and str(gs.format) == str(ps.format)
            assert gs.getattribute("compression") == ps.getattribute("compression")
            assert gp.dtype == pp.dtype and np.array_equal(_bits(gp), _bits(pp)), name
        assert parts["depth"][0].getattribute("depth/near") == pytest.approx(0.1)
        assert parts["ids"][1].dtype == np.uint32 and parts["ids"][1].max() > 2**24

        beauty, pixels = parts["beauty"]
        plate_spec, plate_pixels_ = given["beauty"]
        assert beauty.channelnames == ("R", "G", "B", "A") and beauty.getattribute("compression") == "zip"
        assert (beauty.x, beauty.y, beauty.width, beauty.height) == (plate_spec.x, plate_spec.y, plate_spec.width, plate_spec.height)
        assert beauty.getattribute("studio/shot") == "sh010"

        fg, layer = parts[layers.PARTS["swap"]]
        region = parts[layers.PARTS["stmap"]][0]
        for group, name in layers.PARTS.items():  # one precision per part, each on the window of what it holds
            spec, held = parts[name]
            assert set(spec.channelnames) == set(layers.GROUPS[group]) and spec.getattribute("compression") == "zip"
            assert str(spec.format) == ("float" if group == "stmap" else "half") and not spec.channelformats
            assert region.x <= spec.x and spec.x + spec.width <= region.x + region.width
            assert region.y <= spec.y and spec.y + spec.height <= region.y + region.height
            if group != "stmap":  # the window is the box of its non-zero pixels: each edge row and column has one
                lit = np.any(held != 0, axis=2)
                assert lit[0].any() and lit[-1].any() and lit[:, 0].any() and lit[:, -1].any(), group
        # the swap's window is smaller than the region the STMap covers (the matte's box)
        assert fg.width * fg.height < region.width * region.height
        # the region: around the face, inside the beauty's, far smaller than the frame
        assert beauty.x <= region.x and region.x + region.width <= beauty.x + beauty.width
        assert beauty.y <= region.y and region.y + region.height <= beauty.y + beauty.height
        assert region.width * region.height < 0.5 * beauty.width * beauty.height
        assert (fg.full_width, fg.full_height) == DISPLAY
        # the swap applies to the beauty part: changed under the matte, bit-identical elsewhere
        matte = np.zeros(pixels.shape[:2], np.float32)
        oy, ox = fg.y - beauty.y, fg.x - beauty.x
        matte[oy:oy + fg.height, ox:ox + fg.width] = layer[..., list(fg.channelnames).index("swap.A")]
        assert (matte > 0.99).sum() > 500
        assert np.array_equal(_bits(pixels[matte == 0]), _bits(plate_pixels_[matte == 0]))
        assert np.abs(pixels[matte > 0.99][:, 0].astype(np.float32) - plate_pixels_[matte > 0.99][:, 0]).min() > 0.05
        # every part carries the render's stamp
        for spec, _ in got:
            assert spec.getattribute("facegraft/status") == layers.RENDERED
            assert spec.getattribute("facegraft/model_hash") == model.info.content_hash

        # read as one image (Nuke's view): every channel of every part, placed by its data window
        whole = exr.read_image(str(out).replace("####", f"{frame:04d}"), frame)
        assert set(whole.channels) == {"Z", "R", "G", "B", "A", "motion.x", "motion.y", "id", *layers.FACEGRAFT}
        zx, zy = 0 - whole.spec.x, 0 - whole.spec.y
        np.testing.assert_array_equal(whole.get(["Z"])[zy:zy + DISPLAY[1], zx:zx + DISPLAY[0]],
                                      given["depth"][1].astype(np.float32))


def test_a_tiled_plate_comes_through_as_scanlines(tmp_path, model):
    """OpenImageIO writes one kind of part per file: with the (scanline) layer parts, a tiled plate's
    parts come out as scanlines, pixels unchanged; with --layers none they stay tiled."""
    folder = tmp_path / "tiled"
    folder.mkdir()
    for frame in FRAMES:
        parts = plate_parts(frame)[:2]
        for part in parts:
            part.spec.tile_width, part.spec.tile_height = 32, 16
        exr.write_parts(folder / f"t.{frame:04d}.exr", parts)
    plate = str(folder / "t.####.exr")
    given = _read_parts(folder / f"t.{FIRST:04d}.exr")
    assert [s.tile_width for s, _ in given] == [32, 32]
    for layers_, tiles in (("all", [0] * 5), ("none", [32, 32])):
        _render(plate, model, tmp_path / layers_ / "r.####.exr", frames=[FIRST], layers=layers_)
        got = _read_parts(tmp_path / layers_ / f"r.{FIRST:04d}.exr")
        assert [s.tile_width for s, _ in got] == tiles
        assert np.array_equal(_bits(got[0][1]), _bits(given[0][1]))  # the depth part, bit for bit


def test_the_rgb_part_is_the_first_with_rgb_or_the_one_named(tmp_path, model):
    folder = tmp_path / "two"
    folder.mkdir()
    for frame in FRAMES:
        parts = plate_parts(frame)[:2]
        other = exr.Part(exr.make_spec(parts[1].spec, ["R", "G", "B"]), pixels=parts[1].pixels[..., :3] * 0.5)
        other.spec.attribute("oiio:subimagename", "diffuse")
        exr.write_parts(folder / f"two.{frame:04d}.exr", [parts[0], parts[1], other])
    plate = str(folder / "two.####.exr")
    first = SequenceSource(plate).read(FIRST)
    named = SequenceSource(plate, part="diffuse").read(FIRST)
    np.testing.assert_array_equal(named.rgb, first.rgb.astype(np.float16).astype(np.float32) * np.float16(0.5))
    with pytest.raises(FaceGraftError, match=r"no part 'spec'.*depth \(Z\); beauty \(R, G, B, A\); diffuse"):
        SequenceSource(plate, part="spec").read(FIRST)
    with pytest.raises(BadFrameError, match="part 'depth' has no R, G and B"):
        SequenceSource(plate, part="depth").read(FIRST)
    # the render swaps the named part and passes the other through
    _render(plate, model, tmp_path / "o" / "r.####.exr", frames=[FIRST], part="diffuse")
    got = {exr.part_name(s): p for s, p in _read_parts(tmp_path / "o" / f"r.{FIRST:04d}.exr")}
    given = {exr.part_name(s): p for s, p in _read_parts(folder / f"two.{FIRST:04d}.exr")}
    assert np.array_equal(_bits(got["beauty"]), _bits(given["beauty"]))
    assert not np.array_equal(_bits(got["diffuse"]), _bits(given["diffuse"]))
    with pytest.raises(FaceGraftError, match="'R' is in part 'beauty' and in part 'diffuse'"):  # ambiguous as one image
        exr.read_image(folder / f"two.{FIRST:04d}.exr")
    assert exr.read_image(folder / f"two.{FIRST:04d}.exr", part="diffuse").channels == ["R", "G", "B"]


def test_a_single_part_plate_gives_beauty_and_layers_parts_or_one_part_without_layers(tmp_path, model):
    plate = make_plate(tmp_path / "plate", FRAMES)
    _render(plate, model, tmp_path / "all" / "r.####.exr", frames=[FIRST], compression="dwaa")
    _render(plate, model, tmp_path / "none" / "r.####.exr", frames=[FIRST], compression="dwaa", layers="none")
    full = _read_parts(tmp_path / "all" / f"r.{FIRST:04d}.exr")
    assert [exr.part_name(s) for s, _ in full] == [layers.PLATE_PART, *LAYER_PARTS]
    assert full[0][0].getattribute("compression").startswith("dwaa")
    assert all(spec.getattribute("compression") == "zip" for spec, _ in full[1:])  # lossless whatever the beauty's
    none = _read_parts(tmp_path / "none" / f"r.{FIRST:04d}.exr")
    assert len(none) == 1 and exr.part_name(none[0][0]) == "" and none[0][0].channelnames == ("R", "G", "B", "A", "Z")
    # the beauty is the same whichever layers are written
    assert np.array_equal(_bits(full[0][1]), _bits(none[0][1]))


def test_no_face_gives_a_one_pixel_layers_part(tmp_path, model):
    plate = make_plate(tmp_path / "plate", FRAMES)
    track = make_track(FRAMES, TRANSFORM, no_face=[FIRST])
    render_shot(open_source(plate), track, model, str(tmp_path / "r.####.exr"), RenderSettings(**PLAIN), frames=[FIRST])
    (beauty, pixels), *parts = _read_parts(tmp_path / f"r.{FIRST:04d}.exr")
    assert [exr.part_name(spec) for spec, _ in parts] == LAYER_PARTS
    for spec, layer in parts:
        assert (spec.x, spec.y, spec.width, spec.height) == (beauty.x, beauty.y, 1, 1) and not layer.any()
        assert spec.getattribute("facegraft/status") == layers.NO_FACE


def test_stmap_is_float32_and_exact_to_float32_rounding(tmp_path, model):
    """stmap.R/G in the layers part hold each pixel's crop position to float32 precision, also under
    a lossy beauty compression: < 1e-6 of the crop, 1/4000 px of a 256 px crop."""
    plate = make_plate(tmp_path / "plate", FRAMES)
    _render(plate, model, tmp_path / "r.####.exr", frames=[FIRST], compression="dwaa")
    parts = {exr.part_name(spec): (spec, p) for spec, p in _read_parts(tmp_path / f"r.{FIRST:04d}.exr")}
    fg, layer = parts[layers.PARTS["stmap"]]
    names = list(fg.channelnames)
    assert str(fg.format) == "float" and layer.dtype == np.float32
    s, t = layer[..., names.index("stmap.R")], layer[..., names.index("stmap.G")]
    xs = np.arange(fg.width, dtype=np.float64) + fg.x - fg.full_x + 0.5
    ys = np.arange(fg.height, dtype=np.float64) + fg.y - fg.full_y + 0.5
    m = align.crop_matrix(TRANSFORM, RES, "whole_face") / RES
    exact_s = m[0, 0] * xs[None, :] + m[0, 1] * ys[:, None] + m[0, 2]
    exact_t = 1.0 - (m[1, 0] * xs[None, :] + m[1, 1] * ys[:, None] + m[1, 2])
    swap_spec, swap = parts[layers.PARTS["swap"]]  # on its own window, inside the STMap's
    inside = np.zeros(s.shape, bool)
    oy, ox = swap_spec.y - fg.y, swap_spec.x - fg.x
    inside[oy:oy + swap_spec.height, ox:ox + swap_spec.width] = swap[..., list(swap_spec.channelnames).index("swap.A")] > 0
    assert inside.sum() > 500
    assert np.abs(s - exact_s)[inside].max() < 1e-6 and np.abs(t - exact_t)[inside].max() < 1e-6
    # half precision would have been 100x coarser: the test can tell them apart
    assert np.abs(s.astype(np.float16) - exact_s)[inside].max() > 1e-5


def test_stereo_and_deep_plates_are_refused_naming_file_and_views(tmp_path):
    folder = tmp_path / "stereo"
    folder.mkdir()
    left, right = plate_parts(FIRST)[1], plate_parts(FIRST)[1]
    for part, view in ((left, "left"), (right, "right")):
        part.spec = exr.oiio.ImageSpec(part.spec)
        part.spec.attribute("oiio:subimagename", view)
        part.spec.attribute("view", view)
    exr.write_parts(folder / f"st.{FIRST:04d}.exr", [left, right])
    with pytest.raises(FaceGraftError, match=r"st\.1001\.exr: frame 1001: a multi-view \(stereo\) plate, views left, right"):
        SequenceSource(str(folder / "st.####.exr")).read(FIRST)
    one = exr.new_spec(8, 4, ["R", "G", "B", "right.R", "right.G", "right.B"])
    one.attribute("multiView", oiio.TypeDesc("string[2]"), ("left", "right"))
    exr.write_image(folder / f"sv.{FIRST:04d}.exr", np.zeros((4, 8, 6), np.float16), one)
    with pytest.raises(FaceGraftError, match="views left, right"):
        SequenceSource(str(folder / "sv.####.exr")).read_parts(FIRST)
    deep = oiio.ImageSpec(4, 4, 2, "float")
    deep.channelnames, deep.deep = ("A", "Z"), True
    assert oiio.ImageBuf(deep).write(str(folder / f"deep.{FIRST:04d}.exr"))
    with pytest.raises(BadFrameError, match=r"deep\.1001\.exr: frame 1001: deep images are not supported"):
        SequenceSource(str(folder / "deep.####.exr")).read(FIRST)
    with pytest.raises(BadFrameError, match="deep images"):
        exr.read_image(folder / f"deep.{FIRST:04d}.exr", FIRST)


def _damaged(folder, good: bytes) -> dict[str, bytes]:
    """Damaged copies of ``good``, in the manner of OpenEXR's damaged-file test corpus."""
    rng = np.random.default_rng(5)
    header_end = good.index(b"\x00", good.index(b"screenWindowWidth")) + 100
    garbage_header = bytearray(good)
    garbage_header[8:header_end] = rng.integers(0, 256, header_end - 8, dtype=np.uint8).tobytes()
    garbage_offsets = bytearray(good)
    garbage_offsets[header_end:header_end + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    return {
        "empty": b"",
        "magic_only": good[:4],
        "cut_header": good[:60],
        "cut_pixels": good[: len(good) // 2],
        "cut_last_byte": good[:-1],
        "garbage_header": bytes(garbage_header),
        "garbage_offsets": bytes(garbage_offsets),
        "garbage": rng.integers(0, 256, len(good), dtype=np.uint8).tobytes(),
    }


@pytest.mark.parametrize("multipart", [False, True])
def test_damaged_files_give_clean_errors_naming_file_and_frame(tmp_path, multipart):
    if multipart:
        plate = write_multipart_plate(tmp_path / "good", [FIRST])
    else:
        plate = make_plate(tmp_path / "good", [FIRST])
    good = (tmp_path / "good" / plate.rsplit("/", 1)[1].replace("####", f"{FIRST:04d}")).read_bytes()
    frame = FIRST + 6
    for kind, data in _damaged(tmp_path, good).items():
        folder = tmp_path / kind
        folder.mkdir()
        (folder / f"bad.{frame:04d}.exr").write_bytes(data)
        source = SequenceSource(str(folder / "bad.####.exr"))
        reads = [source.read_parts, functools.partial(exr.read_image, source.path(frame))]
        if not (multipart and kind == "cut_last_byte"):  # tracking reads the RGB part only, not the last
            reads.append(source.read)
        for read in reads:
            try:
                read(frame)
            except BadFrameError as err:
                assert err.frame == frame and err.path and err.path.endswith(f"bad.{frame:04d}.exr"), kind
                assert "Traceback" not in str(err)
            else:  # only damage that OpenEXR cannot notice is allowed through, and this set has none
                pytest.fail(f"{kind}: a damaged file read without an error")


def test_a_plate_that_changes_resolution_mid_sequence_fails_naming_the_frame(tmp_path, model):
    plate = make_plate(tmp_path / "plate", range(FIRST, FIRST + 4))
    path = plate.replace("####", f"{FIRST + 2:04d}")
    image = exr.read_image(path)
    image.spec.full_width, image.spec.full_height = DISPLAY[0] * 2, DISPLAY[1] * 2
    exr.write_image(path, image.pixels, image.spec)
    source = SequenceSource(plate)
    source.read(FIRST + 1)
    with pytest.raises(BadFrameError, match=r"plate\.1003\.exr: frame 1003: the plate changes resolution: "
                                            r"this frame is 384x288, frame 1001 is 192x144"):
        source.read(FIRST + 2)
    chunk = SequenceSource(plate, frames=f"{FIRST + 2}-{FIRST + 3}")  # a farm chunk agrees: the first frame on disk rules
    chunk.read_parts(FIRST + 3)
    with pytest.raises(BadFrameError, match="frame 1003: the plate changes resolution"):
        chunk.read_parts(FIRST + 2)
    track = make_track(range(FIRST, FIRST + 4), TRANSFORM)
    with pytest.raises(BadFrameError) as err:
        render_shot(open_source(plate), track, model, str(tmp_path / "r.####.exr"), RenderSettings(**PLAIN))
    assert err.value.frame == FIRST + 2 and "changes resolution" in err.value.message
