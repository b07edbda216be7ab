"""The training loop: read it top to bottom.

Each step (``train_step``) draws ``batch`` faces of every identity, augments them, runs all
warped faces through the shared encoder at once, rebuilds each identity's faces with its own
decoder, and sums the per-identity losses. Checkpoints carry the optimizer and random generator
states, so a resumed run continues the same trajectory as one that never stopped.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.progress import Progress, say

from .augment import AugmentConfig, augment
from .checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from .data import IdentityData, load_identities
from .losses import LossWeights, reconstruction_loss
from .network import MIN_RES, CombNet, NetConfig
from .preview import preview_batches, write_preview


@dataclass
class TrainConfig:
    facesets: list[str]
    out: str
    res: Optional[int] = None  # None: the facesets' own resolution (they must agree)
    steps: int = 100_000
    batch: int = 8  # faces per identity per step
    width: int = 32
    latent: int = 256
    lr: float = 2e-4
    warmup: int = 100
    seed: int = 0
    preview_every: int = 500
    save_every: int = 1000
    resume: bool = False
    compile: bool = False
    device: str = "auto"
    threads: Optional[int] = None
    ms_ssim: bool = False
    min_res: int = MIN_RES  # tests lower this to train 32 px nets
    json_progress: bool = False
    tensorboard: bool = True


@dataclass
class TrainResult:
    run: Path
    step: int
    losses: list[float] = field(default_factory=list)  # total loss of every step run this time
    samples_per_second: float = 0.0


@dataclass
class StepParts:
    """What a training step runs: the (possibly compiled) encoder and decoders, the optimizer."""

    names: list[str]  # identities, in the order their faces are drawn
    encoder: Callable[..., Any]
    decoders: dict[str, Callable[..., Any]]
    optimizer: torch.optim.Optimizer
    device: torch.device
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    weights: LossWeights = field(default_factory=LossWeights)


@dataclass
class StepResult:
    loss: torch.Tensor  # the total loss (detached)
    terms: list[dict[str, torch.Tensor]]  # each identity's loss terms, in ``names`` order
    samples: int  # faces trained on


def make_optimizer(net: CombNet, lr: float) -> torch.optim.Optimizer:
    """The loop's optimizer: Adam, betas 0.5 and 0.999."""
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))


def step_parts(net: CombNet, optimizer: torch.optim.Optimizer, device: torch.device, names: Sequence[str],
               compile: bool = False, weights: Optional[LossWeights] = None) -> StepParts:
    """Ready ``net`` (already on ``device``) for ``train_step``: channels-last on CUDA, compiled if asked."""
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks memory_format
    encoder: Callable[..., Any] = net.encoder
    decoders: dict[str, Callable[..., Any]] = dict(net.decoders.items())
    if compile:
        encoder = torch.compile(encoder)
        decoders = {k: torch.compile(v) for k, v in decoders.items()}
    return StepParts(list(names), encoder, decoders, optimizer, device, weights=weights or LossWeights())


def train_step(parts: StepParts, draw: Callable[[str], tuple[torch.Tensor, torch.Tensor]],
               g: torch.Generator) -> StepResult:
    """One optimizer step: ``draw(name)`` gives an identity's faces and mattes, which are augmented
    (with ``g``), encoded together, decoded per identity, scored and back-propagated."""
    device = parts.device
    inputs, targets, mattes = [], [], []
    for name in parts.names:
        faces, face_mattes = draw(name)
        warped, target, target_mattes = augment(faces, face_mattes, parts.aug, g)
        inputs.append(warped)
        targets.append(target.to(device))
        mattes.append(target_mattes.to(device))
    x = torch.cat(inputs).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with autocast:
        codes = parts.encoder(x).chunk(len(parts.names))
        outputs = [parts.decoders[name](code) for name, code in zip(parts.names, codes)]
    terms = [reconstruction_loss(pred, mask, target, m[:, :1], m[:, 1:2], parts.weights)
             for (pred, mask), target, m in zip(outputs, targets, mattes)]
    loss = torch.stack([t["total"] for t in terms]).sum()
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    return StepResult(loss.detach(), terms, int(x.shape[0]))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FaceGraftError(f"device '{name}' was asked for but torch sees no CUDA GPU", hint="use --device cpu")
    return torch.device(name)


def _tensorboard(run: Path, enabled: bool, json_lines: bool) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        say("note: the tensorboard package is not installed, so no TensorBoard scalars are written", json_lines)
        return None
    return SummaryWriter(log_dir=str(run / "tensorboard"))


