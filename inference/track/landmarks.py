"""Face landmarks: MediaPipe FaceMesh (468 points) plus the iris model (5 + 5 points, and eyelids).

FaceMesh sees a 192 px square crop around a rotated region of interest (ROI), sRGB in [0, 1];
the ROI comes from a detection (box, eye keypoints) or from the previous frame's landmarks
(bounding box in the eye-line frame, scaled 1.5, as MediaPipe does), so in-plane rotation is
followed. The iris model sees a 64 px crop of each eye (the second eye mirrored, as it was
trained), both in one batched call. The result is MediaPipe's 478-point "refine" layout in plate pixels ``(x, y, z)``:
0-467 the mesh, 468-472 the iris next to points 33/133 (image left on a frontal face),
473-477 the iris next to points 362/263. ``z`` is depth in the same pixel scale as x (smaller
is nearer the camera), relative to the face centre.

**Eyelids.** FaceMesh's lid points barely move when an eye shuts (on the sample clip the lid gap
stays within a few percent of its median through full blinks). The iris model's other output,
71 eye-contour and brow points per eye, does follow blinks and squints, so its 14 lid points
(7 upper, 7 lower) replace the mesh's lid points in x and y (the mesh's depth and eye corners
are kept, so the face transform, which uses the corners, is unchanged). Where FaceMesh's
presence is low the iris model is not run, and the mesh's own lids stay, as the iris does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnx
import onnxruntime as ort

from facegraft.inference import assets
from facegraft.inference.io import colour
from facegraft.inference.models import runtime
from facegraft.inference.track import align, graphs
from facegraft.inference.track.detect import Detection, warp_to_srgb

MESH_SIZE = 192
IRIS_SIZE = 64
ROI_SCALE = 1.5  # MediaPipe's face ROI: landmark / detection box scaled 1.5
IRIS_ROI_SCALE = 2.3  # MediaPipe's eye ROI: eye-corner distance scaled 2.3
EYE_LINE = (33, 263)  # outer eye corners, image left then image right on a frontal face
EYES = ((33, 133, False), (362, 263, True))  # (corner, corner, mirror) per eye, image left first
PRESENCE_THRESHOLD = 0.5
CONTOUR_OUTPUT, IRIS_OUTPUT = 0, 1  # the iris model's outputs: eye contours and brows (71 points), iris (5 points)
# The eye contour's lid points (output 0, crop of the eye near 33/133; the other eye's crop is
# mirrored, so the same contour indices land on its mirror-image points): 0 outer corner,
# 1-7 lower lid outer to inner, 8 inner corner, 9-15 upper lid outer to inner.
LID_CONTOUR = (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15)
LID_MESH = (  # the mesh points each contour lid point replaces, per eye in ``EYES`` order
    (7, 163, 144, 145, 153, 154, 155, 246, 161, 160, 159, 158, 157, 173),
    (249, 390, 373, 374, 380, 381, 382, 466, 388, 387, 386, 385, 384, 398),
)


@dataclass(frozen=True)
class Roi:
    """A rotated square in plate px: centre, side length, eye-line angle (radians, y down)."""

    cx: float
    cy: float
    size: float
    angle: float

    def matrix(self, res: int, mirror: bool = False) -> np.ndarray:
        """Plate continuous px -> ``res`` x ``res`` crop px (2x3), optionally mirrored left-right."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = res / self.size
        fx = -k if mirror else k
        return np.array([
            [fx * c, fx * s, res / 2 - fx * (c * self.cx + s * self.cy)],
            [-k * s, k * c, res / 2 - k * (-s * self.cx + c * self.cy)],
        ])

    def box(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounds of the rotated square."""
        half = self.size / 2 * (abs(math.cos(self.angle)) + abs(math.sin(self.angle)))
        return (self.cx - half, self.cy - half, self.cx + half, self.cy + half)


def roi_from_detection(detection: Detection, scale: float = ROI_SCALE) -> Roi:
    """The FaceMesh ROI for a detector box: square on its long side, rotated to the eye line."""
    (x0, y0, x1, y1), kps = detection.box, detection.keypoints
    angle = math.atan2(kps[1, 1] - kps[0, 1], kps[1, 0] - kps[0, 0])
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * scale, angle)


def roi_from_landmarks(points: np.ndarray, scale: float = ROI_SCALE) -> Roi:
    """The FaceMesh ROI for the next frame: landmarks' bounds in the eye-line frame, scaled."""
    p = np.asarray(points, dtype=np.float64)[:468, :2]
    a, b = p[EYE_LINE[0]], p[EYE_LINE[1]]
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    c, s = math.cos(angle), math.sin(angle)
    rotated = p @ np.array([[c, -s], [s, c]])  # coordinates along / across the eye line
    lo, hi = rotated.min(0), rotated.max(0)
    mid = (lo + hi) / 2
    centre = np.array([c * mid[0] - s * mid[1], s * mid[0] + c * mid[1]])
    return Roi(float(centre[0]), float(centre[1]), float(max(hi - lo)) * scale, angle)


def landmark_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned bounds of the mesh points (x0, y0, x1, y1)."""
    p = np.asarray(points)[:468, :2]
    return (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))


def _to_plate(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Crop px (x, y, z) -> plate px, z scaled like x."""
    inverse = align.invert(matrix)
    scale = math.sqrt(abs(np.linalg.det(inverse[:, :2])))
    return np.column_stack([align.apply(inverse, points), points[:, 2] * scale])


def _eye_roi(mesh: np.ndarray, a: int, b: int) -> Roi:
    """The iris model's ROI: centred between two eye corners, 2.3x their distance, along them."""
    pa, pb = mesh[a, :2], mesh[b, :2]
    angle = math.atan2(pb[1] - pa[1], pb[0] - pa[0])
    size = max(float(np.hypot(*(pb - pa))), 1.0) * IRIS_ROI_SCALE
    return Roi(float(pa[0] + pb[0]) / 2, float(pa[1] + pb[1]) / 2, size, angle)


def _nchw(crops: np.ndarray) -> np.ndarray:
    """``[N, H, W, 3]`` crops as the networks' contiguous float32 ``[N, 3, H, W]``."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)


@dataclass
class LandmarkResult:
    points: np.ndarray  # (478, 3) plate px
    presence: float  # FaceMesh face-presence probability
    roi: Roi


def batched_graph(path: Union[str, Path], output: Optional[int] = None) -> Optional[bytes]:
    """The ONNX graph at ``path`` with a dynamic batch dimension, or None if it cannot safely have one.

    The converted MediaPipe graphs fix the batch at 1 in their input and output shapes, and
    flatten the outputs with ``Reshape(x, [1, -1])``. A ``[0, -1]`` shape (0: keep the input's
    batch) is the same for batch 1 and right for any batch; any other Reshape, or a shape op
    that depends on the batch, leaves the graph as it is. With ``output`` (an index), only that
    output is kept, and the nodes that feed only the others are dropped.
    """
    model = onnx.load(str(path))
    graph = model.graph
    if output is not None:
        _keep_output(graph, output)
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type in ("Flatten", "Shape", "Expand", "Tile", "Slice", "Gather", "Concat", "Split"):
            return None
        if node.op_type != "Reshape":
            continue
        shape = constants.get(node.input[1])
        if shape is None:
            return None
        values = onnx.numpy_helper.to_array(shape)
        if values.ndim != 1 or len(values) < 2 or values[0] not in (0, 1):
            return None
        if values[0] == 1:
            fixed = values.copy()
            fixed[0] = 0
            shape.CopyFrom(onnx.numpy_helper.from_array(fixed.astype(values.dtype), shape.name))
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_value not in (0, 1):
            return None
        dims[0].dim_param = "N"
    del graph.value_info[:]  # intermediate shapes recorded with batch 1
    return model.SerializeToString()


def _keep_output(graph: onnx.GraphProto, index: int) -> None:
    """Drop every output but ``index``, and the nodes and weights only the dropped ones needed."""
    kept = graph.output[index]
    producer = {name: node for node in graph.node for name in node.output}
    needed: set[int] = set()
    pending = [kept.name]
    while pending:
        node = producer.get(pending.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            pending.extend(node.input)
    nodes = [node for node in graph.node if id(node) in needed]
    used = {name for node in nodes for name in node.input}
    weights = [init for init in graph.initializer if init.name in used]
    output = onnx.ValueInfoProto()
    output.CopyFrom(kept)
    del graph.node[:], graph.initializer[:], graph.output[:]
    graph.node.extend(nodes)
    graph.initializer.extend(weights)
    graph.output.append(output)


@dataclass
class EyePoints:
    """The iris model's answer for both eyes, plate px, image-left eye first."""

    iris: np.ndarray  # (10, 3): per eye centre then 4 ring points, z hung on the eye corners' depth
    lids: np.ndarray  # (2, 14, 3): per eye the lid points of ``LID_CONTOUR`` (for ``LID_MESH``)


class LandmarkModels:
    """FaceMesh and iris sessions (the iris graph re-shaped for a batch of two eyes where it allows;
    on the CPU both rewritten for speed, ``graphs.fast_graph``)."""

    def __init__(self, device: str = "auto", threads: Optional[int] = None, iris: bool = True) -> None:
        self.mesh = runtime.create_session(graphs.for_device(assets.model_path("face_landmark"), device),
                                           device=device, threads=threads)
        self.iris: Optional[ort.InferenceSession] = None
        self.iris_batched = False
        self._iris_in = ""
        self._iris_outs: list[str] = []
        if iris:
            path = assets.model_path("iris_landmark")
            graph = batched_graph(path)  # both outputs: eye contours (lids) and iris
            self.iris = runtime.create_session(graphs.for_device(graph if graph is not None else path, device),
                                               device=device, threads=threads)
            self._iris_in = self.iris.get_inputs()[0].name
            self._iris_outs = [o.name for o in self.iris.get_outputs()]
            self.iris_batched = graph is not None and self._batch_agrees()
        self._mesh_in = self.mesh.get_inputs()[0].name

    def _batch_agrees(self) -> bool:
        """True when the iris model gives each item of a batch of two what it gives it alone (both outputs)."""
        assert self.iris is not None
        crops = np.random.default_rng(0).random((2, 3, IRIS_SIZE, IRIS_SIZE), dtype=np.float32)
        try:
            together = self.iris.run(self._iris_outs, {self._iris_in: crops})
        except Exception:  # onnxruntime raises its own types when a shape does not fit
            return False
        for i in range(2):
            alone = self.iris.run(self._iris_outs, {self._iris_in: crops[i:i + 1]})
            if not all(np.allclose(t[i], a[0], atol=1e-4) for t, a in zip(together, alone)):
                return False
        return True

    def _run_iris(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[2, 64, 64, 3]`` eye crops -> (contours ``[2, 71, 3]``, iris ``[2, 5, 3]``), crop px."""
        assert self.iris is not None
        if self.iris_batched:
            outs = self.iris.run(self._iris_outs, {self._iris_in: _nchw(crops)})
        else:
            each = [self.iris.run(self._iris_outs, {self._iris_in: _nchw(c[None])}) for c in crops]
            outs = [np.concatenate([e[k] for e in each]) for k in range(len(self._iris_outs))]
        return (outs[CONTOUR_OUTPUT].reshape(2, 71, 3).astype(np.float64),
                outs[IRIS_OUTPUT].reshape(2, 5, 3).astype(np.float64))

    def mesh_points(self, rgb: np.ndarray, roi: Roi, origin: tuple[float, float] = (0.0, 0.0),
                    plate_space: str = colour.DEFAULT_PLATE_SPACE,
                    config: str = colour.DEFAULT_CONFIG) -> tuple[np.ndarray, float]:
        """468 FaceMesh points (plate px) and the presence probability for one ROI."""
        matrix = roi.matrix(MESH_SIZE)
        crop = warp_to_srgb(rgb, matrix, (MESH_SIZE, MESH_SIZE), plate_space, config, origin=origin)
        coords, logit = self.mesh.run(None, {self._mesh_in: _nchw(crop[None])})
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(logit.ravel()[0], -80.0, 80.0))))
        return _to_plate(coords.reshape(468, 3).astype(np.float64), matrix), presence

    def eye_points(self, rgb: np.ndarray, mesh: np.ndarray, origin: tuple[float, float] = (0.0, 0.0),
                   plate_space: str = colour.DEFAULT_PLATE_SPACE,
                   config: str = colour.DEFAULT_CONFIG) -> EyePoints:
        """Iris and eyelid points (plate px) of both eyes, from one call of the iris model (a batch of two)."""
        if self.iris is None:
            raise RuntimeError("the iris model was not loaded (LandmarkModels(iris=False))")
        matrices = [_eye_roi(mesh, a, b).matrix(IRIS_SIZE, mirror=mirror) for a, b, mirror in EYES]
        crops = np.stack([warp_to_srgb(rgb, m, (IRIS_SIZE, IRIS_SIZE), plate_space, config, origin=origin)
                          for m in matrices])
        contours, irises = self._run_iris(crops)
        iris, lids = [], []
        for (a, b, _), matrix, contour, raw in zip(EYES, matrices, contours, irises):
            points = _to_plate(raw, matrix)
            # depth: the iris model's z has its own origin; hang it on the eye corners' depth
            points[:, 2] = points[:, 2] - points[0, 2] + (mesh[a, 2] + mesh[b, 2]) / 2
            iris.append(points)
            lids.append(_to_plate(contour[list(LID_CONTOUR)], matrix))
        return EyePoints(np.concatenate(iris), np.stack(lids))

    def iris_points(self, rgb: np.ndarray, mesh: np.ndarray, origin: tuple[float, float] = (0.0, 0.0),
                    plate_space: str = colour.DEFAULT_PLATE_SPACE,
                    config: str = colour.DEFAULT_CONFIG) -> np.ndarray:
        """10 iris points (plate px): the eye near 33/133 first, then the eye near 362/263."""
        return self.eye_points(rgb, mesh, origin, plate_space, config).iris

    def landmarks(self, rgb: np.ndarray, roi: Roi, origin: tuple[float, float] = (0.0, 0.0),
                  plate_space: str = colour.DEFAULT_PLATE_SPACE,
                  config: str = colour.DEFAULT_CONFIG) -> LandmarkResult:
        """478 points for the face in ``roi``; iris and lids are skipped (eye centres, mesh lids) when presence is low."""
        mesh, presence = self.mesh_points(rgb, roi, origin, plate_space, config)
        return self.with_iris(rgb, mesh, presence, roi, origin, plate_space, config)

    def with_iris(self, rgb: np.ndarray, mesh: np.ndarray, presence: float, roi: Roi,
                  origin: tuple[float, float] = (0.0, 0.0), plate_space: str = colour.DEFAULT_PLATE_SPACE,
                  config: str = colour.DEFAULT_CONFIG) -> LandmarkResult:
        """``landmarks`` for a mesh ``mesh_points`` already found in ``roi``: adds the iris points and
        puts the iris model's eyelids on the mesh."""
        if self.iris is not None and presence >= PRESENCE_THRESHOLD:
            eyes = self.eye_points(rgb, mesh, origin, plate_space, config)
            mesh = with_lids(mesh, eyes.lids)
            iris = eyes.iris
        else:
            iris = np.concatenate([np.repeat(mesh[[a, b]].mean(0, keepdims=True), 5, 0) for a, b, _ in EYES])
        return LandmarkResult(np.concatenate([mesh, iris]), presence, roi)


def with_lids(mesh: np.ndarray, lids: np.ndarray) -> np.ndarray:
    """A copy of ``mesh`` with the lid points of ``LID_MESH`` moved to ``lids`` ``(2, 14, 2+)`` in x and y
    (the mesh's depth and eye corners kept)."""
    out = np.array(mesh, dtype=np.float64, copy=True)
    for indices, points in zip(LID_MESH, lids):
        out[list(indices), :2] = points[:, :2]
    return out
