"""The training loop: read it top to bottom.

Each step (``train_step``) draws ``batch`` faces of every identity (balanced over pose and
expression, ``data``), augments them, runs all warped faces through the shared encoder at once,
rebuilds each identity's faces with its own decoder, and sums the per-identity losses (plus the
expression head's fit when the network has one). Two optional losses join it: landmark
consistency (``landmark_loss``: FaceMesh and the iris model read the rebuilt faces and the swaps
inside the graph) and an adversarial patch loss (``adversarial``: a critic with its own
optimizer, stepped after the network). A loss that is not finite stops the run
before the optimizer takes the step, and the last checkpoint on disk is left as it was.

The learning rate warms up linearly, then (``lr_decay="cosine"``) falls along a half cosine to
``lr_final`` x ``lr`` at the last step. With ``val`` > 0 a fraction of every identity's faces is
held out; every ``eval_every`` steps their loss (no augmentation, each identity through its own
decoder) goes to the progress bar and TensorBoard (``val/NAME``), as nanoGPT's estimate_loss does.

Checkpoints carry the optimizer and random generator states, so a resumed run continues the
same trajectory as one that never stopped.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.progress import Progress, say

from .adversarial import Adversary
from .augment import AugmentConfig, augment, to_device
from .blink import SEED as BLINK_SEED
from .blink import add_synthetic_blinks
from .checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from .data import (
    BIN_WIDTHS,
    DEFAULT_BALANCE,
    FLIP_SIGN,
    FLIPPED,
    MEASURES,
    Batch,
    IdentityData,
    check_resolution,
    load_identities,
    split_validation,
)
from .landmark_loss import LandmarkLoss, build_landmark_loss, found_mean
from .loader import feeder_for, tune
from .losses import LossWeights, expression_loss, reconstruction_loss
from .network import MIN_RES, CombNet, NetConfig
from .preview import preview_batches, write_preview
from .readback import Readback


class LossNotFinite(FaceGraftError):
    """The training loss became NaN or infinite: the run diverged."""


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
    lr_decay: str = "cosine"  # "cosine" or "none"
    lr_final: float = 0.1  # cosine: the last step's rate, fraction of lr
    arch: str = "comb"  # "comb" or "liae" (network)
    source: Optional[str] = None  # liae: the identity put onto plates (default: the first faceset's)
    expression: float = 0.0  # weight of the expression head's fit; 0: no head
    condition: bool = False  # feed the head's reading to the decoders (needs expression > 0)
    features: float = 3.0  # extra weight of the eyes and mouth in the L1 loss
    landmarks: float = 0.0  # weight of the landmark-consistency loss on rebuilt and swapped faces; 0: off
    landmark_faces: int = 4  # faces per identity per step the landmark loss reads (0: the whole batch); cost grows with it
    landmarks_from: float = 0.0  # the landmark loss joins from this fraction of the steps (it needs faces to read)
    adversarial: float = 0.0  # weight of the adversarial patch loss; 0: off (no critic)
    balance: float = DEFAULT_BALANCE  # 0: faces drawn uniformly; 1: uniformly over pose/expression bins
    synthetic_blinks: float = 0.0  # add this fraction of the source's training faces again with their eyes closed
    val: float = 0.0  # fraction of every identity's faces held out for the validation loss
    teacher: float = 0.5  # conditioned: share of faces whose decoder is fed their measured expression (else the head's)
    eval_every: int = 250  # validation loss every N steps (with val > 0)
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
    val_losses: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (step, held-out loss per identity)
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
    head: Optional[Callable[..., Any]] = None  # the expression head (when the loss uses it)
    measure_mean: Optional[torch.Tensor] = None  # [M] standardisation of the measures for the head
    measure_std: Optional[torch.Tensor] = None
    teacher: float = 0.5  # conditioned: share of faces fed their own measures rather than the head's reading
    landmarks: Optional[LandmarkLoss] = None  # the landmark-consistency loss (when weights.landmarks > 0)
    swaps: dict[str, list[str]] = field(default_factory=dict)  # landmark loss: the decoders that also draw NAME's faces
    landmark_faces: int = 0  # landmark loss: the first N faces of each identity's batch (0: all)
    landmarks_on: bool = True  # landmark loss: in use this step (``TrainConfig.landmarks_from``)
    adversary: Optional[Adversary] = None  # the patch critic (when weights.adversarial > 0)


@dataclass
class StepResult:
    loss: torch.Tensor  # the total loss (detached)
    terms: list[dict[str, torch.Tensor]]  # each identity's loss terms, in ``names`` order
    samples: int  # faces trained on
    critic: Optional[torch.Tensor] = None  # the patch critic's loss (detached), when it trains


#: On a GPU the loop reads its losses back (one wait for the device, ``readback``) every this many steps,
#: and before every checkpoint, preview and validation; on the CPU every step.
LOSS_READ_EVERY = 25


def loss_read_every(device: torch.device) -> int:
    """Steps between reading the losses back on ``device`` (1: every step, checked before the optimizer steps)."""
    return LOSS_READ_EVERY if device.type == "cuda" else 1


def make_optimizer(net: CombNet, lr: float) -> torch.optim.Optimizer:
    """The loop's optimizer: Adam, betas 0.5 and 0.999; fused (one kernel for all parameters) on CUDA."""
    cuda = any(p.is_cuda for p in net.parameters())
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999), fused=True if cuda else None)


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a checkpoint's optimizer state, keeping this run's kernel (fused or not): a run saved on
    another device resumes with this device's optimizer (its step counters placed where that one keeps them)."""
    fused = optimizer.param_groups[0].get("fused")
    optimizer.load_state_dict({**state, "param_groups": [{**g, "fused": fused} for g in state["param_groups"]]})


