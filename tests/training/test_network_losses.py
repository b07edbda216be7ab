"""The comb network's shapes and the losses' behaviour."""
from __future__ import annotations

import pytest
import torch

from facegraft.inference.errors import FaceGraftError
from facegraft.training.augment import AugmentConfig, augment
from facegraft.training.data import MEASURES
from facegraft.training.losses import LossWeights, expression_loss, ms_ssim, psnr, reconstruction_loss, ssim
from facegraft.training.network import CombNet, NetConfig, Swapper, count_flops


@pytest.mark.parametrize("res", [32, 64])
def test_comb_outputs_colour_and_mask_per_identity(res: int) -> None:
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=res, width=8, latent=16, identities=["a", "b"])).eval()
    x = torch.rand(3, 3, res, res)
    with torch.no_grad():
        colour_a, mask_a = net(x, "a")
        colour_b, _ = net(x, "b")
        swap, swap_mask = Swapper(net, "b")(x)
    assert colour_a.shape == (3, 3, res, res) and mask_a.shape == (3, 1, res, res)
    assert float(mask_a.min()) >= 0.0 and float(mask_a.max()) <= 1.0
    assert not torch.equal(colour_a, colour_b)  # separate decoders
    assert torch.equal(swap, colour_b)
    assert len(list(net.decoders)) == 2
    assert count_flops(net, res) > 0


def test_network_refuses_bad_settings() -> None:
    with pytest.raises(FaceGraftError, match="two identities"):
        CombNet(NetConfig(res=64, identities=["only"]))
    with pytest.raises(FaceGraftError, match="resolution 96"):
        CombNet(NetConfig(res=96, identities=["a", "b"]))
    with pytest.raises(FaceGraftError, match="resolution 32"):
        CombNet(NetConfig(res=32, identities=["a", "b"]), minimum_res=64)
    net = CombNet(NetConfig(res=32, width=8, latent=16, identities=["a", "b"]))
    with pytest.raises(FaceGraftError, match="no identity 'c'"):
        Swapper(net, "c")


def test_ssim_is_one_for_equal_images_and_falls_with_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-5)
    slightly = ssim(x, x + 0.02 * torch.randn(x.shape, generator=g))
    badly = ssim(x, x + 0.2 * torch.randn(x.shape, generator=g))
    assert (badly < slightly).all() and (slightly < 1).all()
    assert (psnr(x, x + 0.01) > psnr(x, x + 0.1)).all()


def test_colour_losses_ignore_pixels_outside_the_face_and_weigh_features() -> None:
    target = torch.full((1, 3, 32, 32), 0.4)
    face = torch.zeros(1, 1, 32, 32)
    face[..., 8:24, 8:24] = 1
    features = torch.zeros_like(face)
    mask = face.clone()
    off_face = target.clone()
    off_face[..., :4, :] = 1.0  # wrong only outside the face matte
    terms = reconstruction_loss(off_face, mask, target, face, features, LossWeights())
    assert float(terms["l1"]) == 0.0 and float(terms["mask"]) == 0.0
    on_face = target.clone()
    on_face[..., 10:12, 10:12] += 0.5
    plain = reconstruction_loss(on_face, mask, target, face, features, LossWeights())["l1"]
    features[..., 10:12, 10:12] = 1  # the same error inside an eye matte costs more
    weighted = reconstruction_loss(on_face, mask, target, face, features, LossWeights())["l1"]
    assert float(weighted) > float(plain) > 0


def test_augment_repeats_with_the_seed_and_warps_only_the_input() -> None:
    faces = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    mattes = torch.ones(4, 2, 32, 32)
    cfg = AugmentConfig()
    a = augment(faces, mattes, cfg, torch.Generator().manual_seed(7))
    b = augment(faces, mattes, cfg, torch.Generator().manual_seed(7))
    c = augment(faces, mattes, cfg, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.target, c.target)
    assert not torch.equal(a.warped, a.target)  # the input is warped, the target is not
    still = AugmentConfig(flip=0, scale=0, rotate=0, shift=0, warp=0, exposure=0, white_balance=0, contrast=0, saturation=0)
    warped, target, _, flipped = augment(faces, mattes, still, torch.Generator().manual_seed(7))
    assert torch.allclose(warped, faces, atol=1e-5) and torch.allclose(target, faces, atol=1e-5) and not flipped.any()
    mirrored = augment(faces, mattes, AugmentConfig(**{**still.__dict__, "flip": 1.0}), torch.Generator())
    assert torch.allclose(mirrored.target, faces.flip(-1), atol=1e-5) and mirrored.flipped.all()
    half = augment(faces, mattes, AugmentConfig(**{**still.__dict__, "flip": 0.5}), torch.Generator().manual_seed(3))
    for i, was_flipped in enumerate(half.flipped.tolist()):  # the flag says which faces were mirrored
        assert torch.allclose(half.target[i], faces[i].flip(-1) if was_flipped else faces[i], atol=1e-5)