def _rng_state(g: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"data": g.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(g: torch.Generator, state: dict[str, Any]) -> None:
    g.set_state(state["data"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _faceset_summary(data: dict[str, IdentityData]) -> list[dict]:
    return [{"identity": name, "path": str(fs.path), "count": len(fs)} for name, d in data.items() for fs in d.facesets]


def faceset_resolution(data: dict[str, IdentityData]) -> int:
    """The one resolution of every faceset, for a run that gives no ``res``."""
    found = {fs.resolution: fs for d in data.values() for fs in d.facesets}
    if len(found) != 1:
        listing = ", ".join(f"{fs.path} is {r} px" for r, fs in sorted(found.items()))
        raise FaceGraftError(f"the facesets have different resolutions ({listing})",
                             hint="pass --res to train at one size, or extract every faceset at the same --res")
    res = next(iter(found))
    if res & (res - 1):  # the network halves the crop down to 8 px
        raise FaceGraftError(f"the facesets are {res} px, a size the network cannot train at",
                             hint="pass --res 64, 128, 256, 512 or 1024 (crops are resized to it)")
    return res


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or continue training) a comb model on the facesets; returns where it stopped."""
    run = Path(cfg.out)
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_identities(cfg.facesets)
    names = list(data)
    first = next(iter(data.values())).facesets[0]
    colorspace, config = first.colorspace, first.ocio_config

    # -- model, optimizer, random state: fresh or from the checkpoint --------------------------
    state: Optional[dict[str, Any]] = None
    if checkpoint_path(run).is_file() and not cfg.resume:
        raise FaceGraftError("the run folder already holds a checkpoint", path=str(run),
                             hint="pass --resume to continue it, or choose a new --out folder")
    if cfg.resume:
        state = load_checkpoint(run)
        net_cfg = NetConfig(**state["net"])
        if sorted(net_cfg.identities) != sorted(names):
            raise FaceGraftError(
                f"the checkpoint was trained on {', '.join(net_cfg.identities)} but the facesets are of {', '.join(names)}",
                path=str(checkpoint_path(run)), hint="resume with the facesets the run started with")
        if (cfg.res is not None and cfg.res != net_cfg.res) or cfg.width != net_cfg.width:
            say(f"resuming at the checkpoint's resolution {net_cfg.res} and width {net_cfg.width}", cfg.json_progress)
        if state.get("facesets") != _faceset_summary(data):
            say("warning: the facesets changed since the checkpoint; sampling will differ from an uninterrupted run",
                cfg.json_progress)
    else:
        res = cfg.res if cfg.res is not None else faceset_resolution(data)
        net_cfg = NetConfig(res=res, width=cfg.width, latent=cfg.latent, identities=names)
    torch.manual_seed(cfg.seed)
    net = CombNet(net_cfg, minimum_res=cfg.min_res).to(device)
    optimizer = make_optimizer(net, cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    step = 0
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _restore_rng(g, state["rng"])
        step = int(state["step"])
    parts = step_parts(net, optimizer, device, names, cfg.compile, LossWeights(ms_ssim=cfg.ms_ssim))
    res = net_cfg.res
    run.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "json_progress")}
    settings["res"] = res  # as trained, also when the facesets chose it
    (run / "train.json").write_text(json.dumps({"net": net_cfg.as_dict(), "train": settings,
                                                "facesets": _faceset_summary(data)}, indent=1))
    fixed = preview_batches(data, res)
    writer = _tensorboard(run, cfg.tensorboard, cfg.json_progress)

    def save() -> None:
        save_checkpoint(run, {
            "step": step, "net": net_cfg.as_dict(), "train": settings, "facesets": _faceset_summary(data),
            "colorspace": colorspace, "ocio_config": config, "coverage": first.coverage, "template": first.template,
            "model": net.state_dict(), "optimizer": optimizer.state_dict(), "rng": _rng_state(g),
        })

    def preview() -> None:
        path = write_preview(net, fixed, colorspace, config, run / "previews" / f"step_{step:07d}.png")
        (run / "preview.png").write_bytes(path.read_bytes())

    # -- the loop -------------------------------------------------------------------------------
    result = TrainResult(run=run, step=step)
    if step >= cfg.steps:
        say(f"the run is already at step {step} (asked for {cfg.steps}); nothing to do", cfg.json_progress)
        return result
    net.train()
    started, samples = time.perf_counter(), 0
    bar = Progress("train", cfg.steps - step, json_lines=cfg.json_progress, unit="step")
    try:
        while step < cfg.steps:
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
            done = train_step(parts, lambda name: data[name].sample(g, cfg.batch, res), g)
            step += 1
            samples += done.samples
            value = float(done.loss)
            result.losses.append(value)
            rate = samples / max(time.perf_counter() - started, 1e-9)
            bar.update(1, step=step, loss=f"{value:.4f}", samples_per_s=f"{rate:.1f}")
            if writer is not None:
                writer.add_scalar("loss/total", value, step)
                for name, t in zip(names, done.terms):
                    for key in ("l1", "ssim", "mask"):
                        writer.add_scalar(f"loss/{name}/{key}", float(t[key]), step)
                writer.add_scalar("samples_per_second", rate, step)
            if cfg.preview_every and step % cfg.preview_every == 0:
                preview()
            if cfg.save_every and step % cfg.save_every == 0:
                save()
    finally:
        bar.close()
        if step > result.step:
            save()  # also when interrupted: never lose more than the current step
            preview()
        if writer is not None:
            writer.close()
    result.step = step
    result.samples_per_second = samples / max(time.perf_counter() - started, 1e-9)
    return result


def load_model(run: str | Path) -> tuple[CombNet, dict[str, Any]]:
    """The trained network of a run (eval mode, CPU) and its checkpoint."""
    state = load_checkpoint(run)
    net = CombNet(NetConfig(**state["net"]), minimum_res=1)
    net.load_state_dict(state["model"])
    return net.eval(), state
