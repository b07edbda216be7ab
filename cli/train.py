"""Train a face model (a comb autoencoder: one shared encoder, one decoder per identity).

Give one --faceset per identity (more than one folder of the same identity are pooled).
Checkpoints, preview grids (face / rebuilt / swapped) and TensorBoard scalars go to --out;
--resume continues a stopped run exactly where it stopped. Check first that the source
footage covers the plate's expressions: `facegraft coverage --source ... --target ...`.

Examples:
  facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010 --val 0.1
  facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010 --steps 200000 --resume
  facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010 --arch liae --source actor
  facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010 --landmarks 1 --adversarial 0.1
  facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010 --synthetic-blinks 0.1
  tensorboard --logdir runs/sh010/tensorboard
"""
from __future__ import annotations

import argparse

from facegraft.cli.options import add_json_progress


class DEFAULTS:
    """TrainConfig's defaults (not imported: the parser must not load torch; a test keeps them equal)."""

    lr, lr_decay, lr_final, arch, expression, teacher, features, balance, val, eval_every = (
        2e-4, "cosine", 0.1, "comb", 0.0, 0.5, 3.0, 0.5, 0.0, 250)
    landmarks, landmark_faces, landmarks_from, adversarial, synthetic_blinks = 0.0, 4, 0.0, 0.0, 0.0


