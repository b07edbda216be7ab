"""``reuse_freed_memory``: frame-sized buffers are reused instead of mapped afresh every frame."""
from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource
import numpy as np
from facegraft.inference.memory import reuse_freed_memory

def frame():
    pixels = np.empty((2160, 3840, 4), np.float16)  # a UHD half RGBA frame, 66 MB
    pixels.fill(1.0)

def faults():
    frame()  # the first one may grow the heap
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        frame()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10

default = faults()
took = reuse_freed_memory()
print(json.dumps({"took": took, "again": reuse_freed_memory(), "default": default, "after": faults()}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_a_freed_frame_is_reused_not_mapped_again() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["took"] is True and got["again"] is True
    # by default each 66 MB frame is mapped (and faulted in) afresh; reused, it costs next to nothing
    assert got["default"] > 200 and got["after"] < got["default"] / 5, got
