"""The landmark-consistency loss: FaceMesh and the iris model converted to torch, reading real 64 px faces."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from synthetic import tiny_config

from facegraft.inference import assets
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.models import runtime
from facegraft.inference.track import expression
from facegraft.training.data import Batch, load_identities
from facegraft.training.faceset import Faceset
from facegraft.training.landmark_loss import (
    GROUPS,
    ColourToSrgb,
    LandmarkLoss,
    build_landmark_loss,
    landmark_errors,
)
from facegraft.training.landmark_net import face_mesh, iris_model
from facegraft.training.loop import make_optimizer, step_parts, train, train_step
from facegraft.training.losses import LossWeights
from facegraft.training.network import CombNet, NetConfig

RES = 64


@pytest.fixture(scope="module")
def woman(wolfgang_plate: str, tmp_path_factory: pytest.TempPathFactory) -> Faceset:
    """64 px faces of the woman's plate (1001-1024 = clip frames 0-23: eyes half open, then shut from 1017)."""
    from facegraft.training.extract import extract

    out = tmp_path_factory.mktemp("landmarks") / "woman"
    return extract(wolfgang_plate, identity="woman", out=out, res=RES, min_motion=0.0).faceset


@pytest.fixture(scope="module")
def loss(woman: Faceset, man_extract) -> LandmarkLoss:
    return build_landmark_loss([woman, man_extract.faceset], RES)


def faces(fs: Faceset, frames: list[int]) -> torch.Tensor:
    """The faceset's crops of ``frames`` as ``[N,3,R,R]`` model space."""
    at = [e["frame"] for e in fs.entries]
    picks = [at.index(f) for f in frames]
    return torch.from_numpy(np.asarray(fs.faces[picks], np.float32)).permute(0, 3, 1, 2).contiguous()


def frame_of(fs: Faceset, shut: bool) -> int:
    """A frame whose stored (tracker-measured) eyes are shut, or the most open one."""
    eyes = fs.measures()[:, :2].mean(1)
    frames = np.array([e["frame"] for e in fs.entries])
    return int(frames[np.argmin(eyes)] if shut else frames[np.argmax(eyes)])


# -- the converted graphs and the colour conversion -------------------------------------------------------------
def test_the_torch_graphs_read_real_faces_as_onnxruntime_does(woman: Faceset, loss: LandmarkLoss) -> None:
    reader = loss.reader
    x = faces(woman, [1001, 1010, 1020])
    with torch.no_grad():
        srgb = reader.to_srgb(x)
        marks = reader(x)
        crops, eyes = reader.mesh_crops(srgb).contiguous(), reader.eye_crops(srgb, marks.eye_maps).contiguous()
    for name, graph, batch in (("face_landmark", face_mesh(), crops), ("iris_landmark", iris_model(), eyes)):
        session = runtime.create_session(assets.model_path(name), device="cpu", threads=1)
        with torch.no_grad():
            ours = [t.numpy() for t in graph(batch)]
        for i in range(len(batch)):  # the file's batch is 1: one crop at a time
            theirs = session.run(None, {session.get_inputs()[0].name: batch[i:i + 1].numpy()})
            for a, b in zip(ours, theirs):
                assert a.shape[1:] == b.shape[1:]
                assert np.abs(a[i] - b[0]).max() < 2e-3, name  # crop px (192 or 64 px crops)
    assert not any(p.requires_grad for p in list(face_mesh().parameters()) + list(face_mesh().buffers()))


def test_the_colour_conversion_is_the_trackers(woman: Faceset) -> None:
    pixels = np.asarray(woman.faces[:4], np.float32)
    expected = np.clip(colour.converter(woman.colorspace, colour.SRGB_ENCODED, woman.ocio_config)(pixels), 0, 1)
    to_srgb = ColourToSrgb(woman.colorspace, woman.ocio_config)
    got = to_srgb(torch.from_numpy(pixels).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - expected).max() < 2e-3
    with pytest.raises(FaceGraftError, match="ACEScg"):
        ColourToSrgb("ACEScg")


