"""``render_shot`` end to end on real EXRs and tiny ONNX models: untouched pixels bit-identical,
layers consistent, deterministic whatever the chunking, error policies, resume.

The scheduler and the composite have unit tests of their own (test_scheduler, test_composite)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from render_fixtures import FIRST, POISON, aligned_transform, make_plate, make_track, plate_pixels, rotated_transform
from render_models import build_dfm_model, build_identity_model

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import colour, exr, frames, layers
from facegraft.inference.models import dfm, face_model
from facegraft.inference.render.renderer import render_shot
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import align

RES = 64
FRAMES = list(range(FIRST, FIRST + 4))
# the model's matte and colour as they come (not the shipped defaults), unless a test says otherwise
PLAIN = {"erode": 0.0, "feather": 0.0, "color_match": "none", "blend": "alpha"}


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    return make_plate(tmp_path_factory.mktemp("plate"))


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return face_model.load(build_identity_model(tmp_path_factory.mktemp("m") / "id.onnx", RES), device="cpu")


def _render(plate, model, out, track=None, **kwargs):
    track = track or make_track(FRAMES, aligned_transform(RES, "whole_face", (64, 40)))
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in ("frames", "on_error", "overwrite", "readers", "writers")}
    settings = RenderSettings(**{**PLAIN, **kwargs})
    return render_shot(frames.open_source(plate), track, model, str(out), settings, **options)


def _frame(pattern, frame=FIRST):
    return exr.read_image(pattern.replace("####", f"{frame:04d}"))


def _bits(image, names):
    return image.get(names, np.float16).view(np.uint16)


def test_identity_model_reproduces_plate(tmp_path, plate, identity):
    out = str(tmp_path / "r.####.exr")
    report = _render(plate, identity, out)
    assert report.rendered == FRAMES
    o, p = _frame(out), _frame(plate)
    alpha = o.get(["swap.A"])[..., 0]
    assert (alpha > 0.999).sum() > 1000
    np.testing.assert_allclose(o.rgb()[alpha > 0], p.rgb()[alpha > 0], rtol=1e-3, atol=1e-4)
    outside = alpha == 0
    assert np.array_equal(_bits(o, ["R", "G", "B", "Z"])[outside], _bits(p, ["R", "G", "B", "Z"])[outside])
    for (row, col) in POISON:  # NaN, Inf, >1 and negatives all survive
        assert outside[row, col]
        assert np.array_equal(_bits(o, ["R", "G", "B"])[row, col], _bits(p, ["R", "G", "B"])[row, col])
    # header: windows, precision, plate metadata kept; facegraft attributes added
    assert o.data_window == p.data_window and o.display_window == p.display_window
    assert exr.read_image(out.replace("####", f"{FIRST:04d}"), part=0).pixels.dtype == np.float16  # the beauty part
    attrs = exr.attributes(o.spec)
    assert attrs["studio/shot"] == "sh010"
    assert attrs["facegraft/status"] == layers.RENDERED
    assert attrs["facegraft/model_hash"] == identity.info.content_hash
    np.testing.assert_array_equal(o.get(["A"]), 1.0)  # a plate without alpha gets A = 1


def test_colour_shift_only_inside_matte(tmp_path, plate):
    model = face_model.load(build_identity_model(tmp_path / "shift.onnx", RES, shift=[0.05, 0.0, -0.05]), device="cpu")
    out = str(tmp_path / "r.####.exr")
    _render(plate, model, out, feather=6, erode=3)
    o, p = _frame(out), _frame(plate)
    alpha = o.get(["swap.A"])[..., 0]
    with np.errstate(invalid="ignore"):
        diff = o.rgb() - p.rgb()
    assert np.all(diff[alpha > 0.99, 0] > 0.01) and np.all(diff[alpha > 0.99, 2] < -0.01)
    np.testing.assert_allclose(diff[alpha > 0.99, 1], 0.0, atol=2e-3)
    assert np.array_equal(_bits(o, ["R", "G", "B"])[alpha == 0], _bits(p, ["R", "G", "B"])[alpha == 0])
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert soft.sum() > 50  # the feather made a soft edge


def test_swap_over_plate_equals_composite(tmp_path, plate):
    model = face_model.load(build_identity_model(tmp_path / "s.onnx", RES, shift=[0.1, 0.1, 0.1]), device="cpu")
    out = str(tmp_path / "r.####.exr")
    track = make_track(FRAMES, rotated_transform((100, 70), 40, 12))
    _render(plate, model, out, track=track, feather=8, blend="multiband", color_match="rct")
    o, p = _frame(out), _frame(plate)
    swap = o.get(layers.SWAP)
    over = swap[..., :3] + p.rgb() * (1.0 - swap[..., 3:])
    finite = np.isfinite(p.rgb()).all(axis=-1)
    np.testing.assert_allclose(over[finite], o.rgb()[finite], rtol=2e-3, atol=2e-3)
    raw = o.get(["matte.face"])[..., 0]
    near = cv2.dilate((raw > 0).astype(np.uint8), np.ones((41, 41), np.uint8)) > 0  # feather reach
    assert raw.max() > 0.99 and np.all(swap[..., 3][~near] == 0)


def test_stmap_points_into_the_crop(tmp_path, plate, identity):
    out = str(tmp_path / "r.####.exr")
    transform = rotated_transform((96, 72), 40, 20)
    _render(plate, identity, out, track=make_track(FRAMES, transform))
    o, p = _frame(out), _frame(plate)
    st = o.get(layers.STMAP)
    dx, dy = o.spec.x - o.spec.full_x, o.spec.y - o.spec.full_y
    crop = align.crop(p.rgb(), transform, RES, "whole_face", origin=(dx, dy))
    map_x = (st[..., 0] * RES - 0.5).astype(np.float32)
    map_y = ((1.0 - st[..., 1]) * RES - 0.5).astype(np.float32)
    looked_up = cv2.remap(crop, map_x, map_y, cv2.INTER_LINEAR)
    face = o.get(["swap.A"])[..., 0] > 0.99
    assert face.sum() > 500
    # a half-pixel error would show as 0.005 on the 0.01/px ramps in R and G
    np.testing.assert_allclose(looked_up[face][:, :2], p.rgb()[face][:, :2], atol=2.5e-3)


def test_holdout_pixels_untouched(tmp_path, plate):
    model = face_model.load(build_identity_model(tmp_path / "s.onnx", RES, shift=[0.2, 0.2, 0.2]), device="cpu")
    hold = tmp_path / "hold"
    hold.mkdir()
    for frame in FRAMES:  # a "hand" over the left half of the face: display x 80..100
        pixels = np.zeros((144, 192, 1), np.float16)
        pixels[:, 80:100] = 1.0
        spec = exr.new_spec(192, 144, ["A"], np.float16)
        exr.write_image(str(hold / f"hands.{frame:04d}.exr"), pixels, spec)
    out = str(tmp_path / "r.####.exr")
    _render(plate, model, out, holdout=str(hold / "hands.####.exr"), feather=4)
    o, p = _frame(out), _frame(plate)
    dx, dy = -(o.spec.x - o.spec.full_x), -(o.spec.y - o.spec.full_y)  # display -> array offset
    held = np.zeros(o.pixels.shape[:2], bool)
    held[dy:dy + 144, 80 + dx:100 + dx] = True
    assert np.array_equal(_bits(o, ["R", "G", "B"])[held], _bits(p, ["R", "G", "B"])[held])
    matte = exr.read_image(out.replace("####", f"{FIRST:04d}"), part=layers.PARTS["matte"])  # the face's region
    mx, my = matte.spec.x - o.spec.x, matte.spec.y - o.spec.y
    in_region = np.zeros_like(held)
    in_region[my:my + matte.spec.height, mx:mx + matte.spec.width] = True
    assert (held & in_region).sum() > 500 and np.all(o.get(["matte.holdout"])[held & in_region] == 1.0)
    changed = np.any(o.rgb() != p.rgb(), axis=-1) & np.isfinite(p.rgb()).all(axis=-1)
    assert changed[:, 100 + dx:].sum() > 200  # the rest of the face was swapped


def test_deterministic_and_chunk_independent(tmp_path, plate):
    model = face_model.load(build_identity_model(tmp_path / "m.onnx", RES, shift=[0.01, 0, 0], conv_layers=2),
                            device="cpu", batch=3)
    track = make_track(FRAMES, rotated_transform((96, 72), 44, -8), moving=1.3)
    a, b, c = (str(tmp_path / name / "r.####.exr") for name in ("a", "b", "c"))
    _render(plate, model, a, track=track, color_match="lct", blend="multiband", feather=5)
    _render(plate, model, b, track=track, color_match="lct", blend="multiband", feather=5)
    for frame in FRAMES:  # chunks of one frame each
        _render(plate, model, c, track=track, color_match="lct", blend="multiband", feather=5, frames=[frame])
    for frame in FRAMES:
        name = f"r.{frame:04d}.exr"
        data = (tmp_path / "a" / name).read_bytes()
        assert data == (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


def test_no_face_frames_pass_through(tmp_path, plate, identity):
    out = str(tmp_path / "r.####.exr")
    track = make_track(FRAMES, aligned_transform(RES, "whole_face", (64, 40)), no_face=[FIRST + 1])
    report = _render(plate, identity, out, track=track)
    assert report.no_face == [FIRST + 1]
    o, p = _frame(out, FIRST + 1), _frame(plate, FIRST + 1)
    assert np.array_equal(_bits(o, ["R", "G", "B", "Z"]), _bits(p, ["R", "G", "B", "Z"]))
    assert not np.any(o.get(list(layers.FACEGRAFT)))
    assert exr.attributes(o.spec)["facegraft/status"] == layers.NO_FACE


def test_plate_alpha_kept_outside(tmp_path, identity):
    plate = make_plate(tmp_path / "pa", alpha=True)
    out = str(tmp_path / "r.####.exr")
    _render(plate, identity, out, frames=[FIRST])
    o, p = _frame(out), _frame(plate)
    alpha = o.get(["swap.A"])[..., 0]
    assert np.array_equal(_bits(o, ["A"])[alpha == 0], _bits(p, ["A"])[alpha == 0])
    assert np.all(o.get(["A"])[alpha > 0.999] >= 0.999)


def test_dfm_model_renders(tmp_path, plate):
    model = face_model.load(build_dfm_model(tmp_path / "actor.dfm", RES), device="cpu")
    out = str(tmp_path / "r.####.exr")
    report = _render(plate, model, out, frames=[FIRST])
    assert report.rendered == [FIRST]
    o, p = _frame(out), _frame(plate)
    alpha = o.get(["swap.A"])[..., 0]
    assert (alpha > 0.99).sum() > 1000
    inner = alpha > 0.99  # the model sees sRGB-encoded 0..1: what comes back is the plate clipped there
    to_srgb, back = colour.converter("ACEScg", dfm.COLORSPACE), colour.converter(dfm.COLORSPACE, "ACEScg")
    expected = back(np.clip(to_srgb(p.rgb()[inner]), 0.0, 1.0))
    np.testing.assert_allclose(o.rgb()[inner], expected, rtol=2e-3, atol=2e-3)


def _corrupt(plate, frame, tmp_path):
    import shutil

    folder = tmp_path / "corrupt"
    shutil.copytree(str(plate.rsplit("/", 1)[0]), folder)
    path = folder / f"plate.{frame:04d}.exr"
    path.write_bytes(path.read_bytes()[:400])
    return str(folder / "plate.####.exr")


def test_corrupt_frame_policies(tmp_path, plate, identity):
    bad = _corrupt(plate, FIRST + 2, tmp_path)
    with pytest.raises(BadFrameError) as err:
        _render(bad, identity, tmp_path / "fail" / "r.####.exr")
    assert err.value.frame == FIRST + 2 and "plate.1003.exr" in str(err.value)
    report = _render(bad, identity, tmp_path / "skip" / "r.####.exr", on_error="skip")
    assert report.skipped == [FIRST + 2] and len(report.rendered) == 3
    assert not (tmp_path / "skip" / "r.1003.exr").exists()
    report = _render(bad, identity, tmp_path / "hold" / "r.####.exr", on_error="hold")
    assert report.held == [FIRST + 2]
    held = exr.read_image(tmp_path / "hold" / "r.1003.exr")
    attrs = exr.attributes(held.spec)
    assert attrs["facegraft/status"] == layers.HELD and attrs["facegraft/held_from"] == FIRST + 1
    assert np.array_equal(_bits(held, ["R", "G", "B"]), _bits(_frame(plate, FIRST + 1), ["R", "G", "B"]))


def test_resume_skips_complete_frames(tmp_path, plate, identity):
    out = tmp_path / "r.####.exr"
    _render(plate, identity, out, frames=[FIRST, FIRST + 1])
    stale = tmp_path / ".r.1003.999.1.tmp.exr"
    stale.write_bytes(b"half a frame")
    before = (tmp_path / "r.1001.exr").stat().st_mtime_ns
    report = _render(plate, identity, out)
    assert report.existing == [FIRST, FIRST + 1] and report.rendered == [FIRST + 2, FIRST + 3]
    assert (tmp_path / "r.1001.exr").stat().st_mtime_ns == before
    assert not stale.exists()
    report = _render(plate, identity, out, overwrite=True)
    assert report.rendered == FRAMES


def test_missing_track_frames(tmp_path, plate, identity):
    track = make_track(FRAMES[:2], aligned_transform(RES, "whole_face", (64, 40)))
    with pytest.raises(FaceGraftError, match="no entry for frame"):
        _render(plate, identity, tmp_path / "r.####.exr", track=track)
    assert not list(tmp_path.glob("*.exr"))


def test_layers_option_leaves_layers_out_and_keeps_the_rest(tmp_path, plate, identity):
    track = make_track(FRAMES, rotated_transform((96, 72), 40, 20))
    _render(plate, identity, tmp_path / "all" / "r.####.exr", track=track, feather=4, frames=[FIRST])
    _render(plate, identity, tmp_path / "none" / "r.####.exr", track=track, feather=4, frames=[FIRST], layers="none")
    _render(plate, identity, tmp_path / "some" / "r.####.exr", track=track, feather=4, frames=[FIRST],
            layers="stmap,swap")
    full, none, some = (_frame(str(tmp_path / n / "r.####.exr")) for n in ("all", "none", "some"))
    assert set(full.channels) == {*layers.BEAUTY, *layers.FACEGRAFT, "Z"}
    assert set(none.channels) == {"R", "G", "B", "A", "Z"}
    assert set(some.channels) == {*layers.BEAUTY, *layers.SWAP, *layers.STMAP, "Z"}
    beauty = [*layers.BEAUTY, "Z"]
    for image in (none, some):
        assert np.array_equal(_bits(image, beauty), _bits(full, beauty))
    assert np.array_equal(_bits(some, list(layers.SWAP + layers.STMAP)), _bits(full, list(layers.SWAP + layers.STMAP)))
    with pytest.raises(FaceGraftError, match="--layers"):
        RenderSettings(layers="swap,depth")


def test_strip_writer_gives_write_image_bytes(tmp_path):
    pixels, names = plate_pixels(FIRST, alpha=True)
    spec = exr.new_spec(pixels.shape[1], pixels.shape[0], names, np.float16)
    spec.x, spec.y = -8, -6
    spec.attribute("DateTime", "2024:01:01 00:00:00")
    for compression in ("zip", "dwaa", "piz"):
        spec.attribute("compression", compression)
        exr.write_image(tmp_path / "whole.exr", pixels, spec)
        for strip in (1, 7, 64, 1000):
            exr.write_image_rows(tmp_path / "rows.exr", spec, lambda y0, y1: pixels[y0:y1].copy(), strip=strip)
            assert (tmp_path / "rows.exr").read_bytes() == (tmp_path / "whole.exr").read_bytes(), (compression, strip)
    with pytest.raises(ValueError, match="rows 0-"):
        exr.write_image_rows(tmp_path / "bad.exr", spec, lambda y0, y1: pixels[y0:y1, :3].copy())
    assert not list(tmp_path.glob(".*tmp*")) and not (tmp_path / "bad.exr").exists()


def test_model_batches_depend_on_frame_numbers_only(tmp_path, plate):
    model = face_model.load(build_identity_model(tmp_path / "m.onnx", RES), device="cpu", batch=4)
    calls: list[list[int]] = []
    run = model.run

    def recording(faces):
        calls.append([i for i in range(len(faces)) if faces[i].any()])
        return run(faces)

    model.run = recording  # type: ignore[method-assign]
    _render(plate, model, tmp_path / "a" / "r.####.exr", frames=[FIRST + 1, FIRST + 2, FIRST + 3])
    # frame f sits in slot f % 4 of the batch for its block f // 4, however the chunk starts
    assert calls == [[(FIRST + 1) % 4, (FIRST + 2) % 4], [(FIRST + 3) % 4]]  # 1002, 1003 | 1004
    calls.clear()
    _render(plate, model, tmp_path / "b" / "r.####.exr", frames=[FIRST + 2])
    assert calls == [[(FIRST + 2) % 4]]


def test_a_plate_without_date_gives_a_header_without_date(tmp_path, identity):
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), np.full((144, 192, 3), 120, np.uint8))
    track = make_track([1], aligned_transform(RES, "whole_face", (64, 40)))
    settings = RenderSettings()
    out = str(tmp_path / "r.####.exr")
    render_shot(frames.open_source(str(still)), track, identity, out, settings)
    attrs = exr.attributes(exr.read_header(out.replace("####", "0001")))
    assert "DateTime" not in attrs  # OpenImageIO would stamp the time of writing: bytes would vary run to run


def test_multiband_on_a_dark_plate_stays_positive(tmp_path):
    """A bright face blended into a dark plate: linear-space pyramids would dip below zero at the
    face's features (black/magenta blotches); blending in the model's log space cannot."""
    folder = tmp_path / "dark"
    folder.mkdir()
    spec = exr.new_spec(200, 140, ["R", "G", "B"], np.float16)
    for frame in FRAMES:
        yy, xx = np.mgrid[0:140, 0:200]
        checker = ((yy // 4 + xx // 4) % 2).astype(np.float16)  # dark texture: 0.001 / 0.05
        pixels = np.repeat((0.001 + 0.049 * checker)[..., None], 3, axis=2).astype(np.float16)
        exr.write_image(folder / f"dark.{frame:04d}.exr", pixels, spec)
    model = face_model.load(build_identity_model(tmp_path / "bright.onnx", RES, shift=[0.45, 0.3, 0.35], mask="ellipse"),
                            device="cpu")
    out = str(tmp_path / "r.####.exr")
    _render(str(folder / "dark.####.exr"), model, out, blend="multiband", feather=4)
    rgb = _frame(out).rgb()
    alpha = _frame(out).get(["swap.A"])[..., 0]
    assert alpha.max() > 0.99
    assert rgb[alpha > 0].min() >= 0.0


@pytest.mark.parametrize("spelling", ["./plate.####.exr", "plate.%04d.exr", "sub/../plate.####.exr"])
def test_out_spelled_differently_is_still_the_plate(tmp_path, identity, spelling):
    plate = make_plate(tmp_path / "plates", frames=FRAMES[:1])
    (tmp_path / "plates" / "sub").mkdir()
    before = (tmp_path / "plates" / f"plate.{FIRST}.exr").read_bytes()
    out = str(tmp_path / "plates") + "/" + spelling
    with pytest.raises(FaceGraftError, match="the plate itself"):
        _render(plate, identity, out, frames=[FIRST], overwrite=True)
    assert (tmp_path / "plates" / f"plate.{FIRST}.exr").read_bytes() == before


def test_mixed_precision_plate_keeps_each_channel_precision(tmp_path, plate, identity):
    """Half RGB + float Z: RGB, A and every FaceGraft layer but the (float) STMap stay half, Z stays
    float bit for bit, and the half channels hold the bytes a half plate with the same pixels gives."""
    folder = tmp_path / "mixed"
    for frame in FRAMES[:2]:
        pixels, names = plate_pixels(frame)
        values = pixels.astype(np.float32)
        values[..., names.index("Z")] += np.float32(1.0 / 3.0)  # not representable in half
        spec = exr.make_spec(exr.read_header(plate.replace("####", f"{frame:04d}")), names,
                                formats=[np.float16, np.float16, np.float16, np.float32])
        exr.write_image(folder / f"plate.{frame:04d}.exr", values, spec)
    mixed = str(folder / "plate.####.exr")
    assert [str(f) for f in exr.read_header(mixed.replace("####", f"{FIRST:04d}")).channelformats] == \
        ["half", "half", "half", "float"]
    _render(mixed, identity, tmp_path / "m" / "r.####.exr", frames=FRAMES[:2], feather=4)
    _render(plate, identity, tmp_path / "h" / "r.####.exr", frames=FRAMES[:2], feather=4)
    for frame in FRAMES[:2]:
        out = _frame(str(tmp_path / "m" / "r.####.exr"), frame)
        formats = dict(zip(out.channels, (str(f) for f in out.spec.channelformats)))
        assert formats.pop("Z") == "float" and formats.pop("stmap.R") == formats.pop("stmap.G") == "float"
        assert set(formats.values()) == {"half"}
        assert set(formats) == {*layers.BEAUTY, *layers.SWAP, *layers.MATTES}
        source = _frame(mixed, frame)
        assert np.array_equal(out.get(["Z"]).view(np.uint32), source.get(["Z"]).view(np.uint32))
        reference = _frame(str(tmp_path / "h" / "r.####.exr"), frame)
        names = [*layers.BEAUTY, *layers.FACEGRAFT]
        assert np.array_equal(_bits(out, names), _bits(reference, names))
        assert (out.get(["swap.A"]) > 0).sum() > 1000


def test_hold_without_any_readable_frame_still_reports_progress(tmp_path, identity):
    plate = make_plate(tmp_path / "plates", frames=FRAMES[:2])
    for frame in FRAMES[:2]:
        path = tmp_path / "plates" / f"plate.{frame}.exr"
        path.write_bytes(path.read_bytes()[:400])

    class Counting:
        def __init__(self):
            self.updates: list[tuple[int, dict]] = []

        def update(self, n=1, **info):
            self.updates.append((n, info))

        def warn(self, message, **info):
            pass

    progress = Counting()
    settings = RenderSettings()
    track = make_track(FRAMES[:2], aligned_transform(RES, "whole_face", (64, 40)))
    report = render_shot(frames.open_source(plate), track, identity, str(tmp_path / "r.####.exr"), settings,
                         on_error="hold", progress=progress)  # type: ignore[arg-type]
    assert report.skipped == FRAMES[:2] and not report.held
    assert [(n, info["status"]) for n, info in progress.updates] == [(1, "skipped"), (1, "skipped")]
