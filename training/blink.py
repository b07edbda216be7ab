"""Synthetic blinks: shut the eyes of a source actor whose footage never shuts them.

A decoder only draws what its faces showed it: a source actor who keeps their eyes open in every
frame gives a swap that stares through the plate actor's blinks, and conditioning on the
expression cannot help, since none of their faces ever had a shut eye. ``close_eyes`` makes such
faces from open-eyed ones by warping the image: per eye, the upper lid is pulled down onto the
lower lid and the lid skin above it is stretched over the eyeball, which at training resolutions
(64-256 px) reads as a shut eye. ``add_synthetic_blinks`` adds such faces (blinks, winks,
squints) to an identity's training faces, with their moved landmarks and measures.

**The warp**, per eye, in the eye's own frame: ``u`` along the corner line, ``v`` across it
(downwards), crop px. Each column ``u`` between the corners has an upper lid ``v_U(u)`` and a
lower lid ``v_L(u)`` (the mesh's whole lid rings, ``landmarks.LID_MESH``, as polylines). The
eyeball band runs from the upper lid to ``RIM`` x the lid gap below the lower lid (the lower
lid's points sit a little inside the white of the eye, whose sliver would stay open), height
``h(u)``. Closing by ``a`` moves every point along its column only:

* below the band: nothing moves;
* in the band (the eyeball): squeezed towards its bottom ``B``, ``v -> B - (1 - a) (B - v)``;
* above the upper lid, ``s = v_U - v`` away from it: ``v -> v + a h f(s)``, ``f`` a Gaussian fade
  (``REACH`` eye widths, reaching 0 at ``CUTOFF`` of them): the lid skin stretches down over the
  eyeball, the brow barely moves.

Beyond the corners the gap is 0, so nothing moves there. The motion is monotone along every
column, so the backward map ``cv2.remap`` samples with is its exact inverse (closed form in the
band, Newton's method above it): the upper lid lands on the bottom of the band. The image is
warped with ``a (1 - SLIT)``, so a shut eye keeps a slit a tenth of the band high: the squeezed
eyeball and lashes in it (averaged over each pixel) draw the dark line where real lids meet
(without it the iris model reads a smooth, fully closed lid as less shut than a nearly closed one). The landmarks
(``move_points``) follow the same motion, except the lid rings, which are put where a tracker
would put them: the upper lid's points onto the lower lid's points below them (``a`` of the
way), the lower lid's where they were.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np

from facegraft.inference.progress import say
from facegraft.inference.track import expression
from facegraft.inference.track.landmarks import LID_MESH

from .data import MEASURES, IdentityData
from .faceset import EXPRESSION, Faceset

# per eye, image-left first: the mesh's lid rings without the corners (the points the iris model's
# eye contour replaces), outer to inner, each upper point above its lower one
LOWER_LID = tuple(tuple(ring[:7]) for ring in LID_MESH)
UPPER_LID = tuple(tuple(ring[7:]) for ring in LID_MESH)
RIM = 0.15  # the band reaches this fraction of the lid gap below the lower lid's points
REACH = 0.25  # the fade above the upper lid: Gaussian sigma, in eye widths
CUTOFF = 3.0  # ... reaching 0 at this many sigmas (nothing further up moves)
SLIT = 0.1  # a shut eye's band keeps this fraction of its height (the line where the lids meet)
NEWTON = 12  # iterations inverting the stretch above the lid (its slope is at least 1: a few suffice)
SUPERSAMPLE = 8  # samples per pixel across the squeezed band
PAD = 3  # px around the moved pixels that the bicubic samples read
MIN_WIDTH = 2.0  # an eye narrower than this (crop px) is left as it is
POINTS = 478  # FaceMesh with irises

# add_synthetic_blinks: the shares of the kinds of closing, and their amounts (uniform in a range)
KINDS = (("blink", 0.6), ("wink", 0.15), ("squint", 0.25))
BLINK, SQUINT = (0.8, 1.0), (0.3, 0.7)  # both eyes (each eye jittered by up to JITTER)
WINK, WINK_OTHER = (0.75, 1.0), (0.0, 0.2)  # one eye; the other narrows a little
JITTER = 0.05
SEED = 0xB11C  # mixed with a training run's seed for the generator of its synthetic blinks

Amount = Union[float, Sequence[float], np.ndarray]


# -- the warp ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EyeFrame:
    """One eye's frame (crop px): the corners' midpoint, unit vectors along the corner line and
    down across it, the eye width, and the lids as polylines over ``u``."""

    centre: np.ndarray  # [2]
    along: np.ndarray  # [2]
    down: np.ndarray  # [2]
    width: float
    upper: tuple[np.ndarray, np.ndarray]  # (u, v) of the upper lid, corners included, sorted by u
    lower: tuple[np.ndarray, np.ndarray]

    def to_eye(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(xy, np.float64) - self.centre
        return d @ self.along, d @ self.down

    def to_crop(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.centre + u[..., None] * self.along + v[..., None] * self.down

    def band(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The eyeball band at ``u``: top (the upper lid), bottom, height (0 beyond the corners)."""
        upper, lower = np.interp(u, *self.upper), np.interp(u, *self.lower)
        inside = np.abs(u) < self.width / 2
        gap = np.where(inside, np.maximum(lower - upper, 0.0), 0.0)
        return upper, lower + RIM * gap, gap * (1.0 + RIM)

    @property
    def sigma(self) -> float:
        return REACH * self.width


