"""Face detection with MediaPipe BlazeFace (short and full range) in onnxruntime.

The detectors see an sRGB picture of the plate, letterboxed into their square input
(short range 128 px, full range 192 px) with values in [-1, 1]. Boxes come back through
SSD anchors generated here, sigmoid scores and MediaPipe's weighted non-maximum suppression.
All coordinates returned are continuous plate pixels (display window, y down); see
``facegraft.inference.track.align`` for the convention.

Small faces in a big frame are found by tiled detection: the frame is cut into overlapping
square tiles, each run through the full-range detector, and the results merged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import cv2
import numpy as np

from facegraft.inference import assets
from facegraft.inference.io import colour
from facegraft.inference.models import runtime
from facegraft.inference.track import align

# keypoint order of BlazeFace: the subject's right eye (image left in a frontal face),
# left eye, nose tip, mouth centre, right ear tragion, left ear tragion
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class DetectorConfig:
    """Anchor layout and thresholds of one BlazeFace variant (MediaPipe's calculator options)."""

    model: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: int  # for a layer group of one stride: 2 (ratio 1 + interpolated) per layer
    min_score: float
    nms_iou: float = 0.3


SHORT_RANGE = DetectorConfig("face_detection_short_range", 128, (8, 16, 16, 16), 2, 0.5)
FULL_RANGE = DetectorConfig("face_detection_full_range", 192, (4,), 1, 0.6)
VARIANTS = {"short": SHORT_RANGE, "full": FULL_RANGE}


@dataclass
class Detection:
    """One face found by the detector, in plate pixels."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    keypoints: np.ndarray  # (6, 2), order of KEYPOINTS

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


def ssd_anchors(config: DetectorConfig) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in normalised input coordinates (fixed anchor size 1).

    Consecutive layers with the same stride share one grid, as in MediaPipe's
    SsdAnchorsCalculator: short range gives 16x16x2 + 8x8x6 = 896, full range 48x48x1 = 2304.
    """
    out = []
    i = 0
    strides = config.strides
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = config.anchors_per_cell * (j - i)
        cells = int(math.ceil(config.size / strides[i]))
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float32)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 threshold: float) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted NMS: overlapping candidates are averaged, weighted by score.

    Returns ``(box, score, keypoints)`` tuples, best first.
    """
    order = list(np.argsort(-scores))
    kept: list[tuple[np.ndarray, float, np.ndarray]] = []
    while order:
        top = order[0]
        group = [k for k in order if iou(boxes[top], boxes[k]) > threshold]
        if top not in group:
            group.append(top)
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        kps = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        kept.append((box, float(scores[top]), kps))
        order = [k for k in order if k not in group]
    return kept


def warp_to_srgb(rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int], plate_space: str,
                 config: str, border: float = 0.0, origin: Sequence[float] = (0.0, 0.0),
                 replicate: bool = False) -> np.ndarray:
    """Warp plate-array pixels by ``matrix`` (continuous plate px -> output px, the array over the
    data window starting at ``origin``) and return sRGB in 0..1.

    Only the region the output needs is read, converted and sanitised (NaN/Inf, before the colour
    transform). Big downscales are prefiltered (area resize of just that region) so the warp does
    not alias. ``rgb`` may be laid out pixel by pixel or channel by channel (as some readers hand
    it out); neither is copied whole. Outside the plate: ``border`` (scene-linear), or with
    ``replicate`` the plate's edge pixels repeated (the region read reaches the plate's edge
    wherever the output goes past it).
    """
    m = align.compose(matrix, np.array([[1.0, 0.0, origin[0]], [0.0, 1.0, origin[1]]]))  # array px -> output px
    scale = math.sqrt(abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]))
    factor = max(1, int(1.0 / scale)) if scale > 0 else 1
    source, to_array = source_region(rgb, m, size, factor)
    if source is None:
        return np.zeros((size[1], size[0], 3), dtype=np.float32)
    out = cv2.warpAffine(source, align.array_matrix(m @ to_array), size, flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT,
                         borderValue=(border, border, border))
    shown = colour.converter(plate_space, colour.SRGB_ENCODED, config)(colour.sanitize(out))
    return np.clip(shown, 0.0, 1.0, out=shown)


def source_region(rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int],
                   factor: int) -> tuple[Optional[np.ndarray], np.ndarray]:
    """The part of ``rgb`` a warp to ``size`` reads, area-shrunk ``factor`` times, as float32 RGB
    interleaved, and the 3x3 map from its px to array px (continuous); None if it is empty.

    With the shrink the warp that follows scales by 0.5 to 1. The plate is big and cold in memory,
    so the shrink reads every ``step``-th row only (``step`` about factor / 2: each output row
    still averages two or more rows spread over its height) and every column (skipping columns
    saves no memory traffic).
    """
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64) @ inverse.T
    ah, aw = rgb.shape[:2]
    x0, x1 = _span(corners[:, 0].min(), corners[:, 0].max(), aw, factor)
    y0, y1 = _span(corners[:, 1].min(), corners[:, 1].max(), ah, factor)
    if x1 - x0 < factor or y1 - y0 < factor:
        return None, np.eye(3)
    step = 2 ** max(0, int(math.log2(factor)) - 1)  # rows read: 1 in 1 (factor 1-3), 2 (4-7), 4 (8-15)...
    rows = factor // step  # sampled rows averaged into one output row
    height = (y1 - y0) // (step * rows)
    region = rgb[y0:y0 + height * step * rows:step, x0:x1]
    planar = rgb.strides[-1] != rgb.itemsize  # channel by channel in memory: resize plane by plane
    if factor == 1:
        shrunk = np.ascontiguousarray(region, dtype=np.float32) if planar or rgb.dtype != np.float32 else region
    else:
        width = (x1 - x0) // factor
        if planar:
            shrunk = np.dstack([cv2.resize(region[..., c], (width, height), interpolation=cv2.INTER_AREA)
                                for c in range(3)])
        else:
            shrunk = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)
    # sampled row r has its centre at array y = y0 + step * r + 0.5
    return shrunk, np.array([[factor, 0.0, x0], [0.0, step * rows, y0 + (1 - step) / 2], [0.0, 0.0, 1.0]])


def _span(lo: float, hi: float, limit: int, factor: int) -> tuple[int, int]:
    """An index range covering [lo, hi] (plus a margin) inside [0, limit), its length a multiple of ``factor``."""
    a = int(np.clip(math.floor(lo) - 2 * factor, 0, limit))
    b = int(np.clip(math.ceil(hi) + 2 * factor, 0, limit))
    length = -(-(b - a) // factor) * factor
    if a + length > limit:
        a = max(0, limit - length)
    length = min(length, (limit - a) // factor * factor)
    return a, a + length


class FaceDetector:
    """A BlazeFace session plus its anchors (onnxruntime sessions may be shared between threads)."""

    def __init__(self, variant: str = "full", device: str = "auto", threads: Optional[int] = None) -> None:
        self.config = VARIANTS[variant]
        self.anchors = ssd_anchors(self.config)
        self.session = runtime.create_session(assets.model_path(self.config.model), device=device, threads=threads)
        self._input = self.session.get_inputs()[0].name

    def run(self, srgb: np.ndarray) -> list[Detection]:
        """Detect in one ``[S, S, 3]`` sRGB 0..1 picture; coordinates in its pixels."""
        s = self.config.size
        tensor = (srgb.astype(np.float32) * 2.0 - 1.0).transpose(2, 0, 1)[None]
        raw, logits = self.session.run(None, {self._input: np.ascontiguousarray(tensor)})
        raw, logits = raw[0], logits[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = np.nonzero(scores >= self.config.min_score)[0]
        if keep.size == 0:
            return []
        anchors = self.anchors[keep] * s
        r = raw[keep]
        cx, cy = r[:, 0] + anchors[:, 0], r[:, 1] + anchors[:, 1]
        w, h = r[:, 2], r[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        kps = r[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        return [Detection(tuple(float(v) for v in b), sc, k)  # type: ignore[arg-type]
                for b, sc, k in weighted_nms(boxes, scores[keep], kps, self.config.nms_iou)]

    def detect_region(self, rgb: np.ndarray, region: tuple[float, float, float, float], plate_space: str,
                      config: str = colour.DEFAULT_CONFIG) -> list[Detection]:
        """Detect inside ``region`` (x0, y0, x1, y1 in array px) of plate-array pixels ``rgb``.

        The region is letterboxed into the detector's square; results are in array px.
        """
        s = self.config.size
        x0, y0, x1, y1 = region
        scale = s / max(x1 - x0, y1 - y0)
        ox = (s - (x1 - x0) * scale) / 2 - x0 * scale
        oy = (s - (y1 - y0) * scale) / 2 - y0 * scale
        matrix = np.array([[scale, 0.0, ox], [0.0, scale, oy]])
        picture = warp_to_srgb(rgb, matrix, (s, s), plate_space, config)
        found = self.run(picture)
        out = []
        for d in found:
            b = d.box
            box = ((b[0] - ox) / scale, (b[1] - oy) / scale, (b[2] - ox) / scale, (b[3] - oy) / scale)
            kps = (d.keypoints - np.array([ox, oy])) / scale
            out.append(Detection(box, d.score, kps))
        return out


def tiles(width: int, height: int, tile: int, overlap: float = 0.25) -> list[tuple[float, float, float, float]]:
    """Overlapping square tiles (x0, y0, x1, y1) covering a ``width`` x ``height`` frame."""
    step = tile * (1.0 - overlap)
    nx = max(1, int(math.ceil((width - tile) / step)) + 1) if width > tile else 1
    ny = max(1, int(math.ceil((height - tile) / step)) + 1) if height > tile else 1
    xs = np.linspace(0, max(0, width - tile), nx)
    ys = np.linspace(0, max(0, height - tile), ny)
    return [(float(x), float(y), float(x + min(tile, width)), float(y + min(tile, height))) for y in ys for x in xs]


@dataclass
class Detectors:
    """The detection strategy for a plate: whole frame, then tiles for small faces."""

    device: str = "auto"
    threads: Optional[int] = None
    tile_size: int = 768
    _full: Optional[FaceDetector] = field(default=None, repr=False)

    @property
    def full(self) -> FaceDetector:
        if self._full is None:
            self._full = FaceDetector("full", self.device, self.threads)
        return self._full

    def detect(self, rgb: np.ndarray, origin: tuple[float, float] = (0.0, 0.0), plate_space: str = colour.DEFAULT_PLATE_SPACE,
               config: str = colour.DEFAULT_CONFIG, tiled: bool = True) -> list[Detection]:
        """Faces in plate-array pixels ``rgb`` (over the data window); boxes in plate px (``origin`` added).

        The whole frame is searched first; with ``tiled`` and a frame bigger than ``tile_size``,
        overlapping tiles are searched too so faces a few percent of a 4K frame are found.
        """
        h, w = rgb.shape[:2]
        found = self.full.detect_region(rgb, (0.0, 0.0, float(w), float(h)), plate_space, config)
        if tiled and max(w, h) > self.tile_size * 1.25:
            for region in tiles(w, h, self.tile_size):
                found += self.full.detect_region(rgb, region, plate_space, config)
            found = merge(found, self.full.config.nms_iou)
        dx, dy = origin
        return [Detection((d.box[0] + dx, d.box[1] + dy, d.box[2] + dx, d.box[3] + dy), d.score,
                          d.keypoints + np.array([dx, dy])) for d in found]


def merge(found: list[Detection], threshold: float = 0.3) -> list[Detection]:
    """Weighted NMS over detections from several passes (tiles, scales)."""
    if len(found) < 2:
        return found
    boxes = np.array([d.box for d in found], dtype=np.float64)
    scores = np.array([d.score for d in found], dtype=np.float64)
    kps = np.stack([d.keypoints for d in found])
    return [Detection(tuple(float(v) for v in b), s, k)  # type: ignore[arg-type]
            for b, s, k in weighted_nms(boxes, scores, kps, threshold)]
