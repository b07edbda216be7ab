"""Running an onnxruntime session through I/O binding, with buffers bound once per batch slot.

``session.run`` with numpy arrays allocates the inputs on the device, copies them, allocates the
outputs and copies them back on every call. A face model runs the same batch shape all shot
long, so ``BoundRunner`` keeps one *slot* per input shape: device buffers for every input and
output (``OrtValue``), bound once to an ``IOBinding``. A call then only copies the crops into
the bound input (host to device), runs, and copies the outputs out (device to host).

The same code runs on every device: on the CPU the buffers are host memory, so tests exercise
exactly the path a GPU render takes. Precision is converted at this boundary: inputs are cast to
what the session's inputs are (float16 for a float16 graph, ``fp16``), outputs come back float32.

The output shapes of a new slot are learnt from its first run (outputs bound by device, left to
onnxruntime to allocate), then fixed buffers of those shapes are bound for every later call.
Not thread-safe: one caller at a time (``FaceModel`` serialises its calls).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import onnxruntime as ort

#: onnxruntime's type names of the tensors a face model exchanges, as numpy types.
DTYPES: dict[str, type] = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}
#: Distinct input shapes kept bound at once (a render uses one; the oldest is dropped past this).
MAX_SLOTS = 4
_ORT_DEVICE = {"cuda": "cuda", "tensorrt": "cuda", "cpu": "cpu"}


def ort_device(device: str) -> str:
    """Where a session's buffers live for a FaceGraft device name: ``cuda`` or ``cpu``."""
    return _ORT_DEVICE.get(device, "cpu")


@dataclass
class Slot:
    """The bound buffers of one input shape."""

    binding: ort.IOBinding
    inputs: dict[str, ort.OrtValue]
    outputs: dict[str, ort.OrtValue] = field(default_factory=dict)  # empty until the first run told the shapes


class BoundRunner:
    """``run(feed)`` like ``session.run(outputs, feed)``, through I/O binding (see the module notes)."""

    def __init__(self, session: ort.InferenceSession, device: str, output_names: Optional[Sequence[str]] = None,
                 device_id: int = 0) -> None:
        self.session = session
        self.device = ort_device(device)
        self.device_id = device_id
        self.output_names = list(output_names or [o.name for o in session.get_outputs()])
        self.input_types = {i.name: DTYPES.get(i.type, np.float32) for i in session.get_inputs()}
        self.slots: dict[tuple, Slot] = {}
        self.uploads = 0  # host -> device copies made (for tests and benchmarks)

    def _value(self, shape: Sequence[int], dtype: type) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, self.device, self.device_id)

    def _slot(self, feed: Mapping[str, np.ndarray]) -> Slot:
        key = tuple((name, tuple(array.shape)) for name, array in sorted(feed.items()))
        slot = self.slots.get(key)
        if slot is None:
            if len(self.slots) >= MAX_SLOTS:
                self.slots.pop(next(iter(self.slots)))
            binding = self.session.io_binding()
            inputs = {name: self._value(array.shape, array.dtype.type) for name, array in feed.items()}
            for name, value in inputs.items():
                binding.bind_ortvalue_input(name, value)
            for name in self.output_names:
                binding.bind_output(name, self.device, self.device_id)
            slot = self.slots[key] = Slot(binding, inputs)
        return slot

    def cast(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feed`` in the session's own input types, C-contiguous (what is copied to the device)."""
        out: dict[str, np.ndarray] = {}
        for name, array in feed.items():
            if name not in self.input_types:
                raise KeyError(f"the model has no input '{name}' (inputs: {', '.join(self.input_types)})")
            out[name] = np.ascontiguousarray(array, dtype=self.input_types[name])
        return out

    def run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs (``output_names`` order) as float32 host arrays the caller owns."""
        cast = self.cast(feed)
        slot = self._slot(cast)
        for name, array in cast.items():
            slot.inputs[name].update_inplace(array)
            self.uploads += 1
        self.session.run_with_iobinding(slot.binding)
        if not slot.outputs:
            # First run of this slot: onnxruntime allocated the outputs; keep them bound from now on.
            produced = slot.binding.get_outputs()
            slot.outputs = dict(zip(self.output_names, produced))
            for name, value in slot.outputs.items():
                slot.binding.bind_ortvalue_output(name, value)
        # A CPU OrtValue's numpy() is a view of the bound buffer the next call overwrites: always copy.
        return [np.array(slot.outputs[name].numpy(), dtype=np.float32, copy=True) for name in self.output_names]