def eye_frame(points: np.ndarray, eye: int) -> Optional[EyeFrame]:
    """The frame of eye ``eye`` (0: image left) from 478-point landmarks; None when degenerate."""
    p = np.asarray(points, np.float64)[:, :2]
    a, b = p[expression.EYE_CORNERS[eye][0]], p[expression.EYE_CORNERS[eye][1]]
    width = float(np.hypot(*(b - a)))
    if not (np.isfinite(width) and width >= MIN_WIDTH
            and np.isfinite(p[list(UPPER_LID[eye] + LOWER_LID[eye])]).all()):
        return None
    along = (b - a) / width
    centre, down = (a + b) / 2, np.array([-along[1], along[0]])

    def polyline(ring: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        d = np.concatenate([[a], p[list(ring)], [b]]) - centre
        u, v = d @ along, d @ down
        order = np.argsort(u, kind="stable")
        return u[order], v[order]

    return EyeFrame(centre, along, down, width, polyline(UPPER_LID[eye]), polyline(LOWER_LID[eye]))


def _fade(s: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The fade ``f`` above the lid at distance ``s`` >= 0, and its slope: a Gaussian, 1 at the lid,
    lowered so it reaches 0 at ``CUTOFF`` sigmas."""
    floor = np.exp(-0.5 * CUTOFF**2)
    g = np.exp(-0.5 * (s / sigma) ** 2)
    inside = s < CUTOFF * sigma
    return (np.where(inside, (g - floor) / (1.0 - floor), 0.0),
            np.where(inside, -s / sigma**2 * g / (1.0 - floor), 0.0))


def forward_v(frame: EyeFrame, amount: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where closing by ``amount`` moves the eye-frame points ``(u, v)``, along ``v``."""
    top, bottom, height = frame.band(u)
    squeezed = bottom - (1.0 - amount) * (bottom - v)
    stretched = v + amount * height * _fade(np.maximum(top - v, 0.0), frame.sigma)[0]
    out = np.where(v >= bottom, v, np.where(v >= top, squeezed, stretched))
    return np.where(height > 0, out, v)


def backward_v(frame: EyeFrame, amount: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The inverse of ``forward_v``: where the points now at ``(u, v)`` came from."""
    top, bottom, height = frame.band(u)
    lid = top + amount * height  # where the upper lid went
    eyeball = bottom - (bottom - v) / max(1.0 - amount, 1e-9)
    # above the lid: solve s - pull f(s) = t for s >= 0 (t = top - v); the slope is at least 1, and
    # the root lies in [max(t, 0), t + pull]
    t, pull = top - v, amount * height
    low, high = np.maximum(t, 0.0), np.maximum(t + pull, 0.0)
    s = np.clip(t + pull * _fade(low, frame.sigma)[0], low, high)
    for _ in range(NEWTON):
        value, slope = _fade(s, frame.sigma)
        s = np.clip(s - (s - pull * value - t) / (1.0 - pull * slope), low, high)
    out = np.where(v >= bottom, v, np.where(v >= lid, eyeball, top - s))
    return np.where(height > 0, out, v)


def _box(frame: EyeFrame, res: int) -> tuple[int, int, int, int]:
    """Rows and columns ``(y0, y1, x0, x1)`` holding every pixel the warp of this eye can move."""
    u = np.linspace(-frame.width / 2, frame.width / 2, 65)
    top, bottom, _ = frame.band(u)
    v = np.concatenate([top - CUTOFF * frame.sigma, bottom, frame.upper[1], frame.lower[1]])
    corners = frame.to_crop(np.array([u[0], u[-1], u[0], u[-1]]), np.array([v.min(), v.min(), v.max(), v.max()]))
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    return max(int(y0), 0), min(int(y1), res), max(int(x0), 0), min(int(x1), res)


def _amounts(amount: Amount) -> np.ndarray:
    out = np.broadcast_to(np.asarray(amount, np.float64), (2,)).copy()
    if not (np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()):
        raise ValueError(f"eye closing amounts {out.tolist()} are not within 0 (as is) to 1 (shut)")
    return out


def move_points(points: np.ndarray, amount: Amount) -> np.ndarray:
    """The landmarks of the face ``close_eyes`` makes (``[P,2]`` or ``[P,3]``, 478-point layout; x and
    y move): the upper lid's points ``amount`` of the way onto the lower lid's points below them,
    the lower lid's where they were, everything else (irises, the skin above the eye) with the warp."""
    p = np.asarray(points)
    if p.ndim != 2 or len(p) < POINTS or p.shape[1] < 2:
        raise ValueError(f"closing eyes needs FaceMesh's {POINTS} points, not an array of shape {p.shape}")
    out = np.array(p, dtype=p.dtype if p.dtype.kind == "f" else np.float64, copy=True)
    xy = p[:, :2].astype(np.float64)
    for eye, a in enumerate(_amounts(amount)):
        frame = eye_frame(xy, eye)
        if frame is None or a <= 0:
            continue
        u, v = frame.to_eye(xy)
        moved = xy + (forward_v(frame, a * (1.0 - SLIT), u, v) - v)[:, None] * frame.down
        upper, lower = list(UPPER_LID[eye]), list(LOWER_LID[eye])
        moved[upper] = xy[upper] + a * (xy[lower] - xy[upper])
        moved[lower] = xy[lower]
        near = np.flatnonzero(np.any(moved != xy, axis=1))  # this eye's points (the other eye's stay put)
        out[near, :2] = moved[near]
    return out


def _remap(window: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``window`` sampled at ``xy`` (``[..., 2]``, pixel indices into it): bicubic, edges replicated."""
    return cv2.remap(window, xy[..., 0].astype(np.float32), xy[..., 1].astype(np.float32), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REPLICATE)


def _warp_eye(face: np.ndarray, frame: EyeFrame, amount: float) -> None:
    """Close one eye of ``face`` by ``amount``, in place (see the module notes)."""
    res = face.shape[0]
    y0, y1, x0, x1 = _box(frame, res)
    if y1 <= y0 or x1 <= x0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5  # pixel centres, crop px
    u, v = frame.to_eye(np.stack([xx, yy], -1))
    source_v = backward_v(frame, amount, u, v)
    changed = source_v != v
    if not changed.any():
        return
    wy0, wy1, wx0, wx1 = max(y0 - PAD, 0), min(y1 + PAD, res), max(x0 - PAD, 0), min(x1 + PAD, res)
    origin = np.array([wx0 + 0.5, wy0 + 0.5])  # crop px -> pixel index in the window
    window = np.ascontiguousarray(face[wy0:wy1, wx0:wx1], np.float32)
    patch = _remap(window, frame.to_crop(u, source_v) - origin)
    # the band packs up to 1 / (1 - amount) px of eyeball into one: average samples across each
    # pixel's footprint there (one sample would pick the iris or the white at random)
    top, bottom, height = frame.band(u)
    band = changed & (v >= top + amount * height) & (v < bottom)
    if band.any():
        offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE - 0.5
        bu, bv = u[band][:, None], v[band][:, None] + offsets
        sources = frame.to_crop(np.broadcast_to(bu, bv.shape), backward_v(frame, amount, bu, bv)) - origin
        patch[band] = _remap(window, sources).mean(axis=1)
    face[y0:y1, x0:x1][changed] = patch[changed].astype(face.dtype)


def close_eyes(face: np.ndarray, points: np.ndarray, amount: Amount) -> tuple[np.ndarray, np.ndarray]:
    """``face`` ``[R,R,3]`` (model space) with its eyes closed by ``amount`` (per eye, image-left first,
    or one for both; 0 as is, 1 shut), and its landmarks ``points`` (crop px, 478-point layout)
    moved with them (``move_points``). Pixels the warp does not move come back bit for bit, in the
    face's dtype; an eye with degenerate landmarks stays as it is. Deterministic."""
    amounts = _amounts(amount)
    moved = move_points(points, amounts)
    out = np.array(face, copy=True)
    for eye, a in enumerate(amounts):
        frame = eye_frame(np.asarray(points), eye)
        if frame is not None and a > 0:
            _warp_eye(out, frame, float(a) * (1.0 - SLIT))
    return out, moved


# -- synthetic faces for training ---------------------------------------------------------------------


class _ClosedFaces:
    """The faces of ``SyntheticBlinks`` as a read-only array: a face is closed when it is read, so
    the extra faces take no memory beyond their landmarks."""

    def __init__(self, owner: SyntheticBlinks) -> None:
        self.owner = owner
        self.shape = (len(owner), owner.resolution, owner.resolution, 3)
        self.dtype = np.dtype(np.float16)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if np.ndim(index) == 0 and not isinstance(index, slice):
            return self.owner.face(int(index))
        return np.stack([self.owner.face(int(j)) for j in np.arange(len(self))[index]])


class _OriginRows:
    """One array of the origin faces (mattes), indexed by synthetic face."""

    def __init__(self, owner: SyntheticBlinks, name: str) -> None:
        self.owner, self.name = owner, name

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index: Any) -> np.ndarray:
        if np.ndim(index) == 0 and not isinstance(index, slice):
            fs, i = self.owner.origin(int(index))
            return np.asarray(getattr(fs, self.name)[i])
        return np.stack([self[int(j)] for j in np.arange(len(self))[index]])


@dataclass
class SyntheticBlinks(Faceset):
    """Faces of an identity with their eyes closed (``close_eyes``), made from its facesets' faces:
    read like a faceset (``IdentityData.synthetic``), held in memory, each face closed when read.
    ``entries`` keep each face's origin, amounts and expression record; mattes are the origin's."""

    origins: list[Faceset] = field(default_factory=list)
    picks: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # [N,2] (origin, face)
    amounts: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [N,2] per eye, image left first
    moved: np.ndarray = field(default_factory=lambda: np.zeros((0, POINTS, 2), np.float32))  # [N,P,2]

    def origin(self, j: int) -> tuple[Faceset, int]:
        k, i = self.picks[j]
        return self.origins[int(k)], int(i)

    def face(self, j: int) -> np.ndarray:
        """Synthetic face ``j``, ``[R,R,3]`` float16."""
        fs, i = self.origin(j)
        return close_eyes(fs.faces[i], fs.landmarks[i], self.amounts[j])[0]

    @property
    def faces(self) -> Any:
        return _ClosedFaces(self)

    @property
    def mattes(self) -> Any:
        return _OriginRows(self, "mattes")

    @property
    def landmarks(self) -> np.ndarray:
        return self.moved


def draw_amounts(rng: np.random.Generator, count: int) -> np.ndarray:
    """``[count, 2]`` closing amounts (image-left eye first): blinks (both eyes nearly shut, most of
    them), winks (one eye) and squints (both half), in the shares of ``KINDS``."""
    kind = rng.choice(len(KINDS), size=count, p=[share for _, share in KINDS])
    both = np.where(kind[:, None] == 0, rng.uniform(*BLINK, (count, 1)), rng.uniform(*SQUINT, (count, 1)))
    both = np.clip(both + rng.uniform(-JITTER, JITTER, (count, 2)), 0.0, 1.0)
    wink = np.stack([rng.uniform(*WINK, count), rng.uniform(*WINK_OTHER, count)], axis=1)
    wink = np.where(rng.integers(0, 2, (count, 1)) == 1, wink[:, ::-1], wink)
    return np.where(kind[:, None] == 1, wink, both)


def _open_faces(data: IdentityData) -> np.ndarray:
    """Positions in ``data`` of faces fit to close: in a faceset like the first (478 points, its
    resolution and mattes), both eyes open (above ``expression.EYE_OPEN``), landmarks not degenerate."""
    assert data.rows is not None and data.measures is not None
    first = data.facesets[0]
    eyes = data.measures[:, [MEASURES.index("eye_left"), MEASURES.index("eye_right")]]
    with np.errstate(invalid="ignore"):
        wanted = np.isfinite(eyes).all(axis=1) & (eyes > expression.EYE_OPEN).all(axis=1)
    keep = []
    for p in np.flatnonzero(wanted):
        k, i = (int(x) for x in data.rows[p])
        if k >= len(data.facesets):
            continue  # a synthetic face already
        fs = data.facesets[k]
        if (fs.points >= POINTS and fs.resolution == first.resolution and fs.matte_names == first.matte_names
                and all(eye_frame(fs.landmarks[i], eye) is not None for eye in (0, 1))):
            keep.append(p)
    return np.array(keep, np.int64)


def _record(values: np.ndarray) -> dict[str, Optional[float]]:
    """A ``[len(expression.FIELDS)]`` row as an expression record (``expression.record``'s form)."""
    return {name: round(float(v), 4) if np.isfinite(v) else None for name, v in zip(expression.FIELDS, values)}


def _entries(data: IdentityData, picks: np.ndarray, amounts: np.ndarray, eyes: np.ndarray) -> list[dict]:
    """Faceset entries of the synthetic faces: their origin, amounts, and expression record (the
    origin's, with the eye openness of the moved landmarks)."""
    measured = [fs.measures() for fs in data.facesets]
    columns = [expression.FIELDS.index(name) for name in ("eye_left", "eye_right")]
    out = []
    for (k, i), amount, openness in zip(picks, amounts, eyes):
        fs = data.facesets[int(k)]
        values = measured[int(k)][int(i)].copy()
        values[columns] = openness
        entry = fs.entries[int(i)]
        out.append({"source": entry.get("source"), "frame": entry.get("frame"), "track": entry.get("track"),
                    "faceset": str(fs.path), "closed": [round(float(a), 4) for a in amount],
                    EXPRESSION: _record(values)})
    return out


def add_synthetic_blinks(data: IdentityData, fraction: float, rng: np.random.Generator, *,
                         json_lines: bool = False) -> IdentityData:
    """``data`` with ``round(fraction x len(data))`` faces added: open-eyed faces of it (each used
    about as often) with their eyes closed by ``draw_amounts``, their landmarks moved, their eye
    openness measured on the moved landmarks (the other measures and the mattes copied).

    Returns ``data`` itself, with a warning naming the identity, when none of its faces has both
    eyes open and usable landmarks. The result draws uniformly: ``balance()`` it afterwards.
    """
    if not (np.isfinite(fraction) and fraction >= 0):
        raise ValueError(f"synthetic blinks: {fraction} is not a fraction of the faces")
    count = int(round(fraction * len(data)))
    if count == 0:
        return data
    if data.synthetic is not None:
        raise ValueError(f"the faces of '{data.identity}' already hold synthetic faces")
    if data.measures is None:
        data = data.subset(np.arange(len(data))).measure()
    assert data.rows is not None and data.measures is not None
    candidates = _open_faces(data)
    if len(candidates) == 0:
        say(f"warning: no synthetic blinks for '{data.identity}': none of its {len(data)} training faces has both "
            f"eyes open (openness above {expression.EYE_OPEN}) and usable 478-point landmarks", json_lines)
        return data
    rounds = -(-count // len(candidates))
    chosen = np.concatenate([rng.permutation(candidates) for _ in range(rounds)])[:count]
    amounts = draw_amounts(rng, count)
    picks = data.rows[chosen]
    moved = np.stack([move_points(np.asarray(data.facesets[int(k)].landmarks[i], np.float32), amount)
                      for (k, i), amount in zip(picks, amounts)])
    eyes = expression.eye_openness(moved.astype(np.float64))  # [count, 2]
    first = data.facesets[0]
    header = {f.name: getattr(first, f.name) for f in fields(Faceset)}
    entries = _entries(data, picks, amounts, eyes)
    synthetic = SyntheticBlinks(**{**header, "path": Path(f"{first.path} (synthetic blinks)"), "entries": entries},
                                origins=list(data.facesets), picks=picks, amounts=amounts, moved=moved)
    measures = data.measures[chosen].copy()
    measures[:, [MEASURES.index("eye_left"), MEASURES.index("eye_right")]] = eyes
    rows = np.concatenate([data.rows, np.stack([np.full(count, len(data.facesets)), np.arange(count)], 1)])
    say(f"note: {count} faces of '{data.identity}' with synthetic blinks added to its {len(data)} training faces "
        f"(made from {len(candidates)} open-eyed ones)", json_lines)
    return IdentityData(data.identity, data.facesets, rows, np.concatenate([data.measures, measures]), None,
                        list(data.notes), synthetic)