NAME = "train"
HELP = "train a face model on two or more facesets (needs torch)"
ORDER = 51


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--faceset", action="append", required=True, metavar="FOLDER", help="a faceset folder (repeat)")
    parser.add_argument("--out", required=True, help="run folder: checkpoint, previews, tensorboard")
    parser.add_argument("--res", type=int, default=None,
                        help="model resolution, power of two 64-1024 (default: the facesets' resolution, "
                             "which must then be the same for all)")
    parser.add_argument("--steps", type=int, default=100_000, help="train until this step (default 100000)")
    parser.add_argument("--batch", type=int, default=8, help="faces per identity per step (default 8)")
    parser.add_argument("--width", type=int, default=32, help="network width: channels at full resolution (default 32)")
    parser.add_argument("--latent", type=int, default=256, help="size of the shared face code (default 256)")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr:g})")
    parser.add_argument("--lr-decay", choices=("cosine", "none"), default=d.lr_decay,
                        help=f"after the warm-up, lower the rate along a half cosine to --lr-final x --lr at --steps "
                             f"(default {d.lr_decay}); resuming with more --steps stretches the curve")
    parser.add_argument("--lr-final", type=float, default=d.lr_final, metavar="FRACTION",
                        help=f"the cosine's last rate as a fraction of --lr (default {d.lr_final:g})")
    parser.add_argument("--arch", choices=("comb", "liae"), default=d.arch,
                        help="comb: one decoder per identity, the strongest likeness; liae: a shared decoder fed a "
                             "shared code (the source identity) or shared + own code (the others), which carries the "
                             f"plate's expression further at some cost in likeness (default {d.arch})")
    parser.add_argument("--source", default=None, metavar="IDENTITY",
                        help="the identity whose face goes onto the plates: liae's shared decoder draws it, and "
                             "--synthetic-blinks closes its eyes (default: the first --faceset's)")
    parser.add_argument("--expression", type=float, default=d.expression, metavar="WEIGHT",
                        help="weight of the expression head: the shared code must tell each face's eye and mouth "
                             f"openness and head pose, the same way for every actor; 0 turns it off (default {d.expression:g})")
    parser.add_argument("--condition", action="store_true",
                        help="feed the expression head's reading to the decoders as well: training shows each decoder "
                             "its faces' own eye and mouth openness and pose, the exported model its reading of the "
                             "plate face, so the swap blinks and talks when the plate's actor does (needs --expression)")
    parser.add_argument("--teacher", type=float, default=d.teacher, metavar="0..1",
                        help="with --condition: the share of faces whose decoder is fed their measured expression (it "
                             "learns what the channels mean); the rest get the head's reading, so the reconstruction "
                             f"teaches the head what the decoder needs (default {d.teacher:g})")
    parser.add_argument("--features", type=float, default=d.features, metavar="WEIGHT",
                        help=f"extra L1 weight on the eyes and mouth, from each face's own landmarks (default {d.features:g})")
    parser.add_argument("--landmarks", type=float, default=d.landmarks, metavar="WEIGHT",
                        help="landmark consistency: FaceMesh and the iris model read the rebuilt faces and the swaps "
                             "(each face drawn by the other decoders) inside the training graph; their eyes, lids, "
                             "irises, brows and lips must sit where the input face has them (error over the eye "
                             "distance). It pushes the swap to blink, squint and talk with the plate; costs FaceMesh "
                             "and iris passes every step (see docs/training.md). About 1 weighs it like the colour losses; "
                             f"0 turns it off (default {d.landmarks:g})")
    parser.add_argument("--landmark-faces", type=int, default=d.landmark_faces, metavar="N",
                        help="faces per identity per step the landmark loss reads: its cost grows with N "
                             f"(0: the whole --batch; default {d.landmark_faces})")
    parser.add_argument("--landmarks-from", type=float, default=d.landmarks_from, metavar="0..1",
                        help="the landmark loss joins from this fraction of the steps: FaceMesh cannot read the "
                             "blurry faces of a young network, and its pull on them can wreck the rebuild; 0.6 lets "
                             f"the faces form first (default {d.landmarks_from:g}: from the first step; the demo uses 0.67)")
    parser.add_argument("--adversarial", type=float, default=d.adversarial, metavar="WEIGHT",
                        help="adversarial patch loss: a small PatchGAN critic, trained alongside, judges 22 px "
                             "patches of the rebuilt faces against the real ones (face only), meant to sharpen skin, "
                             "lashes and teeth that L1 and SSIM leave soft. A small weight (0.1) once the faces look "
                             f"right; 0 turns it off (default {d.adversarial:g})")
    parser.add_argument("--balance", type=float, default=d.balance, metavar="0..1",
                        help="draw faces evenly over bins of yaw, pitch, eye and mouth openness (1), uniformly over "
                             f"faces (0), or a mix, so rare blinks and poses are not drowned (default {d.balance:g})")
    parser.add_argument("--synthetic-blinks", type=float, default=d.synthetic_blinks, metavar="FRACTION",
                        help="for source footage that never or rarely shuts an eye (`facegraft coverage` says so): add this "
                             "fraction of the source's training faces again with their eyes closed by a warp (the "
                             "upper lid pulled down onto the lower one; mostly blinks, some winks and squints), so its "
                             "decoder learns to draw a shut eye and the swap blinks when the plate's actor does. The "
                             "source is --source, else the first --faceset's identity; held-out faces stay real. A "
                             "warped lid, not a real one: real footage of the source blinking is better, above all at "
                             f"high resolution. 0.1 is a start; 0 turns it off (default {d.synthetic_blinks:g})")
    parser.add_argument("--val", type=float, default=d.val, metavar="FRACTION",
                        help="hold out this fraction of every identity's faces; their loss is shown in the progress bar "
                             f"and TensorBoard (val/NAME) every --eval-every steps (default {d.val:g}: none)")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, metavar="N",
                        help=f"validation loss every N steps (default {d.eval_every})")
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
        latent=args.latent, lr=args.lr, lr_decay=args.lr_decay, lr_final=args.lr_final, arch=args.arch,
        source=args.source, expression=args.expression, condition=args.condition, teacher=args.teacher,
        features=args.features, landmarks=args.landmarks, landmark_faces=args.landmark_faces,
        landmarks_from=args.landmarks_from,
        adversarial=args.adversarial, synthetic_blinks=args.synthetic_blinks,
        balance=args.balance, val=args.val, eval_every=args.eval_every, seed=args.seed, resume=args.resume, preview_every=args.preview_every,
        save_every=args.save_every, ms_ssim=args.ms_ssim, compile=args.compile, device=args.device,
        threads=args.threads, tensorboard=not args.no_tensorboard, json_progress=args.json_progress,
    ))
    last = f", last loss {result.losses[-1]:.4f}" if result.losses else ""
    if result.val_losses:
        last += ", held-out " + ", ".join(f"{n} {v:.4f}" for n, v in result.val_losses[-1][1].items())
    say(f"run {result.run} at step {result.step}{last}; preview: {result.run / 'preview.png'}", args.json_progress)
    return 0
