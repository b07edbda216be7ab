"""A face model loaded once per shot: one onnxruntime session, crops batched across frames.

``FaceModel.run`` takes ``[N, 3, R, R]`` float32 crops in the model's colour space and returns
``swap [N, 3, R, R]`` and ``mask [N, 1, R, R]`` float32, whatever the file's own layout (its
format's adapter, picked by ``formats``, converts) or precision (float16 graphs get float16 inputs).

Determinism: every call runs at the same batch size (short batches are padded with zeros), and
the CPU session uses a fixed thread count, so a frame gets the same bytes alone or in a chunk.

Loading refuses a model before any frame is read: ``formats.read`` checks the file (contract,
weights, crop template), a shot's occlusion model is refused as such, and a probe batch of grey
faces checks that the graph runs and returns the contract's shapes and finite values. ``device``
is where it really runs and ``fallback`` why an expected GPU is not used (see ``runtime``); the
renderer stamps both into each frame.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional, Union

import numpy as np

from facegraft.inference.errors import FaceGraftError, ModelFileError
from facegraft.inference.io import colour
from facegraft.inference.models import binding, formats, fp16, occlusion, providers
from facegraft.inference.models.base import ModelAdapter, ModelInfo
from facegraft.inference.models.runtime import first_line

DEFAULT_CPU_THREADS = 2


class FaceModel:
    """A loaded face model; ``run`` is thread-safe (calls are serialised)."""

    def __init__(self, path: Union[str, Path], device: str = "auto", threads: Optional[int] = None,
                 batch: int = 4, probe: bool = True, precision: str = "fp32") -> None:
        adapter, info = formats.read(path)
        if adapter.kind == occlusion.KIND:
            raise ModelFileError("this is an occlusion model (from `facegraft occlusion train`), not a face model",
                                 path=str(path), hint="pass it to --occlusion, and a face model (from `facegraft "
                                                      "export`, or a DeepFaceLab .dfm) to --model")
        self.adapter: ModelAdapter = adapter
        self.info: ModelInfo = info
        self.path = str(path)
        cpu_threads = threads or DEFAULT_CPU_THREADS
        self.batch = int(self.info.batch) if self.info.batch else max(1, int(batch))
        #: "fp32" or "fp16" (a float32 model is converted at load: ``fp16``); ``conversion`` says what was done.
        self.precision = precision
        source, self.conversion = fp16.source(path, precision)
        r = self.info.resolution
        shape = (self.batch, *self.adapter.pack(np.zeros((1, 3, r, r), np.float32)).shape[1:])
        plan = providers.plan(device, info.content_hash, precision, info.input_name, shape,
                              dynamic_batch=info.batch is None)
        opened, self.engine, notes = providers.open_planned(source, plan, cpu_threads, self.path)
        self.session = opened.session
        #: Where the graph runs: "tensorrt", "cuda" or "cpu".
        self.device: str = opened.device
        #: Why a GPU that ``auto`` expected is not used; None when nothing fell back.
        self.fallback: Optional[str] = opened.fallback
        self.providers = opened.providers
        #: What a render should warn about (and record): a CPU fall-back, an unpinned OCIO config.
        self.warnings: list[str] = [f"the model runs on the CPU: {opened.fallback}"] if opened.fallback else []
        self.warnings += notes  # TensorRT engines not cached, or rebuilt
        #: Runs the session through I/O binding: buffers bound once per batch shape (``binding``).
        self._runner = binding.BoundRunner(self.session, self.device, self.info.output_names)
        self._check_colour()
        self._dtype = np.float16 if self.info.input_dtype == "float16" else np.float32
        self._lock = threading.Lock()
        r = self.info.resolution
        self._checked = False
        self.shape = (3, r, r)
        if probe:
            self._probe()

    @property
    def resolution(self) -> int:
        return self.info.resolution

    def _call(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feed = {self.info.input_name: self.adapter.pack(faces).astype(self._dtype, copy=False)}
        for name, value in self.info.extra_inputs.items():
            feed[name] = np.array([value], dtype=np.float32)
        try:
            outputs = self._runner.run(feed)
        except Exception as exc:  # onnxruntime's own error types; never retried elsewhere
            raise ModelFileError(f"the model failed to run on {self.device}: {first_line(exc)}", path=self.path,
                                 hint="the graph breaks at run time (shapes or operators); re-export it, "
                                      "or check it with `facegraft model-info`") from exc
        try:
            return self.adapter.unpack(outputs)
        except (ValueError, IndexError) as exc:
            shapes = ", ".join(str(list(np.shape(o))) for o in outputs)
            raise ModelFileError(f"the model's outputs ({shapes}) do not fit its format ({self.info.kind})",
                                 path=self.path, hint="the graph does not follow docs/model_file.md") from exc

    def _check(self, swap: np.ndarray, mask: np.ndarray, n: int) -> None:
        r = self.info.resolution
        if swap.shape != (n, 3, r, r) or mask.shape != (n, 1, r, r):
            raise ModelFileError(
                f"the model returned swap {list(swap.shape)} and mask {list(mask.shape)}; "
                f"expected [{n},3,{r},{r}] and [{n},1,{r},{r}]", path=self.path,
                hint="the graph does not follow the face model contract (docs/model_file.md)")
        self._checked = True

    def _check_colour(self) -> None:
        """The model's colour space must exist in the OCIO config it records (honoured at render time)."""
        config = self.info.ocio_config
        if not config:
            return
        try:
            colour.resolve_space(self.info.colorspace, config)
        except FaceGraftError as exc:
            raise ModelFileError(f"its colour space '{self.info.colorspace}' of OCIO config {config} cannot be used "
                                 f"here: {exc.message}", path=self.path, hint=exc.hint) from None
        if not colour.is_versioned(config):
            self.warnings.append(f"the model records the OCIO config alias {config}, read as "
                                 f"{colour.resolve_config(config)} with this OpenColorIO; re-export it to pin the version")

    def _probe(self) -> None:
        """Run one batch of grey faces: a graph that fails, or breaks the contract, is refused now."""
        r = self.info.resolution
        ramp = np.linspace(0.3, 0.5, r, dtype=np.float32)
        faces = np.broadcast_to(ramp[None, None, None, :], (self.batch, 3, r, r)).copy()
        swap, mask = self._call(faces)
        self._check(swap, mask, self.batch)
        if not (np.isfinite(swap).all() and np.isfinite(mask).all()):
            raise ModelFileError("the model returns NaN or Inf for a plain grey face", path=self.path,
                                 hint="its weights or its arithmetic overflow (a diverged training, or float16 "
                                      "limits); export another checkpoint")

    def run(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Swap a stack of crops; any N (split into fixed-size, zero-padded batches)."""
        faces = np.asarray(faces, dtype=np.float32)
        if faces.ndim != 4 or faces.shape[1:] != self.shape:
            raise ValueError(f"expected crops [N,{','.join(map(str, self.shape))}], got {list(faces.shape)}")
        n = len(faces)
        swaps, masks = [], []
        for start in range(0, n, self.batch):
            chunk = faces[start:start + self.batch]
            count = len(chunk)
            if count < self.batch:
                chunk = np.concatenate([chunk, np.zeros((self.batch - count, *self.shape), np.float32)])
            with self._lock:
                swap, mask = self._call(np.ascontiguousarray(chunk))
            if not self._checked:
                self._check(swap, mask, self.batch)
            swaps.append(swap[:count])
            masks.append(np.clip(mask[:count], 0.0, 1.0))
        if not swaps:
            r = self.info.resolution
            return np.zeros((0, 3, r, r), np.float32), np.zeros((0, 1, r, r), np.float32)
        return np.concatenate(swaps), np.concatenate(masks)


def load(path: Union[str, Path], device: str = "auto", threads: Optional[int] = None, batch: int = 4,
         probe: bool = True, precision: str = "fp32") -> FaceModel:
    """Load and check a face model (FaceGraft .onnx or DeepFaceLab .dfm) for the whole shot;
    ``precision="fp16"`` runs a float32 model converted to float16 (``fp16``)."""
    return FaceModel(path, device=device, threads=threads, batch=batch, probe=probe, precision=precision)