def test_the_reader_measures_the_eyes_the_tracker_measured(woman: Faceset, loss: LandmarkLoss) -> None:
    """Eye openness from the lids read on the 64 px crops agrees with the tracker's, on the full plate."""
    frames = [e["frame"] for e in woman.entries]
    with torch.no_grad():
        marks = loss.reader(faces(woman, frames))
    lids = marks.lids  # per eye: 7 lower then 7 upper lid points, outer to inner
    gap = (lids[:, :, 9:12] - lids[:, :, 2:5]).norm(dim=-1).mean(-1)
    width = (marks.corners.reshape(-1, 2, 2, 2)[:, :, 0] - marks.corners.reshape(-1, 2, 2, 2)[:, :, 1]).norm(dim=-1)
    ours = (gap / width).numpy()
    theirs = woman.measures()[:, :2]
    assert np.abs(ours - theirs).mean() < 0.04
    shut = theirs.mean(1) < expression.EYE_SHUT
    assert shut.any() and (~shut).any()
    assert ours[shut].mean() < ours[~shut].mean() - 0.05
    assert (marks.presence > 0.5).all()


# -- the loss ---------------------------------------------------------------------------------------------------
def test_the_loss_is_zero_for_a_face_against_itself_and_grows_with_shut_eyes(woman: Faceset, loss: LandmarkLoss) -> None:
    opened, shut = frame_of(woman, shut=False), frame_of(woman, shut=True)
    x = faces(woman, [opened, shut])
    # the open face with the shut face's eyes pasted in: the same face, pose and mouth, eyes shut
    eyes = np.stack([woman.matte("left_eye"), woman.matte("right_eye")]).max(0)
    at = [e["frame"] for e in woman.entries]
    region = cv2.dilate(np.maximum(eyes[at.index(opened)], eyes[at.index(shut)]), np.ones((5, 5), np.uint8))
    region = torch.from_numpy(cv2.GaussianBlur(region, (3, 3), 0))[None, None]
    pasted = x[:1] * (1 - region) + x[1:] * region
    with torch.no_grad():
        ref = loss.reference(x[:1])
        itself = landmark_errors(loss.reader(x[:1], ref.eye_maps), ref)[0]
        blink = landmark_errors(loss.reader(pasted, ref.eye_maps), ref)[0]
        other = landmark_errors(loss.reader(x[1:], ref.eye_maps), ref)[0]
        assert float(loss(x[:1], ref)) < 1e-4
    g = {name: i for i, name in enumerate(GROUPS)}
    assert float(itself.max()) < 1e-4
    assert blink[g["eyes"]] > 0.03  # a shut lid moves by about a third of an eye width, over the eye distance
    assert blink[g["eyes"]] > 4 * blink[g["lips"]]  # only the eyes changed
    assert other.mean() > blink.mean() * 0.5 and other[g["eyes"]] > 0.03


def test_gradients_reach_the_other_decoder_through_the_swap(woman: Faceset, man_extract, loss: LandmarkLoss) -> None:
    """Only the swap path (the man's decoder drawing the woman's encoded faces) can move the man's decoder here:
    the colour losses are off and his own faces are blank (FaceMesh finds no face, so they count for nothing)."""
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=RES, width=8, latent=32, identities=["woman", "man"]))
    weights = LossWeights(l1=0.0, ssim=0.0, mask=0.0, features=0.0, landmarks=1.0)
    x, m = faces(woman, [1001, 1005]), torch.ones(2, 2, RES, RES)
    drawn = {"woman": Batch(x, m), "man": Batch(torch.full_like(x, 0.1), m)}

    def man_decoder_gradient(swap: bool) -> float:
        parts = step_parts(net, torch.optim.SGD(net.parameters(), lr=0.0), torch.device("cpu"), ["woman", "man"],
                           weights=weights, landmarks=loss)
        if not swap:
            parts.swaps = {"woman": [], "man": []}
        done = train_step(parts, lambda name: drawn[name], torch.Generator().manual_seed(0))
        assert float(done.terms[0]["landmarks_swap"]) > 0 or not swap
        return sum(float(p.grad.abs().sum()) for p in net.decoders["man"].parameters() if p.grad is not None)

    assert man_decoder_gradient(swap=True) > 0
    assert man_decoder_gradient(swap=False) == 0


