"""The comb network: one shared encoder, one decoder per identity.

Every identity's decoder learns to rebuild that identity's faces from the shared code, so
feeding the plate face (the *target*) through the *source* decoder swaps the identity while
the code carries pose, expression and lighting (Naruniec et al., "High-Resolution Neural Face
Swapping for Visual Effects", 2020).

Shapes: the encoder halves the crop until it is 8x8, then a dense bottleneck squeezes the
whole face into one vector (this is what forces a shared, identity-free code); each decoder
doubles back to the crop size with pixel shuffles and ends in colour (model space, e.g.
ACEScct) and a mask (0..1).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from facegraft.inference.errors import FaceGraftError

MIN_RES, MAX_RES = 64, 1024
TEST_MIN_RES = 32  # tests may build smaller nets; users get MIN_RES..MAX_RES
BOTTOM = 8  # spatial size at the bottleneck
COLOUR_OFFSET = 0.4135  # ACEScct of scene-linear 0.18: the colour head starts at mid grey


@dataclass
class NetConfig:
    """Everything needed to rebuild the network (stored in every checkpoint)."""

    res: int = 64
    width: int = 32  # channels after the stem; deeper levels use up to 8x this
    latent: int = 256  # size of the shared code
    identities: list[str] = field(default_factory=lambda: ["source", "target"])

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def levels(self) -> int:
        return int(math.log2(self.res // BOTTOM))

    def channels(self, level: int) -> int:
        """Channels at ``level`` (0 = full resolution)."""
        return self.width * min(2**level, 8)

    def check(self, minimum: int = TEST_MIN_RES) -> None:
        if self.res < minimum or self.res > MAX_RES or self.res & (self.res - 1):
            raise FaceGraftError(f"resolution {self.res} is not supported",
                                 hint=f"use a power of two from {MIN_RES} to {MAX_RES} (64, 128, 256, 512, 1024)")
        if self.width < 4 or self.latent < 8:
            raise FaceGraftError(f"width {self.width} / latent {self.latent} is too small",
                                 hint="use --width 16 or more")
        if len(self.identities) < 2:
            raise FaceGraftError(
                f"a face model needs at least two identities, got {len(self.identities)} ({', '.join(self.identities)})",
                hint="pass one --faceset for the source actor and one for the plate's actor")
        if len(set(self.identities)) != len(self.identities):
            raise FaceGraftError(f"identity names repeat: {', '.join(self.identities)}",
                                 hint="give each faceset its own --identity when extracting")


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.1))
        return F.leaky_relu(x + y, 0.1)


class Encoder(nn.Module):
    """Crop ``[N,3,R,R]`` -> code ``[N, C, 8, 8]`` through a dense bottleneck (shared by all identities)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, cfg.channels(0), 5, padding=2), _act()]
        for level in range(cfg.levels):
            layers += [nn.Conv2d(cfg.channels(level), cfg.channels(level + 1), 3, stride=2, padding=1), _act()]
        self.down = nn.Sequential(*layers)
        self.bottom_channels = cfg.channels(cfg.levels)
        flat = self.bottom_channels * BOTTOM * BOTTOM
        self.squeeze = nn.Linear(flat, cfg.latent)
        self.expand = nn.Linear(cfg.latent, flat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        code = self.squeeze(x.flatten(1))
        x = self.expand(code).reshape(-1, self.bottom_channels, BOTTOM, BOTTOM)
        return F.leaky_relu(x, 0.1)


class Decoder(nn.Module):
    """Code -> colour ``[N,3,R,R]`` (model space) and mask ``[N,1,R,R]`` for one identity."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for level in range(cfg.levels, 0, -1):
            cin, cout = cfg.channels(level), cfg.channels(level - 1)
            layers += [nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2), _act(), ResBlock(cout)]
        self.up = nn.Sequential(*layers)
        self.head = nn.Conv2d(cfg.channels(0), 4, 5, padding=2)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.up(code))
        return out[:, :3] + COLOUR_OFFSET, torch.sigmoid(out[:, 3:4])


class CombNet(nn.Module):
    """The whole comb: ``forward(x, identity)`` rebuilds ``x`` as ``identity``."""

    def __init__(self, cfg: NetConfig, minimum_res: int = TEST_MIN_RES) -> None:
        super().__init__()
        cfg.check(minimum_res)
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoders = nn.ModuleDict({name: Decoder(cfg) for name in cfg.identities})

    def forward(self, x: torch.Tensor, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoders[identity](self.encoder(x))

    def decoder(self, identity: str) -> Decoder:
        if identity not in self.decoders:
            raise FaceGraftError(f"the model has no identity '{identity}'",
                                 hint=f"it was trained on: {', '.join(self.cfg.identities)}")
        return self.decoders[identity]  # type: ignore[return-value]


class Swapper(nn.Module):
    """What gets exported: the shared encoder and the source identity's decoder."""

    def __init__(self, net: CombNet, source: str) -> None:
        super().__init__()
        self.encoder = net.encoder
        self.decoder = net.decoder(source)

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.encoder(face))


def count_flops(net: CombNet, res: int) -> int:
    """Forward FLOPs for one crop through the encoder and ONE decoder (2 x multiply-adds of convs and dense layers)."""
    total = 0

    def conv_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2 * k * output.numel()
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features * output.shape[0]

    swapper = Swapper(net, net.cfg.identities[0])
    handles = [m.register_forward_hook(conv_hook) for m in swapper.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            swapper(torch.zeros(1, 3, res, res))
    finally:
        for h in handles:
            h.remove()
    return total
