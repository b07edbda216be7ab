"""The training feeder: batches read ahead on worker threads are the batches the loop would draw."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from facegraft.training.data import load_identities
from facegraft.training.loader import Feeder, feeder_for, positions
from facegraft.training.loop import make_optimizer, step_parts, train_step
from facegraft.training.network import CombNet, NetConfig

RES = 32


@pytest.fixture(scope="module")
def identities(clip_facesets: list[Path]):
    data = load_identities([str(p) for p in clip_facesets])
    for d in data.values():
        d.measure().balance(0.5)  # weighted draws, as the loop makes them
    return data


def _steps(feeder: Feeder, count: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for _ in range(count):
        out.append({name: torch.cat([b.faces.flatten(), b.mattes.flatten()])
                    for name in feeder.names for b in [feeder.draw(name)]})
    return out


def _same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def test_the_draw_is_the_one_identity_data_makes(identities):
    d = next(iter(identities.values()))
    picked = positions(d, torch.Generator().manual_seed(5), 6)
    sampled = d.sample(torch.Generator().manual_seed(5), 6, RES)
    assert torch.equal(d.batch(picked, RES).faces, sampled.faces)


def test_reading_ahead_on_threads_gives_the_same_batches(identities):
    with Feeder(identities, 4, RES, torch.device("cpu"), seed=3, workers=0) as inline:
        want = _steps(inline, 6)
    with Feeder(identities, 4, RES, torch.device("cpu"), seed=3, workers=3, depth=2) as ahead:
        got = _steps(ahead, 6)
        assert ahead.steps == 6 and ahead.waited >= 0.0
    assert _same(got, want)
    with Feeder(identities, 4, RES, torch.device("cpu"), seed=4, workers=0) as other:
        assert not _same(_steps(other, 6), want)  # the seed decides


def test_a_resumed_feeder_continues_where_the_checkpoint_was(identities):
    with Feeder(identities, 4, RES, torch.device("cpu"), seed=1, workers=2, depth=3) as first:
        before = _steps(first, 2)
        saved = first.state()  # the planner is steps ahead by now
        after = _steps(first, 3)
    with Feeder(identities, 4, RES, torch.device("cpu"), seed=99, workers=2, state=saved) as resumed:
        assert _same(_steps(resumed, 3), after)
    assert not _same(before, after[:2])


def test_each_identity_is_drawn_once_a_step(identities):
    names = list(identities)
    with Feeder(identities, 2, RES, torch.device("cpu"), seed=0, workers=0) as feeder:
        first = feeder.draw(names[0])
        assert feeder.draw(names[1]).faces.shape == (2, 3, RES, RES) and feeder.steps == 1
        again = feeder.draw(names[0])  # asked again: the next step
        assert feeder.steps == 2 and not torch.equal(first.faces, again.faces)


def test_closing_stops_every_thread(identities):
    before = threading.active_count()
    feeder = Feeder(identities, 2, RES, torch.device("cpu"), seed=0, workers=3, depth=2)
    _steps(feeder, 1)
    feeder.close()
    assert threading.active_count() == before


def test_the_loop_step_trains_on_fed_batches(identities):
    names = list(identities)
    torch.manual_seed(0)
    net = CombNet(NetConfig(res=RES, width=8, latent=32, identities=names), minimum_res=RES)
    parts = step_parts(net, make_optimizer(net, 5e-4), torch.device("cpu"), names)
    g = torch.Generator().manual_seed(0)
    with feeder_for(identities, 4, RES, torch.device("cpu"), seed=0) as feeder:
        assert feeder._pool is None  # on the CPU the step reads its own faces
        losses = [float(train_step(parts, feeder.draw, g).loss) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="this torch has no CUDA")
def test_cuda_batches_arrive_on_the_gpu_equal_to_the_cpu_ones(identities):
    with Feeder(identities, 4, RES, torch.device("cpu"), seed=2, workers=0) as cpu:
        want = _steps(cpu, 3)
    with Feeder(identities, 4, RES, torch.device("cuda"), seed=2, workers=2) as gpu:
        b = gpu.draw(gpu.names[0])
        assert b.faces.device.type == "cuda" and b.measures is None or b.measures.device.type == "cpu"
        got = [{k: v.cpu() for k, v in step.items()} for step in [
            {gpu.names[0]: torch.cat([b.faces.flatten(), b.mattes.flatten()]),
             **{n: torch.cat([x.faces.flatten(), x.mattes.flatten()]) for n in gpu.names[1:] for x in [gpu.draw(n)]}}]]
        got += [{k: v.cpu() for k, v in s.items()} for s in _steps(gpu, 2)]
    assert _same(got, want)


class _Broken:
    weights = None

    def __len__(self) -> int:
        return 4

    def batch(self, positions, res):  # type: ignore[no-untyped-def]
        raise OSError("faces.f16: input/output error")


def test_a_read_error_reaches_the_loop(identities):
    sources = {**identities, "broken": _Broken()}
    with Feeder(sources, 2, RES, torch.device("cpu"), seed=0, workers=2) as feeder:
        with pytest.raises(OSError, match="input/output error"):
            feeder.draw(next(iter(identities)))
