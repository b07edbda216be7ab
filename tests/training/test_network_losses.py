"""The comb network's shapes and the losses' behaviour."""
from __future__ import annotations

import pytest
import torch

from facegraft.inference.errors import FaceGraftError
from facegraft.training.augment import AugmentConfig, augment
from facegraft.training.losses import LossWeights, ms_ssim, psnr, reconstruction_loss, ssim
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
    assert not torch.equal(a[1], c[1])
    assert not torch.equal(a[0], a[1])  # the input is warped, the target is not
    still = AugmentConfig(flip=0, scale=0, rotate=0, shift=0, warp=0, exposure=0, white_balance=0, contrast=0, saturation=0)
    warped, target, target_mattes = augment(faces, mattes, still, torch.Generator().manual_seed(7))
    assert torch.allclose(warped, faces, atol=1e-5) and torch.allclose(target, faces, atol=1e-5)
    flipped = augment(faces, mattes, AugmentConfig(**{**still.__dict__, "flip": 1.0}), torch.Generator())[1]
    assert torch.allclose(flipped, faces.flip(-1), atol=1e-5)
