"""Train a face model (a comb autoencoder: one shared encoder, one decoder per identity).

Give one --faceset per identity (more than one folder of the same identity are pooled).
Checkpoints, preview grids (face / rebuilt / swapped) and TensorBoard scalars go to --out;
--resume continues a stopped run exactly where it stopped.

Examples:
  facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010
  facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010 --steps 200000 --resume
  tensorboard --logdir runs/sh010/tensorboard
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_json_progress

NAME = "train"
HELP = "train a face model on two or more facesets (needs torch)"
ORDER = 51


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faceset", action="append", required=True, metavar="FOLDER", help="a faceset folder (repeat)")
    parser.add_argument("--out", required=True, help="run folder: checkpoint, previews, tensorboard")
    parser.add_argument("--res", type=int, default=None,
                        help="model resolution, power of two 64-1024 (default: the facesets' resolution, "
                             "which must then be the same for all)")
    parser.add_argument("--steps", type=int, default=100_000, help="train until this step (default 100000)")
    parser.add_argument("--batch", type=int, default=8, help="faces per identity per step (default 8)")
    parser.add_argument("--width", type=int, default=32, help="network width: channels at full resolution (default 32)")
    parser.add_argument("--latent", type=int, default=256, help="size of the shared face code (default 256)")
    parser.add_argument("--lr", type=float, default=2e-4, help="learning rate (default 2e-4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--preview-every", type=int, default=500, metavar="N", help="preview grid every N steps (0: never)")
    parser.add_argument("--save-every", type=int, default=1000, metavar="N", help="checkpoint every N steps (and at the end)")
    parser.add_argument("--ms-ssim", action="store_true", help="multi-scale SSIM instead of SSIM")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (faster on a GPU after warm-up)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads torch may use")
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard scalars")
    add_json_progress(parser)


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.progress import say
    from facegraft.training.loop import TrainConfig, train

    result = train(TrainConfig(
        facesets=args.faceset, out=args.out, res=args.res, steps=args.steps, batch=args.batch, width=args.width,
        latent=args.latent, lr=args.lr, seed=args.seed, resume=args.resume, preview_every=args.preview_every,
        save_every=args.save_every, ms_ssim=args.ms_ssim, compile=args.compile, device=args.device,
        threads=args.threads, tensorboard=not args.no_tensorboard, json_progress=args.json_progress,
    ))
    last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
    say(f"run {result.run} at step {result.step}{last}; preview: {result.run / 'preview.png'}", args.json_progress)
    return 0
