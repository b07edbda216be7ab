"""A face model loaded once per shot: one onnxruntime session, crops batched across frames.

``FaceModel.run`` takes ``[N, 3, R, R]`` float32 crops in the model's colour space and returns
``swap [N, 3, R, R]`` and ``mask [N, 1, R, R]`` float32, whatever the file's own layout (its
format's adapter, picked by ``formats``, converts) or precision (float16 graphs get float16 inputs).

Determinism: every call runs at the same batch size (short batches are padded with zeros), and
the CPU session uses a fixed thread count, so a frame gets the same bytes alone or in a chunk.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional, Union

import numpy as np

from facegraft.inference.errors import ModelFileError
from facegraft.inference.models import formats
from facegraft.inference.models.base import ModelAdapter, ModelInfo
from facegraft.inference.models.runtime import create_session, session_device

DEFAULT_CPU_THREADS = 2


class FaceModel:
    """A loaded face model; ``run`` is thread-safe (calls are serialised)."""

    def __init__(self, path: Union[str, Path], device: str = "auto", threads: Optional[int] = None,
                 batch: int = 4) -> None:
        adapter, info = formats.read(path)
        self.adapter: ModelAdapter = adapter
        self.info: ModelInfo = info
        self.path = str(path)
        cpu_threads = threads or DEFAULT_CPU_THREADS
        self.session = create_session(str(path), device=device, threads=cpu_threads)
        self.device = session_device(self.session)
        self.batch = int(self.info.batch) if self.info.batch else max(1, int(batch))
        self._dtype = np.float16 if self.info.input_dtype == "float16" else np.float32
        self._lock = threading.Lock()
        r = self.info.resolution
        self._checked = False
        self.shape = (3, r, r)

    @property
    def resolution(self) -> int:
        return self.info.resolution

    def _call(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feed = {self.info.input_name: self.adapter.pack(faces).astype(self._dtype, copy=False)}
        for name, value in self.info.extra_inputs.items():
            feed[name] = np.array([value], dtype=np.float32)
        try:
            outputs = self.session.run(list(self.info.output_names), feed)
        except Exception as exc:  # onnxruntime's own error types
            raise ModelFileError(f"the model failed to run: {exc}", path=self.path) from exc
        return self.adapter.unpack(outputs)

    def _check(self, swap: np.ndarray, mask: np.ndarray, n: int) -> None:
        r = self.info.resolution
        if swap.shape != (n, 3, r, r) or mask.shape != (n, 1, r, r):
            raise ModelFileError(
                f"the model returned swap {list(swap.shape)} and mask {list(mask.shape)}; "
                f"expected [{n},3,{r},{r}] and [{n},1,{r},{r}]", path=self.path,
                hint="the graph does not follow the face model contract (docs/model_file.md)")
        self._checked = True

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


def load(path: Union[str, Path], device: str = "auto", threads: Optional[int] = None, batch: int = 4) -> FaceModel:
    """Load and check a face model (FaceGraft .onnx or DeepFaceLab .dfm) for the whole shot."""
    return FaceModel(path, device=device, threads=threads, batch=batch)