def not_finite(names: Sequence[str], loss: torch.Tensor, terms: list[dict[str, torch.Tensor]]) -> LossNotFinite:
    """The error for a training loss that is not finite, naming each identity's terms that are not."""
    bad = [f"{name}: {', '.join(k for k, v in t.items() if not bool(torch.isfinite(v)))}"
           for name, t in zip(names, terms) if not bool(torch.isfinite(t["total"]))]
    return LossNotFinite(f"the training loss is not finite ({float(loss.detach())}; {'; '.join(bad)})",
                         hint="the run diverged: lower --lr (or --batch), check the facesets' previews "
                              "for broken faces, then --resume from the last checkpoint")


def critic_not_finite(critic: torch.Tensor) -> LossNotFinite:
    """The error for a patch critic's loss that is not finite."""
    return LossNotFinite(f"the patch critic's loss is not finite ({float(critic.detach())})",
                         hint="lower --adversarial (or --lr), then --resume from the last checkpoint")


def swap_paths(net: CombNet, names: Sequence[str]) -> dict[str, list[str]]:
    """For each identity, the other decoders its faces are swapped through for the landmark loss: every
    other identity's (comb: either may be exported as the source), or the source's alone (liae)."""
    if net.cfg.arch == "liae":
        return {name: [] if name == net.cfg.source else [net.cfg.source] for name in names}
    return {name: [other for other in names if other != name] for name in names}