def test_a_run_with_the_landmark_loss_trains_and_logs_its_terms(woman: Faceset, man_extract, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    facesets = [woman.path, man_extract.faceset.path]
    result = train(tiny_config(facesets, tmp_path / "run", steps=2, res=RES, min_res=RES, landmarks=1.0,
                               landmark_faces=2, adversarial=0.1, arch="liae", source="man", tensorboard=True,
                               json_progress=True))
    assert len(result.losses) == 2 and np.isfinite(result.losses).all()
    bar = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    last = [e for e in bar if e.get("event") == "progress" and e.get("stage") == "train"][-1]
    assert float(last["lm"]) > 0 and float(last["lm_swap"]) > 0 and "critic" in last and "adv" in last
    logged = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    logged.Reload()
    assert {"loss/woman/landmarks", "loss/woman/landmarks_swap", "loss/man/adversarial", "loss/critic"} <= set(
        logged.Tags()["scalars"])

    data = load_identities([str(f) for f in facesets])
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=RES, width=8, latent=32, identities=list(data), arch="liae", source="man"))
    parts = step_parts(net, make_optimizer(net, 1e-4), torch.device("cpu"), list(data),
                       weights=LossWeights(landmarks=1.0), landmarks=build_landmark_loss(
                           [fs for d in data.values() for fs in d.facesets], RES))
    assert parts.swaps == {"woman": ["man"], "man": []}  # liae: only the source's decoder is exported
    drawn = {n: d.batch([0, 1], RES) for n, d in data.items()}
    done = train_step(parts, lambda n: drawn[n], torch.Generator().manual_seed(0))
    woman_terms, man_terms = done.terms
    assert float(woman_terms["landmarks"]) > 0 and float(woman_terms["landmarks_swap"]) > 0
    assert float(man_terms["landmarks_swap"]) == 0  # the source is not swapped


def test_the_landmark_loss_joins_at_landmarks_from(woman: Faceset, man_extract, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    facesets = [woman.path, man_extract.faceset.path]
    train(tiny_config(facesets, tmp_path / "run", steps=4, res=RES, min_res=RES, landmarks=1.0, landmark_faces=2,
                      landmarks_from=0.5, arch="liae", source="man", json_progress=True))
    out = capsys.readouterr().out
    bar = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steps = [e for e in bar if e.get("event") == "progress" and e.get("stage") == "train"]
    assert [("lm" in e) for e in steps[-4:]] == [False, False, True, True]
    assert "step 2: the landmark-consistency loss joins" in out
    with pytest.raises(FaceGraftError):
        train(tiny_config(facesets, tmp_path / "bad", steps=4, res=RES, min_res=RES, landmarks=1.0, landmarks_from=1.0))


def test_off_by_default(tiny_run: Path) -> None:
    from facegraft.training.checkpoint import load_checkpoint
    from facegraft.training.loop import TrainConfig

    assert TrainConfig(facesets=[], out="").landmarks == 0.0
    assert load_checkpoint(tiny_run)["train"]["landmarks"] == 0.0
    with pytest.raises(ValueError, match="both a weight and their module"):
        net = CombNet(NetConfig(res=32, width=8, latent=32, identities=["a", "b"]), minimum_res=32)
        step_parts(net, make_optimizer(net, 1e-3), torch.device("cpu"), ["a", "b"], weights=LossWeights(landmarks=1.0))


def test_facesets_without_face_landmarks_are_refused_before_any_step(clip_facesets, tmp_path: Path) -> None:
    with pytest.raises(FaceGraftError, match="do not outline faces") as info:
        train(tiny_config(clip_facesets, tmp_path / "run", steps=1, landmarks=1.0))
    assert str(clip_facesets[0]) in str(info.value.path)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
