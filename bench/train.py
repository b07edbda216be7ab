"""Training throughput of the comb network: samples/s per resolution, and on CUDA the share of bf16 peak.

    python bench/train.py [--res 64 128 256] [--width 32] [--batch 8] [--steps 5] [--peak-tflops 989]
                          [--arch comb|liae] [--expression 0.5]

A step is the training loop's own (``facegraft.training.loop.train_step``): ``batch`` faces of
each of two identities, augmentation and losses included, data loading excluded. FLOPs are
counted analytically from the convolutions and dense layers (forward x 3 for forward + backward). The peak default is an H100 SXM's dense bf16.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from facegraft.training.data import MEASURES, Batch
from facegraft.training.loop import make_optimizer, pick_device, step_parts, train_step
from facegraft.training.losses import LossWeights
from facegraft.training.network import CombNet, NetConfig, count_flops

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

    def step() -> None:
        train_step(parts, lambda _name: drawn, g)

    for _ in range(2 if not compile_net else 3):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--arch", choices=("comb", "liae"), default="comb")
    parser.add_argument("--expression", type=float, default=0.0, help="weight of the expression head (0: none)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak of the GPU (H100 SXM: 989)")
    args = parser.parse_args()
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"facegraft train benchmark  {time.strftime('%Y-%m-%d %H:%M')}  device: {name}  torch {torch.__version__}")
    print(f"{args.arch}, width {args.width}, batch {args.batch} per identity x 2 identities"
          f"{', expression head' if args.expression else ''}{', compiled' if args.compile else ''}")
    print(f"{'res':>6} {'samples/s':>10} {'TFLOP/s':>9}" + (f" {'of peak':>8}" if device.type == "cuda" else ""))
    for res in args.res:
        steps = args.steps if device.type == "cuda" or res <= 128 else max(2, args.steps // 2)
        rate, flops = bench(res, args.width, args.batch, steps, device, args.compile, args.arch, args.expression)
        line = f"{res:>6} {rate:>10.1f} {flops / 1e12:>9.3f}"
        if device.type == "cuda":
            line += f" {flops / 1e12 / args.peak_tflops:>8.1%}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
