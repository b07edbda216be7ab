"""Does the source footage cover the plate? Pose and expression of every plate face against the source's.

Before training, a TD wants to know whether the source actor's footage holds a face for every
face the plate asks for: a model cannot paint a blink, an open mouth or a turned head it never
saw. Every face of a faceset has pose and expression measures (``Faceset.measures``: eye
openness, mouth openness, yaw, pitch). For every plate (target) face this finds the nearest source
faces in that space, scaled so one unit is ``SCALES`` (0.1 of eye or mouth openness, 10 degrees of
yaw or pitch), and calls a plate face covered when one is within ``within`` units. It names what an
uncovered face lacks (the measure furthest from its nearest source face: "eyes shut", "mouth open",
"turned image-left", ...), writes ``coverage.json``, a contact sheet of the worst-covered
plate faces beside their nearest source faces (``worst.png``), scatter plots of both facesets
(``coverage.png``) and a plain verdict.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import contact_sheet
from facegraft.inference.track import expression as expr

from .faceset import Faceset, open_faceset, to_srgb

PathLike = Union[str, Path]
FEATURES = ("eyes", "mouth", "yaw", "pitch")
SCALES = {"eyes": 0.1, "mouth": 0.1, "yaw": 10.0, "pitch": 10.0}  # one unit of distance
UNITS = {"eyes": "", "mouth": "", "yaw": " deg", "pitch": " deg"}
WITHIN = 1.0
WORST = 12
NEAREST = 3
# a source with fewer shut-eye faces than this (a blink or two) gives its decoder too few closed eyes
# to draw one on the plate's blinks: the check warns and points to --synthetic-blinks
FEW_SHUT = 10
TILE = 128


@dataclass
class Side:
    """The faces of one side (source or target), every faceset's faces one after the other."""

    facesets: list[Faceset]
    values: np.ndarray  # [N, len(FEATURES)]
    owner: np.ndarray  # [N] index into facesets
    index: np.ndarray  # [N] face index inside its faceset

    def name(self, k: int) -> str:
        return str(self.facesets[int(self.owner[k])].path)

    def frame(self, k: int) -> Any:
        return self.facesets[int(self.owner[k])].entries[int(self.index[k])].get("frame")


@dataclass
class CoverageReport:
    faces: int
    covered: int
    within: float
    verdict: str
    reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def covered_fraction(self) -> float:
        return self.covered / max(self.faces, 1)


def features(fs: Faceset) -> np.ndarray:
    """``[N, len(FEATURES)]``: both eyes' mean openness, mouth openness, yaw, pitch."""
    m = fs.measures()
    col = {name: i for i, name in enumerate(expr.FIELDS)}
    eyes = (m[:, col["eye_left"]] + m[:, col["eye_right"]]) / 2
    return np.column_stack([eyes, m[:, col["mouth"]], m[:, col["yaw"]], m[:, col["pitch"]]])


def _side(paths: Sequence[PathLike], role: str, warnings: list[str]) -> Side:
    if not paths:
        raise FaceGraftError(f"no {role} faceset given", hint=f"pass --{role} FOLDER (repeat it for several)")
    facesets, values, owner, index = [], [], [], []
    for path in paths:
        fs = open_faceset(path)
        v = features(fs)
        bad = ~np.isfinite(v).all(axis=1)
        if bad.all():
            raise FaceGraftError(f"no face of the {role} faceset '{fs.identity}' has usable landmarks", path=str(fs.path),
                                 hint="extract it again with `facegraft extract` (its landmarks are degenerate)")
        if bad.any():
            warnings.append(f"{fs.path}: {int(bad.sum())} of {len(fs)} faces have degenerate landmarks and are left out")
        missing = fs.unmeasured()
        if missing:
            warnings.append(f"{fs.path}: {missing} of {len(fs)} faces have no stored expression record (extracted by an "
                            "older FaceGraft); measured from the stored landmarks, which are smoothed and 2-D: a short "
                            "blink may read half open, pose is the 2-D estimate")
        keep = np.flatnonzero(~bad)
        facesets.append(fs)
        values.append(v[keep])
        owner.append(np.full(len(keep), len(facesets) - 1))
        index.append(keep)
    return Side(facesets, np.concatenate(values), np.concatenate(owner), np.concatenate(index))


def _check_pairing(source: Side, target: Side, warnings: list[str]) -> None:
    for fs in source.facesets:
        if len(fs) == 1:
            warnings.append(f"{fs.path}: the source faceset holds a single face: a model cannot learn the plate's "
                            "expressions from one face; extract more of the source footage")
    first = target.facesets[0]
    for fs in source.facesets + target.facesets[1:]:
        if fs.resolution != first.resolution:
            warnings.append(f"{fs.path}: faceset of {fs.resolution} px, {first.path} is {first.resolution} px: "
                            "training uses one resolution (the bigger crops are resized down); extract both at the "
                            "resolution you train at")
        if fs.coverage != first.coverage:
            warnings.append(f"{fs.path}: coverage '{fs.coverage}', {first.path} has '{first.coverage}': a model "
                            "trains on one coverage; extract both with the same --coverage")