def step_parts(net: CombNet, optimizer: torch.optim.Optimizer, device: torch.device, names: Sequence[str],
               compile: bool = False, weights: Optional[LossWeights] = None,
               measure_stats: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
               landmarks: Optional[LandmarkLoss] = None, adversary: Optional[Adversary] = None) -> StepParts:
    """Ready ``net`` (already on ``device``) for ``train_step``: channels-last on CUDA, compiled if asked.

    The expression head is used when ``weights.expression`` > 0 and the network has one;
    ``measure_stats`` (mean, std of the measures) standardise its targets. ``landmarks``
    (``landmark_loss.build_landmark_loss``) is used when ``weights.landmarks`` > 0, ``adversary``
    when ``weights.adversarial`` > 0; each is an error without the other.
    """
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks memory_format
    weights = weights or LossWeights()
    encoder: Callable[..., Any] = net.encoder
    decoders: dict[str, Callable[..., Any]] = dict(net.decoders.items())
    if compile:
        encoder = torch.compile(encoder)
        decoders = {k: torch.compile(v) for k, v in decoders.items()}
    parts = StepParts(list(names), encoder, decoders, optimizer, device, weights=weights)
    if (weights.landmarks > 0) != (landmarks is not None) or (weights.adversarial > 0) != (adversary is not None):
        raise ValueError("the landmark and adversarial losses need both a weight and their module")
    if landmarks is not None:
        parts.landmarks, parts.swaps = landmarks.to(device), swap_paths(net, names)
    parts.adversary = adversary
    if weights.expression > 0 and net.expression is not None:
        mean, std = measure_stats if measure_stats is not None else (torch.zeros(len(MEASURES)), torch.ones(len(MEASURES)))
        parts.head, parts.measure_mean, parts.measure_std = net.expression, mean.to(device), std.to(device)
    return parts


