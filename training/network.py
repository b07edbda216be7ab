"""The comb network: one shared encoder, one decoder per identity.

Every identity's decoder learns to rebuild that identity's faces from the shared code, so
feeding the plate face (the *target*) through the *source* decoder swaps the identity while
the code carries pose, expression and lighting (Naruniec et al., "High-Resolution Neural Face
Swapping for Visual Effects", 2020).

Shapes: the encoder halves the crop until it is 8x8, then a dense bottleneck squeezes the
whole face into one vector (this is what forces a shared, identity-free code); each decoder
doubles back to the crop size with pixel shuffles and ends in colour (model space, e.g.
ACEScct) and a mask (0..1).

``arch="liae"`` (after DeepFaceLab's LIAE) shares more: one decoder trunk for every identity, fed
two codes side by side. The shared intermediate ``inter`` sees every face; the *source* identity
(``NetConfig.source``, the face put onto plates) is drawn from the shared code alone, doubled,
and every other identity from the shared code plus its own intermediate code. A plate face put
through the source path therefore reaches the trunk only through what all identities share, and
the trunk has learnt to draw that shared code's eyes, mouth and pose for both actors: the swap
follows the plate's expression more closely than the comb's, at some cost in likeness.

Either way the network is "an encoder, then one path per identity" (``encoder``, ``decoders``):
the swap of the exported model is ``decoders[source](encoder(face))``.

``expression`` > 0 adds a small head reading the pose and expression measures (``data.MEASURES``)
off the shared encoder's features (before the bottleneck, where a shut eye is still a few
pixels in place); training fits it on every identity's faces, so the encoder reads eye and
mouth openness in one way for both actors. With ``condition`` the decoders also get that reading
as extra input channels: an expression-preserving path around the bottleneck, five numbers
wide, too narrow to carry the plate actor's identity. Training feeds each face's own measures
(what the decoder should draw: an identity's hundred shut-eye frames teach its decoder what
"eyes 0.05" looks like), the exported model the head's reading of the plate face. A swap then
blinks because the plate's actor blinked, measured, not because the blink survived the
bottleneck.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator, Optional

import torch
from torch import nn
from torch.nn import functional as F

from facegraft.inference.errors import FaceGraftError

MIN_RES, MAX_RES = 64, 1024
ARCHS = ("comb", "liae")
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
    arch: str = "comb"  # "comb" or "liae" (module docstring)
    source: str = ""  # liae: the identity drawn from the shared code alone
    expression: int = 0  # outputs of the expression head; 0: none
    condition: bool = False  # the decoders also see the head's reading (then it is exported)

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
        if self.arch not in ARCHS:
            raise FaceGraftError(f"unknown network '{self.arch}'", hint=f"use one of: {', '.join(ARCHS)}")
        if self.condition and not self.expression:
            raise FaceGraftError("conditioning the decoders needs the expression head", hint="pass --expression WEIGHT")
        if self.arch == "liae" and self.source not in self.identities:
            raise FaceGraftError(f"the liae network needs its source identity, one of {', '.join(self.identities)} "
                                 f"(got '{self.source}')", hint="pass --source NAME: the actor whose face goes onto the plates")


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


class Inter(nn.Module):
    """Feature map ``[N,C,8,8]`` -> dense code ``[N,latent]`` -> feature map again: the bottleneck."""

    def __init__(self, channels: int, latent: int) -> None:
        super().__init__()
        self.channels = channels
        self.squeeze = nn.Linear(channels * BOTTOM * BOTTOM, latent)
        self.expand = nn.Linear(latent, channels * BOTTOM * BOTTOM)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.squeeze(x.flatten(1))
        return F.leaky_relu(self.expand(code).reshape(-1, self.channels, BOTTOM, BOTTOM), 0.1), code


class Encoder(nn.Module):
    """Crop ``[N,3,R,R]`` -> shared features ``[N, C, 8, 8]`` through a dense bottleneck (shared by all identities).

    For liae the output also carries the features before the bottleneck (``[N, 2C, 8, 8]``:
    shared code first), for the identities' own intermediates. With the expression head and
    ``condition``, the head's reading of the code (or the measures given) follows as ``M`` more
    channels, constant over the 8 x 8.
    """

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
        self.passthrough = cfg.arch == "liae"
        # the head reads the features before the bottleneck: still laid out in space, so a shut eye
        # (a few pixels) is there to read, while only its M numbers pass the bottleneck's way
        self.head = nn.Linear(flat, cfg.expression) if cfg.expression else None
        self.condition = cfg.condition

    def forward(self, x: torch.Tensor, with_code: bool = False, measures: Optional[torch.Tensor] = None) -> Any:
        """Shared features; with ``with_code`` also the dense code ``[N, latent]`` and the head's
        reading ``[N, M]`` of the features before the bottleneck (None without a head). ``measures``
        (standardised, ``[N, M]``; NaN: keep the reading) replace the head's reading in the
        conditioning channels (training feeds some faces their own)."""
        features = self.down(x)
        code = self.squeeze(features.flatten(1))
        shared = F.leaky_relu(self.expand(code).reshape(-1, self.bottom_channels, BOTTOM, BOTTOM), 0.1)
        out = torch.cat([shared, features], 1) if self.passthrough else shared
        read = self.head(features.flatten(1)) if self.head is not None and (with_code or self.condition) else None
        if self.condition and read is not None:
            given = read if measures is None else torch.where(torch.isnan(measures), read, measures.to(read.dtype))
            out = torch.cat([out, given[:, :, None, None].expand(-1, -1, BOTTOM, BOTTOM)], 1)
        return (out, code, read) if with_code else out


class Decoder(nn.Module):
    """Code -> colour ``[N,3,R,R]`` (model space) and mask ``[N,1,R,R]`` for one identity."""

    def __init__(self, cfg: NetConfig, inputs: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        extra = cfg.expression if cfg.condition else 0  # the conditioning channels
        for level in range(cfg.levels, 0, -1):
            cin = cfg.channels(level) * inputs + extra if level == cfg.levels else cfg.channels(level)
            cout = cfg.channels(level - 1)
            layers += [nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2), _act(), ResBlock(cout)]
        self.up = nn.Sequential(*layers)
        self.head = nn.Conv2d(cfg.channels(0), 4, 5, padding=2)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.up(code))
        return out[:, :3] + COLOUR_OFFSET, torch.sigmoid(out[:, 3:4])


class LiaePath(nn.Module):
    """One identity's path in the liae network: the shared code and this identity's own code
    (the shared one again for the source) side by side into the shared trunk."""

    def __init__(self, trunk: Decoder, channels: int, inter: Optional[Inter]) -> None:
        super().__init__()
        self.trunk = trunk
        self.channels = channels
        self.own = inter

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.channels
        shared, before, condition = features[:, :c], features[:, c:2 * c], features[:, 2 * c:]
        own = shared if self.own is None else self.own(before)[0]
        return self.trunk(torch.cat([shared, own, condition], 1))


class IdentityModules(nn.ModuleDict):
    """A module per identity, by the identity's name. ``nn.ModuleDict`` refuses a name that is one
    of its attributes ("double", "train", "float"...), so such a name is stored with a prefix
    (other names keep their state-dict keys)."""

    PREFIX = "identity_"

    @classmethod
    def _key(cls, name: str) -> str:
        return cls.PREFIX + name if hasattr(nn.ModuleDict, name) or name.startswith(cls.PREFIX) else name

    @classmethod
    def _name(cls, key: str) -> str:
        return key[len(cls.PREFIX):] if key.startswith(cls.PREFIX) else key

    def __getitem__(self, name: str) -> nn.Module:  # type: ignore[override]
        return super().__getitem__(self._key(name))

    def __setitem__(self, name: str, module: nn.Module) -> None:  # type: ignore[override]
        super().__setitem__(self._key(name), module)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(self._key(name))

    def __iter__(self) -> Iterator[str]:
        return (self._name(k) for k in super().__iter__())

    def keys(self) -> Iterable[str]:  # type: ignore[override]
        return list(self)

    def items(self) -> Iterable[tuple[str, nn.Module]]:  # type: ignore[override]
        return [(self._name(k), m) for k, m in super().items()]


class CombNet(nn.Module):
    """The whole network: ``forward(x, identity)`` draws ``x`` as ``identity``."""

    def __init__(self, cfg: NetConfig, minimum_res: int = TEST_MIN_RES) -> None:
        super().__init__()
        cfg.check(minimum_res)
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        if cfg.arch == "liae":
            trunk, channels = Decoder(cfg, inputs=2), self.encoder.bottom_channels
            self.decoders = IdentityModules({name: LiaePath(trunk, channels, None if name == cfg.source else
                                                          Inter(channels, cfg.latent)) for name in cfg.identities})
        else:
            self.decoders = IdentityModules({name: Decoder(cfg) for name in cfg.identities})

    @property
    def expression(self) -> Optional[nn.Linear]:
        """The expression head (on the encoder's dense code), or None."""
        return self.encoder.head

    def forward(self, x: torch.Tensor, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoders[identity](self.encoder(x))

    def decoder(self, identity: str) -> nn.Module:
        if identity not in self.decoders:
            raise FaceGraftError(f"the model has no identity '{identity}'",
                                 hint=f"it was trained on: {', '.join(self.cfg.identities)}")
        return self.decoders[identity]


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
