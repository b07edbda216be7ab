"""Batches of faces for training, drawn from facesets with a seeded generator.

**Balanced sampling.** A shot's footage is mostly one look: a talking head is open-eyed and
frontal nine frames in ten, so drawn uniformly the blinks, the open mouths and the turned heads
are a few percent of what the model sees and end up averaged away. DeepFaceLab's answer is
"uniform yaw": bin the faces by yaw and draw the bins uniformly. FaceGraft extends it to the
expression: each face is measured (yaw, pitch, left and right eye openness, mouth openness;
``facegraft.inference.track.expression``), each measure is cut into bins of a fixed width
(``BIN_WIDTHS``: 7.5 degrees, 0.05 of openness), and a draw picks a measure at random, one of
its occupied bins at random, then a face in that bin. ``balance`` mixes this with the plain
uniform draw (0: uniform over faces, 1: uniform over bins), so a lone odd face is favoured but
cannot take over.

**Validation split.** ``split_validation`` holds out a fraction of every identity's faces,
spread evenly over its facesets, for the held-out losses the loop reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.progress import say
from facegraft.inference.track import expression

from .faceset import FEATURE_MATTES, Faceset, open_faceset

# the measures balanced sampling and the expression loss use (columns of ``IdentityData.measures``)
MEASURES = ("yaw", "pitch", "eye_left", "eye_right", "mouth")
BIN_WIDTHS = (7.5, 7.5, 0.05, 0.05, 0.05)  # degrees, degrees, openness, openness, openness
FLIPPED = (0, 1, 3, 2, 4)  # a horizontal flip swaps the eyes ...
FLIP_SIGN = (-1.0, 1.0, 1.0, 1.0, 1.0)  # ... and turns the yaw the other way
MIN_FACES = 2  # an identity needs at least this many training faces
DEFAULT_BALANCE = 0.5
MOUTH_OUTER = (61, 291, 0, 17)  # outer lips: corners (image left, right), top, bottom
BROWS = ((70, 63, 105, 66, 107), (300, 293, 334, 296, 336))  # upper brow line, outer end to inner


@dataclass
class Batch:
    """What a training step draws for one identity."""

    faces: torch.Tensor  # [B,3,R,R] model space
    mattes: torch.Tensor  # [B,2,R,R] face, eyes+mouth
    measures: Optional[torch.Tensor] = None  # [B,len(MEASURES)] (NaN where unknown)


def balanced_weights(measures: np.ndarray, balance: float = DEFAULT_BALANCE,
                     widths: Sequence[float] = BIN_WIDTHS) -> np.ndarray:
    """Draw probabilities ``[N]`` (summing to 1): ``balance`` x uniform over each measure's bins,
    the rest uniform over faces. Faces with an unknown (NaN) measure share a bin of their own."""
    n = len(measures)
    uniform = np.full(n, 1.0 / n)
    if balance <= 0 or n == 0:
        return uniform
    per_measure = []
    for column, width in zip(np.asarray(measures, np.float64).T, widths):
        bins = np.where(np.isfinite(column), np.floor(np.nan_to_num(column) / width), np.iinfo(np.int32).min)
        _, inverse, counts = np.unique(bins, return_inverse=True, return_counts=True)
        per_measure.append(1.0 / (counts[inverse] * len(counts)))
    weights = (1.0 - balance) * uniform + balance * np.mean(per_measure, axis=0)
    return weights / weights.sum()


def _ellipse(shape: int, centre: np.ndarray, axis: np.ndarray, along: float, across: float) -> np.ndarray:
    """A soft-edged (one pixel) ellipse matte ``[shape, shape]``; ``axis`` is its long direction (unit)."""
    yy, xx = np.mgrid[0:shape, 0:shape].astype(np.float32) + 0.5
    dx, dy = xx - centre[0], yy - centre[1]
    u = (dx * axis[0] + dy * axis[1]) / max(along, 1e-6)
    v = (-dx * axis[1] + dy * axis[0]) / max(across, 1e-6)
    r = np.sqrt(u * u + v * v)
    return np.clip((1.0 - r) * min(along, across) + 0.5, 0.0, 1.0)


def feature_regions(points: np.ndarray, res: int) -> np.ndarray:
    """Where the eyes and the mouth are, ``[res, res]`` 0..1, whatever they are doing.

    The faceset's eye mattes are the lid outlines and its mouth matte the mouth's inside: a shut
    eye or a closed mouth has almost none, which would weigh a blink least of all. These
    ellipses are sized from the eye corners, the brows and the outer lips instead (1.5 x the eye's
    width by 0.9 x; the brow's length by a third of it; the mouth's width 1.5 x by its height plus
    half its width), so the extra weight sits on the eyes, brows (a frown) and mouth, open or
    shut. Empty where the landmarks are degenerate.
    """
    p = np.asarray(points, np.float32)[:, :2]
    out = np.zeros((res, res), np.float32)
    if len(p) < 468:
        return out
    for a, b in expression.EYE_CORNERS:
        span = p[b] - p[a]
        width = float(np.hypot(*span))
        if width > 1.0:
            out = np.maximum(out, _ellipse(res, (p[a] + p[b]) / 2, span / width, 0.75 * width, 0.45 * width))
    for brow in BROWS:
        ends = p[brow[0]], p[brow[4]]
        length = float(np.hypot(*(ends[1] - ends[0])))
        if length > 1.0:
            out = np.maximum(out, _ellipse(res, p[list(brow)].mean(0), (ends[1] - ends[0]) / length, 0.6 * length,
                                           0.2 * length))
    left, right, top, bottom = p[MOUTH_OUTER[0]], p[MOUTH_OUTER[1]], p[MOUTH_OUTER[2]], p[MOUTH_OUTER[3]]
    width, height = float(np.hypot(*(right - left))), float(np.hypot(*(bottom - top)))
    if width > 1.0:
        centre = (left + right + top + bottom) / 4
        out = np.maximum(out, _ellipse(res, centre, (right - left) / width, 0.75 * width, 0.5 * height + 0.25 * width))
    return out


@dataclass
class IdentityData:
    """The faces of one identity (all its facesets pooled, or the training / held-out part of them)."""

    identity: str
    facesets: list[Faceset]
    rows: Optional[np.ndarray] = None  # [K,2] (faceset number, face number); None: every face
    measures: Optional[np.ndarray] = None  # [K,len(MEASURES)] per row
    weights: Optional[np.ndarray] = None  # [K] draw probabilities; None: uniform
    notes: list[str] = field(default_factory=list)
    # faces made in memory (``blink.add_synthetic_blinks``), read after the facesets: rows (len(facesets), i)
    synthetic: Optional[Faceset] = None

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.array([(k, i) for k, fs in enumerate(self.sources) for i in range(len(fs))],
                                 np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        assert self.rows is not None
        return len(self.rows)

    @property
    def paths(self) -> str:
        return ", ".join(str(fs.path) for fs in self.facesets)

    @property
    def sources(self) -> list[Faceset]:
        """What the rows index: the facesets, then the synthetic faces (when there are any)."""
        return self.facesets + ([self.synthetic] if self.synthetic is not None else [])

    def subset(self, picks: np.ndarray) -> IdentityData:
        """The faces at ``picks`` (positions in this set), uniform draws."""
        assert self.rows is not None
        measures = None if self.measures is None else self.measures[picks]
        return IdentityData(self.identity, self.facesets, self.rows[picks], measures, None, list(self.notes),
                            self.synthetic)

    def measure(self) -> IdentityData:
        """Attach each face's measures (``Faceset.measures``: the expression records stored at
        extraction, from the tracker's raw landmarks; else measured on the stored landmarks)."""
        assert self.rows is not None
        columns = [expression.FIELDS.index(name) for name in MEASURES]
        per_faceset = []
        for fs in self.sources:
            per_faceset.append(fs.measures()[:, columns])
            if fs.unmeasured():
                self.notes.append(f"{fs.unmeasured()} of the {len(fs)} faces of {fs.path} have no expression record "
                                  "(extracted by an older FaceGraft): their eye and mouth openness is measured on the "
                                  "smoothed landmarks, which miss short blinks; extract again to sample and train on them")
        self.measures = np.stack([per_faceset[k][i] for k, i in self.rows]) if len(self) else np.zeros((0, len(MEASURES)))
        return self

    def balance(self, amount: float) -> IdentityData:
        """Set the draw probabilities (``balanced_weights``); needs ``measure()`` first."""
        assert self.measures is not None
        self.weights = balanced_weights(self.measures, amount)
        return self

    def _location(self, position: int) -> tuple[Faceset, int]:
        assert self.rows is not None
        k, i = self.rows[position]
        return self.sources[int(k)], int(i)

    def load(self, positions: Sequence[int], res: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Faces ``[B,3,res,res]`` (model space) and mattes ``[B,2,res,res]``: the face, and the eyes
        and mouth (``feature_regions`` joined with the faceset's own eye and mouth mattes)."""
        faces, mattes = [], []
        for p in positions:
            fs, j = self._location(int(p))
            faces.append(np.asarray(fs.faces[j], np.float32))
            m = fs.mattes[j].astype(np.float32) / 255.0
            face = m[..., fs.matte_names.index("face")]
            features = np.max([m[..., fs.matte_names.index(n)] for n in FEATURE_MATTES if n in fs.matte_names]
                              + [feature_regions(fs.landmarks[j], fs.resolution)], axis=0)
            mattes.append(np.stack([face, features], -1))
        x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).contiguous()
        m_t = torch.from_numpy(np.stack(mattes)).permute(0, 3, 1, 2).contiguous()
        if x.shape[-1] != res:
            x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
            m_t = F.interpolate(m_t, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        return x, m_t

    def batch(self, positions: Sequence[int], res: int) -> Batch:
        faces, mattes = self.load(positions, res)
        measures = None if self.measures is None else torch.from_numpy(self.measures[list(positions)]).float()
        return Batch(faces, mattes, measures)

    def sample(self, g: torch.Generator, batch: int, res: int) -> Batch:
        """``batch`` faces drawn with replacement (by ``weights`` when set)."""
        if self.weights is None:
            positions = torch.randint(len(self), (batch,), generator=g).tolist()
        else:
            positions = torch.multinomial(torch.from_numpy(self.weights), batch, replacement=True, generator=g).tolist()
        return self.batch(positions, res)


def load_identities(paths: Sequence[str]) -> dict[str, IdentityData]:
    """Open every faceset and group them by identity (order of first appearance kept)."""
    if not paths:
        raise FaceGraftError("no facesets given", hint="pass --faceset FOLDER once per identity (at least two)")
    grouped: dict[str, list[Faceset]] = {}
    first: Faceset | None = None
    for path in paths:
        fs = open_faceset(path)
        if first is None:
            first = fs
        else:
            for key in ("coverage", "colorspace"):
                if getattr(fs, key) != getattr(first, key):
                    raise FaceGraftError(
                        f"facesets disagree on {key}: {first.path} has {getattr(first, key)!r}, this one {getattr(fs, key)!r}",
                        path=str(fs.path), hint=f"extract every faceset of a model with the same --{key.replace('colorspace', 'model-colorspace')}")
        grouped.setdefault(fs.identity, []).append(fs)
    if len(grouped) < 2:
        only = next(iter(grouped))
        raise FaceGraftError(f"every faceset given is of one identity ('{only}'); a face model needs two",
                             hint="add --faceset for the other actor (the source face and the plate's face)")
    groups = {name: IdentityData(name, facesets) for name, facesets in grouped.items()}
    for d in groups.values():
        if len(d) < MIN_FACES:
            raise FaceGraftError(f"the faceset of '{d.identity}' holds {len(d)} face; a model needs at least {MIN_FACES} "
                                 "of each identity (hundreds train well)", path=d.paths,
                                 hint="extract more frames of this actor (all of a clip: `facegraft extract ... --frames` "
                                      "covering more of it, or more clips into the same faceset)")
    return groups


def check_resolution(data: dict[str, IdentityData], res: int, json_lines: bool = False) -> None:
    """Refuse facesets smaller than the training resolution (upscaled crops teach blur); say which get downscaled."""
    for d in data.values():
        for fs in d.facesets:
            if fs.resolution < res:
                raise FaceGraftError(f"the faceset of '{fs.identity}' is {fs.resolution} px but the run trains at {res} px; "
                                     "upscaled crops would teach the model blur", path=str(fs.path),
                                     hint=f"extract it again with --res {res}, or train at --res {fs.resolution}")
            if fs.resolution > res:
                say(f"note: {fs.path} is {fs.resolution} px and is resized to {res} px for training "
                    f"(extract at --res {res} for crops identical to the renderer's)", json_lines)


def split_validation(data: dict[str, IdentityData], fraction: float) -> tuple[dict[str, IdentityData], dict[str, IdentityData]]:
    """(training, held-out) faces of every identity; the held-out ones are spread evenly over its faces."""
    if not 0.0 <= fraction < 1.0:
        raise FaceGraftError(f"--val {fraction} is not a fraction of the faces", hint="use 0 (no validation) to 0.5, e.g. --val 0.1")
    if fraction == 0.0:
        return data, {}
    train, held = {}, {}
    for name, d in data.items():
        count = max(1, int(round(len(d) * fraction)))
        picks = np.unique(np.linspace(0, len(d) - 1, count).round().astype(np.int64))
        rest = np.setdiff1d(np.arange(len(d)), picks)
        if len(rest) < MIN_FACES:
            raise FaceGraftError(f"--val {fraction} holds out {len(picks)} of the {len(d)} faces of '{name}' and leaves "
                                 f"{len(rest)} to train on (at least {MIN_FACES} are needed)", path=d.paths,
                                 hint="lower --val, pass --val 0, or extract more faces of this actor")
        train[name], held[name] = d.subset(rest), d.subset(picks)
    return train, held