def _lacks(plate: np.ndarray, nearest: np.ndarray) -> list[tuple[int, str]]:
    """What the plate face has that its nearest source face lacks, furthest off first: every measure
    off by half a step or more (at least the furthest), as its column and in words."""
    d = (plate - nearest) / np.array([SCALES[f] for f in FEATURES])
    order = np.argsort(-np.abs(d), kind="stable")
    out: list[tuple[int, str]] = []
    for k in (int(i) for i in order):
        if out and abs(d[k]) < 0.5:
            break
        name, more = FEATURES[k], d[k] > 0
        if name == "eyes":
            text = "eyes wider open" if more else ("eyes shut" if plate[k] < expr.EYE_SHUT else "eyes narrower")
        elif name == "mouth":
            text = ("mouth open" if plate[k] > expr.MOUTH_OPEN else "mouth more open") if more else "mouth shut"
        elif name == "yaw":
            text = "turned image-right" if more else "turned image-left"
        else:
            text = "chin up" if more else "chin down"
        out.append((k, text))
    return out


def _nearest(target: np.ndarray, source: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[T, k]`` and scaled distances ``[T, k]`` of the ``k`` nearest source faces of every target face."""
    scale = np.array([SCALES[f] for f in FEATURES])
    s = source / scale
    k = min(k, len(source))
    idx, dist = [], []
    for start in range(0, len(target), chunk):
        t = target[start:start + chunk] / scale
        d = np.sqrt(((t[:, None, :] - s[None, :, :]) ** 2).sum(-1))
        part = np.argsort(d, axis=1, kind="stable")[:, :k]
        idx.append(part)
        dist.append(np.take_along_axis(d, part, axis=1))
    return np.concatenate(idx), np.concatenate(dist)


def _describe(value: np.ndarray) -> dict[str, float]:
    return {f: round(float(v), 4) for f, v in zip(FEATURES, value)}


def _value(k: int, v: float) -> str:
    return f"{round(v) or 0:.0f} deg" if UNITS[FEATURES[k]] else f"{v:.2f}"


def verdict_text(faces: int, uncovered: int, within: float, reasons: Counter,
                 examples: dict[str, tuple[int, float, float]], source_names: Sequence[str],
                 distances: np.ndarray) -> str:
    """The verdict in a few sentences."""
    step = "one step = 0.1 of eye or mouth openness, or 10 degrees of yaw or pitch"
    spread = (f" Distance to the nearest source face: median {float(np.median(distances)):.2f}, "
              f"worst {float(distances.max()):.2f}.")
    if uncovered == 0:
        return f"Covered: every one of the {faces} plate faces has a source face within {within:g} ({step})." + spread
    share = 100.0 * uncovered / faces
    parts = []
    for reason, count in reasons.most_common():
        k, plate_v, source_v = examples[reason]
        parts.append(f"{reason} ({count} faces; e.g. plate {_value(k, plate_v)} where the nearest source face has "
                     f"{_value(k, source_v)})")
    text = (f"{share:.0f}% of plate faces ({uncovered} of {faces}) have no source face within {within:g} ({step}): "
            f"{'; '.join(parts)} not covered.")
    if uncovered == faces:
        several = len(source_names) > 1
        text += (f" The source faceset{'s' if several else ''} {', '.join(source_names)} cover{'' if several else 's'} "
                 "none of the plate's faces.")
    return text + spread


def _rarely_shut(source: Side, target: Side) -> str:
    """The warning for a source that shuts its eyes on fewer than ``FEW_SHUT`` faces where the plate
    does ("" when it shuts them often enough, or the plate never does)."""
    eyes = FEATURES.index("eyes")
    shut = int((target.values[:, eyes] < expr.EYE_SHUT).sum())
    source_shut = int((source.values[:, eyes] < expr.EYE_SHUT).sum())
    if not shut or source_shut >= FEW_SHUT:
        return ""
    names = ", ".join(str(fs.path) for fs in source.facesets)
    seen = "never shuts its eyes" if not source_shut else f"shuts its eyes on {source_shut} face{'s' if source_shut > 1 else ''} only"
    return (f"the source ({names}) {seen} (eye openness {source.values[:, eyes].min():.2f} at the least) but "
            f"{shut} of the plate's {len(target.values)} faces do: the swap will keep its eyes open there. Add "
            "source footage in which the actor blinks, or train with --synthetic-blinks 0.1 (the source's open-eyed "
            "faces again with their eyes closed by a warp)")


def check_coverage(source: Sequence[PathLike], target: Sequence[PathLike], out: Optional[PathLike] = None, *,
                   within: float = WITHIN, worst: int = WORST) -> CoverageReport:
    """Compare the ``target`` (plate) facesets' faces with the ``source`` facesets'; with ``out``, write
    ``coverage.json``, ``worst.png`` and ``coverage.png`` there."""
    if within <= 0:
        raise FaceGraftError(f"--within {within} must be above 0", hint="1.0 is the default")
    warnings: list[str] = []
    src = _side(source, "source", warnings)
    tgt = _side(target, "target", warnings)
    _check_pairing(src, tgt, warnings)
    nearest, distance = _nearest(tgt.values, src.values, NEAREST)
    covered = distance[:, 0] <= within
    reasons: Counter = Counter()
    examples: dict[str, tuple[int, float, float]] = {}  # reason: the measure, the widest gap's plate and source values
    per_face = []
    for t in range(len(tgt.values)):
        s = int(nearest[t, 0])
        lacks = [] if covered[t] else _lacks(tgt.values[t], src.values[s])
        if lacks:
            k, reason = lacks[0]
            reasons[reason] += 1
            gap = abs(tgt.values[t, k] - src.values[s, k])
            if reason not in examples or gap > abs(examples[reason][1] - examples[reason][2]):
                examples[reason] = (k, float(tgt.values[t, k]), float(src.values[s, k]))
        per_face.append({
            "faceset": tgt.name(t), "frame": tgt.frame(t), "measures": _describe(tgt.values[t]),
            "distance": round(float(distance[t, 0]), 4), "covered": bool(covered[t]),
            "missing": [text for _, text in lacks],
            "nearest": [{"faceset": src.name(int(j)), "frame": src.frame(int(j)), "distance": round(float(d), 4)}
                        for j, d in zip(nearest[t], distance[t])],
        })
    source_names = [str(fs.path) for fs in src.facesets]
    verdict = verdict_text(len(tgt.values), int((~covered).sum()), within, reasons, examples, source_names,
                           distance[:, 0])
    if not covered.any():
        several = len(source_names) > 1
        warnings.append(f"the source faceset{'s' if several else ''} {', '.join(source_names)} cover{'' if several else 's'} "
                        f"none of the plate's {len(tgt.values)} faces: a model trained on {'them' if several else 'it'} "
                        "will not follow the plate")
    rarely_shut = _rarely_shut(src, tgt)
    if rarely_shut:
        warnings.append(rarely_shut)
    report = CoverageReport(faces=len(tgt.values), covered=int(covered.sum()), within=within, verdict=verdict,
                            reasons=dict(reasons), warnings=warnings)
    report.data = {
        "source": [_faceset_info(fs) for fs in src.facesets], "target": [_faceset_info(fs) for fs in tgt.facesets],
        "features": list(FEATURES), "scales": SCALES, "within": within, "faces": report.faces,
        "covered": report.covered, "covered_fraction": round(report.covered_fraction, 4), "missing": dict(reasons),
        "nearest_distance": {"median": round(float(np.median(distance[:, 0])), 4),
                             "max": round(float(distance[:, 0].max()), 4)},
        "ranges": {"source": _ranges(src.values), "target": _ranges(tgt.values)},
        "verdict": verdict, "warnings": warnings, "plate_faces": per_face,
        "source_rarely_shuts_eyes": bool(rarely_shut),  # under FEW_SHUT faces, where the plate does
    }
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        report.paths["json"] = folder / "coverage.json"
        report.paths["json"].write_text(json.dumps(report.data, indent=1))
        report.paths["worst"] = contact_sheet.write_png(folder / "worst.png",
                                                        worst_sheet(src, tgt, nearest[:, 0], distance[:, 0], per_face, worst),
                                                        rgb=True)
        report.paths["plots"] = contact_sheet.write_png(folder / "coverage.png", scatter_plots(src.values, tgt.values, covered),
                                                        rgb=True)
    return report


def _faceset_info(fs: Faceset) -> dict[str, Any]:
    return {"path": str(fs.path), "identity": fs.identity, "faces": len(fs), "resolution": fs.resolution,
            "coverage": fs.coverage}


def _ranges(values: np.ndarray) -> dict[str, list[float]]:
    return {f: [round(float(values[:, k].min()), 4), round(float(values[:, k].max()), 4)] for k, f in enumerate(FEATURES)}


def _face_tile(side: Side, k: int, caption: str) -> np.ndarray:
    fs = side.facesets[int(side.owner[k])]
    face = to_srgb(fs.faces[int(side.index[k])], fs.colorspace, fs.ocio_config)
    tile = np.ascontiguousarray(cv2.resize(face, (TILE, TILE), interpolation=cv2.INTER_AREA if fs.resolution > TILE
                                           else cv2.INTER_CUBIC))
    strip = np.full((30, TILE, 3), 32, np.uint8)
    for row, text in enumerate(caption.split("\n")[:2]):
        cv2.putText(strip, text, (3, 12 + 14 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([tile, strip])


def _short(m: np.ndarray) -> str:
    """Measures for a caption: e eyes, m mouth, y yaw, p pitch."""
    return f"e{m[0]:.2f} m{m[1]:.2f} y{round(m[2]) or 0:.0f} p{round(m[3]) or 0:.0f}"


def worst_sheet(src: Side, tgt: Side, nearest: np.ndarray, distance: np.ndarray, per_face: list[dict[str, Any]],
                count: int = WORST) -> np.ndarray:
    """The ``count`` worst-covered plate faces (spread over the plate), each beside its nearest source face."""
    order = np.argsort(-distance, kind="stable")
    picks: list[int] = []
    for t in order:  # skip faces next to one already shown (the same moment of the plate)
        if all(tgt.owner[t] != tgt.owner[p] or abs(int(tgt.index[t]) - int(tgt.index[p])) > 3 for p in picks):
            picks.append(int(t))
        if len(picks) == count:
            break
    pairs = []
    for t in picks:
        s = int(nearest[t])
        m = tgt.values[t]
        missing = ", ".join(per_face[t]["missing"][:2]) or "covered"
        left = _face_tile(tgt, t, f"plate {tgt.frame(t)}  d {distance[t]:.2f}\n{missing}")
        n = src.values[s]
        right = _face_tile(src, s, f"source {src.frame(s)}\n{_short(n)}")
        cv2.putText(left, _short(m), (3, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                    (255, 255, 0), 1, cv2.LINE_AA)
        pairs.append(np.concatenate([left, np.full((left.shape[0], 2, 3), 80, np.uint8), right], axis=1))
    return contact_sheet.sheet(pairs, columns=3, gap=6, background=16)


def _scatter(source: np.ndarray, target: np.ndarray, covered: np.ndarray, a: int, b: int,
             bounds: tuple[float, float, float, float], size: int, pad: int = 40) -> np.ndarray:
    """One panel: column ``a`` across, ``b`` up, over at least ``bounds`` (a0, a1, b0, b1)."""
    img = np.full((size, size, 3), 250, np.uint8)
    both = np.concatenate([source, target])
    lo_a, hi_a = min(bounds[0], float(both[:, a].min())), max(bounds[1], float(both[:, a].max()))
    lo_b, hi_b = min(bounds[2], float(both[:, b].min())), max(bounds[3], float(both[:, b].max()))
    span = size - 2 * pad

    def px(point: np.ndarray) -> tuple[int, int]:
        return (int(pad + (point[a] - lo_a) / (hi_a - lo_a) * span), int(size - pad - (point[b] - lo_b) / (hi_b - lo_b) * span))

    cv2.rectangle(img, (pad, pad), (size - pad, size - pad), (180, 180, 180), 1)
    for point in source:
        cv2.circle(img, px(point), 2, (31, 119, 180), -1, cv2.LINE_AA)
    for point, ok in zip(target, covered):
        cv2.circle(img, px(point), 3, (44, 160, 44) if ok else (214, 39, 40), -1, cv2.LINE_AA)
    fa, fb = FEATURES[a], FEATURES[b]
    cv2.putText(img, f"{fa}{UNITS[fa]} ->  ({lo_a:.3g} .. {hi_a:.3g})", (pad, size - 12), cv2.FONT_HERSHEY_SIMPLEX,
                0.4, (40, 40, 40), 1, cv2.LINE_AA)
    cv2.putText(img, f"{fb}{UNITS[fb]} ^  ({lo_b:.3g} .. {hi_b:.3g})", (pad, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (40, 40, 40), 1, cv2.LINE_AA)
    return img


def scatter_plots(source: np.ndarray, target: np.ndarray, covered: np.ndarray, size: int = 360) -> np.ndarray:
    """Two panels: yaw against pitch, eye against mouth openness; source faces blue, plate faces
    green where covered and red where not."""
    panels = [_scatter(source, target, covered, 2, 3, (-45.0, 45.0, -30.0, 40.0), size),
              _scatter(source, target, covered, 0, 1, (0.0, 0.45, 0.0, 0.6), size)]
    legend = np.full((22, size * 2, 3), 250, np.uint8)
    for x, text, colour in ((10, "source", (31, 119, 180)), (120, "plate, covered", (44, 160, 44)),
                            (280, "plate, not covered", (214, 39, 40))):
        cv2.circle(legend, (x, 11), 4, colour, -1, cv2.LINE_AA)
        cv2.putText(legend, text, (x + 8, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
    return np.concatenate([np.concatenate(panels, axis=1), legend])
