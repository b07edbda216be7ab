#!/usr/bin/env bash
# One GPU benchmark run, one table (bench/gpu_bench.py says what each row measures).
#
#   bench/gpu.sh              on one H100/H200: gpu-marked tests, UHD half ZIP render with the 512 px
#                             comb network on CUDA and TensorRT against the oiiotool floor, training at
#                             256 and 512 px; under 8 minutes
#   bench/gpu.sh --cpu        the same rows scaled down, on the CPU (CI runs this)
#   bench/gpu.sh --compile    also a torch.compile training row
#
# Python: $PYTHON, else .venv/bin/python, else python3. Where facegraft is not installed in it,
# the repository's parts are linked under build/gpu_bench/ and put on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if ! "$PY" -c "import facegraft.inference" 2>/dev/null; then
    mkdir -p build/gpu_bench/facegraft
    for part in inference training farm cli; do ln -sfn "../../../$part" "build/gpu_bench/facegraft/$part"; done
    export PYTHONPATH="$PWD/build/gpu_bench${PYTHONPATH:+:$PYTHONPATH}"
fi
export FACEGRAFT_HOME="${FACEGRAFT_HOME:-$HOME/.cache/facegraft}"
export PYTHONUNBUFFERED=1
exec "$PY" bench/gpu_bench.py "$@"