def test_liae_draws_the_source_from_the_shared_code_alone() -> None:
    torch.manual_seed(0)
    cfg = NetConfig(res=32, width=8, latent=16, identities=["a", "b"], arch="liae", source="a")
    net = CombNet(cfg).eval()
    assert net.decoders["a"].trunk is net.decoders["b"].trunk  # one shared decoder trunk
    assert net.decoders["a"].own is None and net.decoders["b"].own is not None
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x, "a")[0]
        for p in net.decoders["b"].own.parameters():  # b's own code plays no part in drawing a
            p.add_(1.0)
        assert torch.equal(net(x, "a")[0], before)
        swap, mask = Swapper(net, "a")(x)
    assert torch.equal(swap, before) and mask.shape == (2, 1, 32, 32)
    with pytest.raises(FaceGraftError, match="needs its source identity"):
        CombNet(NetConfig(res=32, width=8, latent=16, identities=["a", "b"], arch="liae", source="c"))
    with pytest.raises(FaceGraftError, match="unknown network"):
        CombNet(NetConfig(res=32, width=8, latent=16, identities=["a", "b"], arch="dfl"))


@pytest.mark.parametrize("arch", ["comb", "liae"])
def test_the_expression_head_reads_the_encoder_and_conditions_the_decoders_when_asked(arch: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    base = dict(res=32, width=8, latent=16, identities=["a", "b"], arch=arch, source="a")
    for condition in (False, True):
        net = CombNet(NetConfig(**base, expression=len(MEASURES), condition=condition)).eval()
        assert net.expression is not None and net.expression.in_features == net.encoder.bottom_channels * 8 * 8
        features, code, read = net.encoder(x, with_code=True)
        assert code.shape == (2, 16) and read.shape == (2, len(MEASURES))
        swapper = Swapper(net, "a")
        with torch.no_grad():
            before = swapper(x)[0]
            given = net.decoders["a"](net.encoder(x, measures=torch.zeros(2, len(MEASURES))))[0]
            net.expression.bias.add_(1.0)  # another reading of the same face
            after = swapper(x)[0]
        # conditioned, the swap draws what the head reads (and training can feed the faces' own measures)
        assert torch.equal(before, after) is not condition
        assert torch.equal(before, given) is not condition
    plain = CombNet(NetConfig(**base))
    assert plain.expression is None
    assert set(net.state_dict()) - set(plain.state_dict()) >= {"encoder.head.weight", "encoder.head.bias"}
    with pytest.raises(FaceGraftError, match="needs the expression head"):
        CombNet(NetConfig(**base, condition=True))


def test_expression_loss_is_zero_on_the_measures_and_skips_unknown_ones() -> None:
    mean, std = torch.tensor([0.0, 0.3]), torch.tensor([1.0, 0.1])
    measures = torch.tensor([[2.0, 0.1], [float("nan"), 0.5]])
    exact = (measures - mean) / std
    assert float(expression_loss(torch.nan_to_num(exact), measures, mean, std)) == 0.0
    wrong = torch.nan_to_num(exact) + torch.tensor([[0.0, 1.0], [100.0, 0.0]])  # the 100 sits on an unknown measure
    assert float(expression_loss(wrong, measures, mean, std)) == pytest.approx((1.0 - 0.5 * 0.5) / 3)  # smooth L1, beta 0.5, over 3 known
    unknown = torch.full((1, 2), float("nan"))
    assert float(expression_loss(torch.ones(1, 2), unknown, mean, std)) == 0.0
    # an unknown measure teaches nothing: its entry gets no gradient, the known ones do
    wrong.requires_grad_(True)
    expression_loss(wrong, measures, mean, std).backward()
    assert wrong.grad is not None and float(wrong.grad[1, 0]) == 0.0 and float(wrong.grad[0, 1]) != 0.0


@pytest.mark.parametrize("arch", ["comb", "liae"])
def test_an_identity_may_be_called_anything_even_double(arch: str) -> None:
    """"double" (the stunt double) or "train" are nn.Module attributes; they still name identities."""
    cfg = NetConfig(res=32, width=8, latent=32, identities=["double", "train", "man"], arch=arch, source="man")
    net = CombNet(cfg, minimum_res=32)
    assert list(net.decoders) == ["double", "train", "man"] and "double" in net.decoders
    assert dict(net.decoders.items())["double"] is net.decoder("double")
    x = torch.rand(1, 3, 32, 32)
    assert net(x, "double")[0].shape == (1, 3, 32, 32)
    again = CombNet(cfg, minimum_res=32)
    again.load_state_dict(net.state_dict())
    assert torch.equal(again(x, "train")[0], net(x, "train")[0])
    assert any(k.startswith("decoders.man.") for k in net.state_dict())  # other names keep their keys