def flip_measures(measures: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """The measures of faces mirrored by the augmentation: eyes swapped, yaw negated."""
    mirrored = measures[:, list(FLIPPED)] * torch.tensor(FLIP_SIGN, dtype=measures.dtype)
    return torch.where(flipped[:, None], mirrored, measures)


def _autocast(device: torch.device) -> Any:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def _landmark_terms(parts: StepParts, terms: list[dict[str, torch.Tensor]], targets: list[torch.Tensor],
                    outputs: list[tuple[torch.Tensor, torch.Tensor]], features: torch.Tensor) -> None:
    """Add each identity's landmark terms: its rebuilt faces (``landmarks``) and the same encoded faces drawn
    by the other decoders of ``parts.swaps`` (``landmarks_swap``), both against the landmarks of its targets.
    The landmark models read every identity's faces in two calls (the references, then every output)."""
    assert parts.landmarks is not None
    k = parts.landmark_faces or None  # the first k faces: a random subset, the batch is drawn at random
    targets = [t[:k] for t in targets]
    starts = np.cumsum([0] + [len(t) for t in targets])
    ref = parts.landmarks.reference(torch.cat(targets))
    drawn, owners = [], []  # every output read, and (identity, term) it counts for
    for i, (name, (pred, _), code) in enumerate(zip(parts.names, outputs, features.chunk(len(parts.names)))):
        drawn.append(pred[:k])
        owners.append((i, "landmarks"))
        for other in parts.swaps.get(name, []):
            with _autocast(parts.device):
                drawn.append(parts.decoders[other](code[:k])[0])
            owners.append((i, "landmarks_swap"))
    index = torch.cat([torch.arange(starts[i], starts[i + 1]) for i, _ in owners]).to(ref.presence.device)
    errors, found = parts.landmarks.errors(torch.cat(drawn), ref.take(index))
    sums: dict[tuple[int, str], list[torch.Tensor]] = {}
    for (i, key), e, f in zip(owners, errors.split([len(d) for d in drawn]), found.split([len(d) for d in drawn])):
        sums.setdefault((i, key), []).append(found_mean(e, f))
    for i, t in enumerate(terms):
        own = sums[(i, "landmarks")][0]
        swapped = torch.stack(sums[(i, "landmarks_swap")]).mean() if (i, "landmarks_swap") in sums else own.detach() * 0.0
        t["total"] = t["total"] + parts.weights.landmarks * (own + swapped)
        t["landmarks"], t["landmarks_swap"] = own.detach(), swapped.detach()


def train_step(parts: StepParts, draw: Callable[[str], Batch], g: torch.Generator, check: bool = True) -> StepResult:
    """One optimizer step: ``draw(name)`` gives an identity's faces, mattes (and measures), which
    are augmented (with ``g``), encoded together, decoded per identity, scored and back-propagated.
    With the landmark loss the encoded faces are also drawn by the other identities' decoders
    (the swap) and read by FaceMesh and the iris model; with the adversary its critic then takes
    a step of its own on the rebuilt faces against their targets.

    Raises LossNotFinite, before the optimizer steps, when the loss is not finite; ``check=False``
    leaves that to the caller (``not_finite``), so a GPU step does not wait for its loss."""
    device = parts.device
    inputs, targets, mattes, measures = [], [], [], []
    for name in parts.names:
        drawn = draw(name)
        aug = augment(drawn.faces, drawn.mattes, parts.aug, g)
        inputs.append(aug.warped)
        targets.append(aug.target.to(device))
        mattes.append(aug.mattes.to(device))
        if parts.head is not None:
            if drawn.measures is None:
                raise ValueError(f"the expression loss needs the measures of the faces of '{name}'")
            measures.append(to_device(flip_measures(drawn.measures, aug.flipped), device))
    x = torch.cat(inputs).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with _autocast(device):
        if parts.head is not None:
            assert parts.measure_mean is not None and parts.measure_std is not None
            # conditioned, a ``teacher`` share of the faces is drawn from its measured expression (the decoders
            # learn what the channels mean), the rest from the head's reading (the reconstruction then teaches
            # the head what the decoders need); NaN = the head's reading, also for unknown measures
            own = (torch.cat(measures) - parts.measure_mean) / parts.measure_std
            taught = torch.rand(own.shape[0], generator=g) < parts.teacher
            own = torch.where(to_device(taught, own.device)[:, None], own, torch.full_like(own, float("nan")))
            features, _, read = parts.encoder(x, with_code=True, measures=own)
            expressed = read.float().chunk(len(parts.names))
        else:
            features = parts.encoder(x)
        outputs = [parts.decoders[name](f) for name, f in zip(parts.names, features.chunk(len(parts.names)))]
    terms = [reconstruction_loss(pred, mask, target, m[:, :1], m[:, 1:2], parts.weights)
             for (pred, mask), target, m in zip(outputs, targets, mattes)]
    if parts.head is not None:
        assert parts.measure_mean is not None and parts.measure_std is not None
        for t, predicted, measured in zip(terms, expressed, measures):
            t["expression"] = expression_loss(predicted, measured, parts.measure_mean, parts.measure_std)
            t["total"] = t["total"] + parts.weights.expression * t["expression"]
            t["expression"] = t["expression"].detach()
    if parts.landmarks is not None and parts.landmarks_on:
        _landmark_terms(parts, terms, targets, outputs, features)
    if parts.adversary is not None:
        for t, (pred, _), m in zip(terms, outputs, mattes):
            t["adversarial"] = parts.adversary.generator_loss(pred, m[:, :1])
            t["total"] = t["total"] + parts.weights.adversarial * t["adversarial"]
            t["adversarial"] = t["adversarial"].detach()
    loss = torch.stack([t["total"] for t in terms]).sum()
    if check and not bool(torch.isfinite(loss)):
        raise not_finite(parts.names, loss, terms)
    parts.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimizer.step()
    for t in terms:
        t["total"] = t["total"].detach()
    critic = None
    if parts.adversary is not None:
        face = torch.cat(mattes)[:, :1]
        critic = parts.adversary.critic_loss(torch.cat(targets), torch.cat([pred for pred, _ in outputs]), face, face)
        if check and not bool(torch.isfinite(critic)):
            raise critic_not_finite(critic)
        parts.adversary.step(critic)
        critic = critic.detach()
    return StepResult(loss.detach(), terms, int(x.shape[0]), critic)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The rate for ``step`` (0-based): linear warm-up, then a half cosine down to ``lr_final`` x ``lr``."""
    rate = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
    if cfg.lr_decay == "cosine" and cfg.steps > cfg.warmup:
        t = min(1.0, max(0.0, (step - cfg.warmup) / (cfg.steps - cfg.warmup)))
        rate *= cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + math.cos(math.pi * t))
    return rate


def measure_stats(data: dict[str, IdentityData]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and spread of every measure over all training faces (the spread at least half a sampling bin)."""
    values = np.concatenate([d.measures for d in data.values() if d.measures is not None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a measure no face has: mean 0, spread half a bin
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    mean, std = np.nan_to_num(mean), np.maximum(np.nan_to_num(std), np.asarray(BIN_WIDTHS) / 2)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


@torch.no_grad()
def validation_losses(net: CombNet, held: dict[str, Batch], weights: LossWeights, device: torch.device) -> dict[str, float]:
    """Each identity's loss on its held-out faces through its own decoder, without augmentation."""
    was_training = net.training
    net.eval()
    out = {}
    for name, b in held.items():
        pred, mask = net(b.faces.to(device), name)
        m = b.mattes.to(device)
        out[name] = float(reconstruction_loss(pred, mask, b.faces.to(device), m[:, :1], m[:, 1:2], weights)["total"])
    net.train(was_training)
    return out


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
    facesets = [fs for d in data.values() for fs in d.facesets]
    found = {fs.resolution: fs for fs in reversed(facesets)}
    if len(found) != 1:
        listing = ", ".join(f"{fs.path} is {fs.resolution} px" for fs in facesets)
        odd = [str(fs.path) for fs in facesets if fs.resolution != facesets[0].resolution]
        raise FaceGraftError(f"the facesets have different resolutions ({listing})", path=", ".join(odd),
                             hint="pass --res to train at one size (facesets larger than it are resized), or extract "
                                  "every faceset at the same --res")
    res = next(iter(found))
    if res & (res - 1):  # the network halves the crop down to 8 px
        raise FaceGraftError(f"the facesets are {res} px, a size the network cannot train at", path=str(facesets[0].path),
                             hint="pass --res 64, 128, 256, 512 or 1024 (crops are resized to it)")
    return res


def warn_uncovered(data: dict[str, IdentityData], source: str, json_progress: bool = False) -> None:
    """Before any step: the coverage check's warnings (a source faceset covering none of the plate
    faces, a single-face source...), when the run names the identity that goes onto the plates."""
    if source not in data or len(data) < 2:
        return
    from .coverage import check_coverage

    try:
        report = check_coverage([fs.path for fs in data[source].facesets],
                                [fs.path for name, d in data.items() if name != source for fs in d.facesets])
    except FaceGraftError as exc:  # advisory: degenerate landmarks leave the coverage unknown, not the run
        say(f"warning: the coverage of the plate faces was not checked: {exc.message} ({exc.path})", json_progress)
        return
    for warning in report.warnings:
        say(f"warning: {warning}", json_progress)


def _check_settings(cfg: TrainConfig) -> None:
    if cfg.lr_decay not in ("cosine", "none"):
        raise FaceGraftError(f"unknown --lr-decay '{cfg.lr_decay}'", hint="use cosine or none")
    if not 0.0 <= cfg.teacher <= 1.0:
        raise FaceGraftError(f"--teacher {cfg.teacher} is not a fraction", hint="use 0 to 1 (default 0.5)")
    if not 0.0 <= cfg.balance <= 1.0:
        raise FaceGraftError(f"--balance {cfg.balance} is outside 0..1",
                             hint="0 draws faces uniformly, 1 uniformly over pose/expression bins (default 0.5)")
    if cfg.condition and cfg.expression <= 0:
        raise FaceGraftError("--condition feeds the expression head's reading to the decoders, so it needs the head",
                             hint="pass --expression WEIGHT (e.g. 0.5) with --condition")
    if min(cfg.expression, cfg.features, cfg.landmarks, cfg.adversarial) < 0:
        raise FaceGraftError("loss weights cannot be negative",
                             hint="pass --expression / --features / --landmarks / --adversarial of 0 or more")
    if not 0.0 <= cfg.landmarks_from < 1.0:
        raise FaceGraftError(f"--landmarks-from {cfg.landmarks_from} is not a fraction of the steps",
                             hint="use 0 (from the first step) up to below 1, e.g. 0.6")
    if cfg.landmark_faces < 0:
        raise FaceGraftError(f"--landmark-faces {cfg.landmark_faces} is negative", hint="use 0 (the whole batch) or more")
    if not 0.0 <= cfg.synthetic_blinks <= 1.0:
        raise FaceGraftError(f"--synthetic-blinks {cfg.synthetic_blinks} is not a fraction of the source's faces",
                             hint="use 0 (off) to 1, e.g. 0.1")
    if cfg.batch < 1 or cfg.steps < 0:
        raise FaceGraftError(f"--batch {cfg.batch} / --steps {cfg.steps} make no run", hint="use --batch 1 or more")


def _extra_terms(done: StepResult) -> dict[str, str]:
    """The optional losses for the progress bar: landmark error of the rebuilt and swapped faces (mean over
    the identities), the patch critic's loss."""
    out = {}
    for key, label in (("landmarks", "lm"), ("landmarks_swap", "lm_swap"), ("adversarial", "adv")):
        values = [float(t[key]) for t in done.terms if key in t]
        if values:
            out[label] = f"{sum(values) / len(values):.4f}"
    if done.critic is not None:
        out["critic"] = f"{float(done.critic):.4f}"
    return out


def _held_out(held: dict[str, IdentityData], res: int, count: int = 64) -> dict[str, Batch]:
    """The held-out faces the validation loss is measured on (at most ``count`` per identity, spread evenly)."""
    out = {}
    for name, d in held.items():
        picks = np.unique(np.linspace(0, len(d) - 1, min(count, len(d))).round().astype(int))
        out[name] = d.batch(picks.tolist(), res)
    return out


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or continue training) a face model on the facesets; returns where it stopped.

    Every check of the input (facesets, resolution, validation split, settings) runs before
    the first step."""
    run = Path(cfg.out)
    _check_settings(cfg)
    device = pick_device(cfg.device)
    tune(device)
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
        if (cfg.res is not None and cfg.res != net_cfg.res) or cfg.width != net_cfg.width or cfg.arch != net_cfg.arch:
            say(f"resuming the checkpoint's {net_cfg.arch} network at {net_cfg.res} px, width {net_cfg.width}",
                cfg.json_progress)
        if state.get("facesets") != _faceset_summary(data):
            say("warning: the facesets changed since the checkpoint; sampling will differ from an uninterrupted run",
                cfg.json_progress)
    else:
        res = cfg.res if cfg.res is not None else faceset_resolution(data)
        source = cfg.source or names[0]
        if cfg.arch == "liae" and source not in names:
            raise FaceGraftError(f"--source '{source}' is not one of the facesets' identities ({', '.join(names)})",
                                 hint="pass the identity whose face goes onto the plates")
        net_cfg = NetConfig(res=res, width=cfg.width, latent=cfg.latent, identities=names, arch=cfg.arch,
                            source=source if cfg.arch == "liae" else "",
                            expression=len(MEASURES) if cfg.expression > 0 else 0,
                            condition=cfg.condition and cfg.expression > 0)
        net_cfg.check(cfg.min_res)
    res = net_cfg.res
    check_resolution(data, res, cfg.json_progress)
    warn_uncovered(data, cfg.source or net_cfg.source, cfg.json_progress)
    for d in data.values():
        for note in d.measure().notes:
            say(f"note: {note}", cfg.json_progress)
    data, held = split_validation(data, cfg.val)
    if cfg.synthetic_blinks > 0:
        blinked = cfg.source or net_cfg.source or names[0]
        if blinked not in data:
            raise FaceGraftError(f"--source '{blinked}' is not one of the facesets' identities ({', '.join(names)})",
                                 hint="--synthetic-blinks closes the eyes of the source: pass its identity to --source")
        data[blinked] = add_synthetic_blinks(data[blinked], cfg.synthetic_blinks,
                                             np.random.default_rng([cfg.seed, BLINK_SEED]), json_lines=cfg.json_progress)
    for d in data.values():
        d.balance(cfg.balance)
    weights = LossWeights(ms_ssim=cfg.ms_ssim, features=cfg.features, expression=cfg.expression,
                          landmarks=cfg.landmarks, adversarial=cfg.adversarial)
    # FaceMesh and the iris model in the training graph; built (and its inputs checked) before any step
    landmarks = build_landmark_loss([fs for d in data.values() for fs in d.facesets], res) if cfg.landmarks > 0 else None
    if cfg.expression > 0 and not net_cfg.expression:
        say("note: the checkpoint's network has no expression head, so --expression is ignored", cfg.json_progress)

    torch.manual_seed(cfg.seed)
    net = CombNet(net_cfg, minimum_res=cfg.min_res).to(device)
    optimizer = make_optimizer(net, cfg.lr)
    adversary = Adversary(device, cfg.lr) if cfg.adversarial > 0 else None
    g = torch.Generator().manual_seed(cfg.seed)
    step = saved = 0
    if state is not None:
        net.load_state_dict(state["model"])
        load_optimizer(optimizer, state["optimizer"])
        _restore_rng(g, state["rng"])
        step = saved = int(state["step"])
        if adversary is not None and "adversarial" in state:
            adversary.load_state_dict(state["adversarial"])
        elif adversary is not None:
            say("note: the checkpoint has no patch critic (trained without --adversarial): a fresh one starts now",
                cfg.json_progress)
        elif "adversarial" in state:
            say("note: the checkpoint's patch critic is dropped (--adversarial 0)", cfg.json_progress)
    parts = step_parts(net, optimizer, device, names, cfg.compile, weights, measure_stats(data), landmarks, adversary)
    parts.teacher = cfg.teacher
    parts.landmark_faces = cfg.landmark_faces
    run.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "json_progress")}
    settings["res"] = res  # as trained, also when the facesets chose it
    summary = _faceset_summary(data) + [{**f, "held_out": True} for f in _faceset_summary(held)]
    synthetic = {n: len(d.synthetic) for n, d in data.items() if d.synthetic is not None}
    (run / "train.json").write_text(json.dumps({"net": net_cfg.as_dict(), "train": settings, "facesets": summary,
                                                "held_out": {n: len(d) for n, d in held.items()},
                                                "synthetic_blinks": synthetic}, indent=1))
    fixed = preview_batches(data, res)
    held_batches = _held_out(held, res)
    writer = _tensorboard(run, cfg.tensorboard, cfg.json_progress)

    def save() -> None:
        nonlocal saved
        read_losses()  # never a checkpoint after a step whose loss was not finite
        save_checkpoint(run, {
            "step": step, "net": net_cfg.as_dict(), "train": settings, "facesets": _faceset_summary(data),
            "colorspace": colorspace, "ocio_config": config, "coverage": first.coverage, "template": first.template,
            "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": {**_rng_state(g), "feed": feeder.state()},
            **({"adversarial": adversary.state_dict()} if adversary is not None else {}),
        })
        saved = step

    def preview() -> None:
        read_losses()
        path = write_preview(net, fixed, colorspace, config, run / "previews" / f"step_{step:07d}.png")
        (run / "preview.png").write_bytes(path.read_bytes())

    # -- the loop -------------------------------------------------------------------------------
    result = TrainResult(run=run, step=step)
    if step >= cfg.steps:
        say(f"the run is already at step {step} (asked for {cfg.steps}); nothing to do", cfg.json_progress)
        return result
    net.train()
    started, samples, diverged = time.perf_counter(), 0, False
    shown: dict[str, str] = {}
    feeder = feeder_for(data, cfg.batch, res, device, cfg.seed, (state or {}).get("rng", {}).get("feed"))
    bar = Progress("train", cfg.steps - step, json_lines=cfg.json_progress, unit="step")
    readback: Readback[StepResult] = Readback(loss_read_every(device))

    def stopped(exc: LossNotFinite, at: int) -> LossNotFinite:
        nonlocal diverged
        diverged = True
        kept = f"the checkpoint of step {saved} in {run} is kept" if saved else "no checkpoint was written"
        return LossNotFinite(f"{exc.message} at step {at}; training stopped, {kept}", path=str(run), hint=exc.hint)

    def read_losses() -> None:
        """The steps' losses to the result, the bar and TensorBoard, read back together (``readback``);
        the first that is not finite stops the run."""
        for at, done, logged in readback.read():
            if not bool(torch.isfinite(done.loss)):
                raise stopped(not_finite(names, done.loss, done.terms), at)
            if done.critic is not None and not bool(torch.isfinite(done.critic)):
                raise stopped(critic_not_finite(done.critic), at)
            value, lr, rate = float(done.loss), logged["lr"], logged["rate"]
            result.losses.append(value)
            extra = _extra_terms(done)
            bar.update(1, step=at, loss=f"{value:.4f}", **extra, **shown, lr=f"{lr:.2g}", samples_per_s=f"{rate:.1f}")
            if writer is not None:
                writer.add_scalar("loss/total", value, at)
                writer.add_scalar("lr", lr, at)
                for name, t in zip(names, done.terms):
                    for key in ("l1", "ssim", "mask", "expression", "landmarks", "landmarks_swap", "adversarial"):
                        if key in t:
                            writer.add_scalar(f"loss/{name}/{key}", float(t[key]), at)
                if done.critic is not None:
                    writer.add_scalar("loss/critic", float(done.critic), at)
                writer.add_scalar("samples_per_second", rate, at)

    try:
        while step < cfg.steps:
            lr = learning_rate(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if adversary is not None:
                adversary.set_lr(lr)
            if parts.landmarks is not None and parts.landmarks_on != (step >= cfg.landmarks_from * cfg.steps):
                parts.landmarks_on = not parts.landmarks_on
                if parts.landmarks_on and step:
                    say(f"step {step}: the landmark-consistency loss joins", cfg.json_progress)
            try:
                done = train_step(parts, feeder.draw, g, check=readback.every == 1)
            except LossNotFinite as exc:
                raise stopped(exc, step + 1) from None
            step += 1
            samples += done.samples
            rate = samples / max(time.perf_counter() - started, 1e-9)
            evaluate = bool(held_batches) and (step % max(1, cfg.eval_every) == 0 or step == cfg.steps)
            if evaluate:
                read_losses()  # the steps before this one, shown with the previous held-out losses
                held_losses = validation_losses(net, held_batches, weights, device)
                result.val_losses.append((step, held_losses))
                shown = {f"val_{name}": f"{v:.4f}" for name, v in held_losses.items()}
                if writer is not None:
                    for name, v in held_losses.items():
                        writer.add_scalar(f"val/{name}", v, step)
            if readback.add(step, done, lr=lr, rate=rate) or evaluate:
                read_losses()
            if cfg.preview_every and step % cfg.preview_every == 0:
                preview()
            if cfg.save_every and step % cfg.save_every == 0:
                save()
    finally:
        try:
            if not diverged:
                read_losses()  # the steps not read back yet (one not finite stops the run here)
        finally:
            bar.close()
            feeder.close()
            if step > result.step and not diverged:
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
