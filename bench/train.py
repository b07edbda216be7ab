"""Training throughput of the comb network: samples/s per resolution, and on CUDA the share of bf16 peak.

    python bench/train.py [--res 64 128] [--width 32] [--batch 8] [--steps 5] [--peak-tflops 989]
                          [--arch comb|liae] [--expression 0.5] [--compile]

A step is the training loop's own (``facegraft.training.loop.train_step``): ``batch`` faces of
each of two identities, augmentation and losses included, data loading excluded (the same
faces every step; ``bench/gpu.sh`` times the loop fed by its loader). FLOPs are counted
analytically from the convolutions and dense layers (forward x 3 for forward + backward). The
peak is the GPU's dense bf16 one (``gpu_bench.bf16_peak``), or ``--peak-tflops``. Per row: the
peak resident memory of the process while the row ran, on CUDA the peak memory torch allocated,
and the load average. Resolutions default to 64 128 on the CPU (a 256 px step of 16 faces takes
about a minute on two cores) and 64 128 256 512 on a GPU.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_bench import PeakRss, bf16_peak  # noqa: E402

from facegraft.training.data import MEASURES, Batch  # noqa: E402
from facegraft.training.loop import make_optimizer, pick_device, step_parts, train_step  # noqa: E402
from facegraft.training.losses import LossWeights  # noqa: E402
from facegraft.training.network import CombNet, NetConfig, count_flops  # noqa: E402

NAMES = ["a", "b"]


def bench(res: int, width: int, batch: int, steps: int, device: torch.device, compile_net: bool,
          arch: str = "comb", expression: float = 0.0) -> tuple[float, float]:
    """Time the training loop's own step on random faces: (samples/s, FLOP/s)."""
    torch.manual_seed(0)
    cfg = NetConfig(res=res, width=width, identities=NAMES, arch=arch, source=NAMES[0] if arch == "liae" else "",
                    expression=len(MEASURES) if expression else 0)
    net = CombNet(cfg).to(device)
    parts = step_parts(net, make_optimizer(net, 1e-4), device, NAMES, compile_net, LossWeights(expression=expression))
    g = torch.Generator().manual_seed(0)
    drawn = Batch(torch.rand(batch, 3, res, res), torch.ones(batch, 2, res, res), torch.rand(batch, len(MEASURES)))
    if device.type == "cuda":  # on the device, as the loop's feeder hands them over (measures stay on the CPU)
        drawn = Batch(drawn.faces.to(device), drawn.mattes.to(device), drawn.measures)

    def step() -> None:
        train_step(parts, lambda _name: drawn, g, check=device.type != "cuda")

    for _ in range(3 if compile_net else 2 if device.type == "cuda" else 1):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    flops = 3 * count_flops(net.cpu(), res) * len(NAMES) * batch
    return len(NAMES) * batch / seconds, flops / seconds


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, nargs="+", help="resolutions (default: 64 128 on the CPU, 64 128 256 512 on a GPU)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (on the CPU, half of them above 128 px)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--arch", choices=("comb", "liae"), default="comb")
    parser.add_argument("--expression", type=float, default=0.0, help="weight of the expression head (0: none)")
    parser.add_argument("--peak-tflops", type=float, help="bf16 dense peak of the GPU (default: from its name; H100 SXM 989)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    peak = args.peak_tflops or (bf16_peak(name) if cuda else None)
    print(f"facegraft train benchmark  {time.strftime('%Y-%m-%d %H:%M')}  device: {name}  torch {torch.__version__}  "
          f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{args.arch}, width {args.width}, batch {args.batch} per identity x 2 identities"
          f"{', expression head' if args.expression else ''}{', compiled' if args.compile else ''}"
          f"{f'; bf16 peak {peak:.0f} TFLOP/s' if peak else ''}")
    print(f"{'res':>6} {'samples/s':>10} {'TFLOP/s':>9}" + (f" {'of peak':>8}" if peak else "")
          + f" {'RSS MiB':>8}" + (f" {'GPU MiB':>8}" if cuda else "") + f" {'load':>5}")
    for res in args.res or ([64, 128, 256, 512] if cuda else [64, 128]):
        steps = args.steps if cuda or res <= 128 else max(2, args.steps // 2)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        with PeakRss() as rss:
            rate, flops = bench(res, args.width, args.batch, steps, device, args.compile, args.arch, args.expression)
        line = f"{res:>6} {rate:>10.1f} {flops / 1e12:>9.3f}"
        if peak:
            line += f" {flops / 1e12 / peak:>8.1%}"
        line += f" {rss.text():>8}"
        if cuda:
            line += f" {torch.cuda.max_memory_allocated(device) / 2**20:>8.0f}"
        print(line + f" {os.getloadavg()[0]:>5.1f}", flush=True)


if __name__ == "__main__":
    main()
