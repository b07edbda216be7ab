"""The render scheduler with small fake stages: batch slots, stage threads, error policies,
progress, and resume over real EXR files."""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np
import pytest

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import exr, layers
from facegraft.inference.io.frames import Plate
from facegraft.inference.io.sequence import SequencePattern
from facegraft.inference.render.frame import Job
from facegraft.inference.render.report import RenderReport
from facegraft.inference.render.scheduler import Scheduler, SlotBatch, StorageError, storage_error

SHAPE = (3, 2, 2)


def _plate(frame: int) -> Plate:
    return Plate(frame, np.zeros((2, 2, 3), np.float32), (0, 0), (0, 0, 2, 2))


class FakeStages:
    """``prepare``: a crop filled with the frame number (no crop for ``no_face``); frames in
    ``unreadable`` fail with no plate, frames in ``uncroppable`` fail after their plate was read.
    ``finish`` records what it was given; frames in ``unwritable`` fail to write."""

    def __init__(self, no_face=(), unreadable=(), uncroppable=(), unwritable=(), readable=None) -> None:
        self.no_face, self.unreadable, self.uncroppable = set(no_face), set(unreadable), set(uncroppable)
        self.unwritable = set(unwritable)
        self.readable = readable  # frames fallback may read (None: any)
        self.finished: list[tuple[int, str, Optional[float], dict]] = []
        self.threads: dict[str, set[str]] = {"prepare": set(), "finish": set()}
        self._lock = threading.Lock()

    def prepare(self, frame: int) -> Job:
        self.threads["prepare"].add(threading.current_thread().name)
        if frame in self.unreadable:
            return Job(frame, error=BadFrameError("cannot read the plate", path=f"plate.{frame}.exr"))
        job = Job(frame, plate=_plate(frame))
        if frame in self.uncroppable:
            job.error = FaceGraftError("the holdout has no channel A")
        elif frame in self.no_face:
            job.status = layers.NO_FACE
        else:
            job.crop = np.full(SHAPE, float(frame), np.float32)
        return job

    def finish(self, job: Job, swap: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None) -> None:
        self.threads["finish"].add(threading.current_thread().name)
        if job.frame in self.unwritable:
            raise FaceGraftError("write failed: the disk is full", frame=job.frame)
        assert (swap is None) == (mask is None) == (job.crop is None)
        value = None if swap is None else float(swap.mean())
        with self._lock:
            self.finished.append((job.frame, job.status, value, dict(job.note)))

    def fallback(self, frame: int) -> Optional[Plate]:
        candidates = [f for f in range(frame - 1, frame - 10, -1) if self.readable is None or f in self.readable]
        return _plate(candidates[0]) if candidates else None


class FakeModel:
    """``swap = crop + 0.5``; records the frames (crop values) in each call, by slot, and its thread."""

    def __init__(self, batch: int = 4) -> None:
        self.batch = batch
        self.shape = SHAPE
        self.calls: list[list[Optional[int]]] = []
        self.threads: set[str] = set()

    def run(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert faces.shape == (self.batch, *SHAPE) and faces.dtype == np.float32
        self.threads.add(threading.current_thread().name)
        self.calls.append([int(f.flat[0]) if f.any() else None for f in faces])
        return faces + 0.5, np.ones((self.batch, 1, 2, 2), np.float32)


class Recorder:
    def __init__(self) -> None:
        self.updates: list[tuple[int, dict]] = []
        self.warnings: list[tuple[str, dict]] = []

    def update(self, n: int = 1, **info) -> None:
        self.updates.append((n, info))

    def warn(self, message: str, **info) -> None:
        self.warnings.append((message, info))


def _run(frames, stages=None, model=None, **options):
    stages = stages or FakeStages()
    model = model or FakeModel()
    report = RenderReport()
    scheduler = Scheduler(stages, model, report, **options)
    return scheduler.run(list(frames)), stages, model


def test_each_frame_has_a_fixed_slot_in_the_call_for_its_block():
    report, stages, model = _run(range(1002, 1010))
    # block 250 (1000-1003) has 1002 and 1003, block 251 (1004-1007) is full, 1008 and 1009 share block 252
    assert model.calls == [[None, None, 1002, 1003], [1004, 1005, 1006, 1007], [1008, 1009, None, None]]
    assert report.rendered == list(range(1002, 1010))
    # every frame got its own crop's output back, whatever its slot
    assert [(f, v) for f, _, v, _ in stages.finished] == [(f, f + 0.5) for f in range(1002, 1010)]


@pytest.mark.parametrize("chunks", [[range(1001, 1009)], [range(1001, 1005), range(1005, 1009)],
                                    [[f] for f in range(1001, 1009)], [[1008, 1001, 1005]]])
def test_slots_depend_on_frame_numbers_only(chunks):
    for chunk in chunks:
        _, _, model = _run(chunk)
        for call in model.calls:
            frames = [f for f in call if f is not None]
            assert len({f // 4 for f in frames}) == 1  # one block per call
            assert all(call[f % 4] == f for f in frames)


def test_a_taken_slot_starts_a_new_call():
    _, _, model = _run([1004, 1008, 1005])  # 1008 would take 1004's slot 0 (and is another block)
    assert model.calls == [[1004, None, None, None], [1008, None, None, None], [None, 1005, None, None]]


def test_frames_without_a_face_take_no_slot_and_no_model_call():
    report, stages, model = _run(range(1001, 1007), FakeStages(no_face={1002, 1003}))
    assert model.calls == [[None, 1001, None, None], [1004, 1005, 1006, None]]
    assert report.no_face == [1002, 1003] and report.rendered == [1001, 1004, 1005, 1006]
    assert [f for f, *_ in stages.finished] == list(range(1001, 1007))
    _, _, model = _run(range(1001, 1011), FakeStages(no_face=set(range(1001, 1011))))
    assert model.calls == []


def test_slot_batch_accepts_full_and_faces():
    batch = SlotBatch(4)
    first = Job(1005, crop=np.ones(SHAPE, np.float32))
    assert batch.accepts(first)
    batch.add(first)
    assert batch.accepts(Job(1006, crop=np.ones(SHAPE, np.float32)))
    assert not batch.accepts(Job(1009, crop=np.ones(SHAPE, np.float32)))  # same slot, next block
    assert not batch.accepts(Job(1008, crop=np.ones(SHAPE, np.float32)))  # next block
    assert batch.accepts(Job(1009))  # no crop: no slot
    faces = batch.faces(SHAPE)
    assert faces is not None and faces[1].all() and not faces[[0, 2, 3]].any()
    assert not batch.full()
    for frame in range(1010, 1017):  # frames without a face: written once 2 x size are waiting
        batch.add(Job(frame))
    assert batch.full()
    assert [j.frame for j in batch.take()] == [1005, *range(1010, 1017)] and batch.faces(SHAPE) is None


def test_stages_run_on_their_own_threads():
    report, stages, model = _run(range(1001, 1013), readers=2, writers=3)
    assert stages.threads["prepare"] and all(n.startswith("facegraft-read") for n in stages.threads["prepare"])
    assert stages.threads["finish"] and all(n.startswith("facegraft-write") for n in stages.threads["finish"])
    assert model.threads == {threading.main_thread().name}
    assert report.timings.model > 0 and report.timings.wall > 0


def test_fail_stops_at_the_bad_frame_after_writing_the_ones_before():
    stages = FakeStages(unreadable={1006})
    with pytest.raises(BadFrameError) as err:
        _run(range(1001, 1011), stages)
    assert err.value.frame == 1006  # the frame is filled in
    # frames before it were sent to be written (writes not yet started are cancelled), none after
    assert all(f < 1006 for f, *_ in stages.finished)


def test_skip_writes_nothing_for_a_bad_frame_and_carries_on():
    progress = Recorder()
    report, stages, _ = _run(range(1001, 1007), FakeStages(unreadable={1003}), on_error="skip", progress=progress)
    assert report.skipped == [1003] and report.rendered == [1001, 1002, 1004, 1005, 1006]
    assert 1003 not in [f for f, *_ in stages.finished]
    assert "frame 1003" in report.errors[1003] and "plate.1003.exr" in report.errors[1003]
    assert progress.warnings == [("frame 1003: cannot read the plate", {"frame": 1003, "file": "plate.1003.exr"})]
    # one update per frame: a skipped frame when it fails, written frames in order as their writes complete
    assert sorted((i["frame"], n, i["status"]) for n, i in progress.updates) == [
        (1001, 1, "rendered"), (1002, 1, "rendered"), (1003, 1, "skipped"),
        (1004, 1, "rendered"), (1005, 1, "rendered"), (1006, 1, "rendered")]
    assert [i["frame"] for _, i in progress.updates if i["status"] == "rendered"] == [1001, 1002, 1004, 1005, 1006]


def test_hold_writes_the_plate_or_the_nearest_readable_frame():
    stages = FakeStages(unreadable={1003}, uncroppable={1005})
    report, stages, _ = _run(range(1001, 1007), stages, on_error="hold")
    assert report.held == [1003, 1005] and report.rendered == [1001, 1002, 1004, 1006]
    held = {f: (status, value, note) for f, status, value, note in stages.finished if f in (1003, 1005)}
    assert held[1003] == (layers.HELD, None, {"hold_reason": "cannot read the plate", "held_from": 1002})
    assert held[1005] == (layers.HELD, None, {"hold_reason": "the holdout has no channel A"})  # its own plate


def test_hold_without_a_readable_frame_skips():
    progress = Recorder()
    report, stages, _ = _run([1001, 1002], FakeStages(unreadable={1001, 1002}, readable=set()), on_error="hold",
                             progress=progress)
    assert report.skipped == [1001, 1002] and not report.held and not stages.finished
    assert [(n, i["status"]) for n, i in progress.updates] == [(1, "skipped"), (1, "skipped")]


def test_a_write_error_stops_the_render_whatever_the_policy():
    stages = FakeStages(unwritable={1004})
    with pytest.raises(FaceGraftError, match="disk is full"):
        _run(range(1001, 1013), stages, on_error="skip")
    assert 1012 not in [f for f, *_ in stages.finished]


def test_unknown_policy_is_refused():
    with pytest.raises(FaceGraftError, match="on-error"):
        Scheduler(FakeStages(), FakeModel(), RenderReport(), on_error="retry")


def _write_frame(path) -> None:
    exr.write_image(path, np.zeros((4, 6, 3), np.float16), exr.new_spec(6, 4, ["R", "G", "B"]))


def test_resume_keeps_complete_frames_and_removes_stale_temporaries(tmp_path):
    out = SequencePattern(str(tmp_path / "r.####.exr"))
    for frame in (1001, 1002, 1004):
        _write_frame(out.path(frame))
    truncated = tmp_path / "r.1004.exr"
    truncated.write_bytes(truncated.read_bytes()[:300])  # a frame cut short is rendered again
    stale = tmp_path / ".r.1003.4242.17.tmp.exr"
    stale.write_bytes(b"half a frame")
    keep = tmp_path / ".r.1001.4242.17.tmp.exr"  # a temporary of a complete frame is left alone
    keep.write_bytes(b"x")
    progress, messages = Recorder(), []
    report = RenderReport()
    scheduler = Scheduler(FakeStages(), FakeModel(), report, progress=progress)
    todo = scheduler.resume(out, list(range(1001, 1006)), log=messages.append)
    assert todo == [1003, 1004, 1005] and report.existing == [1001, 1002]
    assert not stale.exists() and keep.exists()
    assert progress.updates == [(2, {})]  # frames on disk count as done, in one step
    assert report.stale == {1004: "incomplete"}
    assert messages == ["removed 1 temporary file(s) left by an interrupted render",
                        "2 frame(s) already rendered and up to date, kept: 1001-1002 (--overwrite renders them again)",
                        "1 frame(s) on disk are out of date and are rendered again: incomplete: 1004"]
    again = Scheduler(FakeStages(), FakeModel(), RenderReport())
    assert again.resume(out, list(range(1001, 1006)), overwrite=True) == list(range(1001, 1006))
    assert again.report.existing == [] and again.report.stale == {}


class FakeStamp:
    """Frames in ``changed`` are stamped otherwise on disk (``model changed``); each frame's
    attributes name it, so a test sees which frame's stamp a file got."""

    def __init__(self, changed=()) -> None:
        self.changed = set(changed)

    def frame_attributes(self, frame: int) -> dict[str, str]:
        return {"plate_fingerprint": f"plate-{frame}"}

    def check(self, path: str, frame: int) -> Optional[str]:
        if not exr.is_complete(path):
            return "incomplete"
        return "model changed" if frame in self.changed else None


def test_resume_renders_again_the_frames_whose_stamp_differs(tmp_path):
    out = SequencePattern(str(tmp_path / "r.####.exr"))
    for frame in (1001, 1002, 1003):
        _write_frame(out.path(frame))
    stages, messages = FakeStages(), []
    report = RenderReport()
    scheduler = Scheduler(stages, FakeModel(), report, stamp=FakeStamp(changed={1002}))
    todo = scheduler.resume(out, [1001, 1002, 1003, 1004], log=messages.append)
    assert todo == [1002, 1004] and report.existing == [1001, 1003] and report.stale == {1002: "model changed"}
    assert messages[-1] == "1 frame(s) on disk are out of date and are rendered again: model changed: 1002"
    scheduler.run(todo)
    # every frame written carries its own stamp
    assert {f: note["plate_fingerprint"] for f, _, _, note in stages.finished} == {1002: "plate-1002", 1004: "plate-1004"}


def test_a_held_frame_keeps_its_stamp_and_a_skipped_stale_frame_loses_its_old_render(tmp_path):
    out = SequencePattern(str(tmp_path / "r.####.exr"))
    for frame in (1001, 1002, 1003):
        _write_frame(out.path(frame))
    stale = FakeStamp(changed={1001, 1002, 1003})
    held = FakeStages(unreadable={1002})
    scheduler = Scheduler(held, FakeModel(), RenderReport(), on_error="hold", stamp=stale)
    scheduler.run(scheduler.resume(out, [1001, 1002, 1003]))
    note = next(n for f, status, _, n in held.finished if f == 1002)
    assert note["plate_fingerprint"] == "plate-1002" and note["hold_reason"] == "cannot read the plate"
    skipped = FakeStages(unreadable={1002})
    progress = Recorder()
    scheduler = Scheduler(skipped, FakeModel(), RenderReport(), on_error="skip", stamp=stale, progress=progress)
    report = scheduler.run(scheduler.resume(out, [1001, 1002, 1003]))
    assert report.skipped == [1002] and not (tmp_path / "r.1002.exr").exists()  # no out-of-date frame survives
    assert any("earlier render (model changed) was removed" in w[0] for w in progress.warnings)
    assert (tmp_path / "r.1001.exr").exists() and (tmp_path / "r.1003.exr").exists()


@pytest.mark.parametrize(("error", "code"), [
    (FaceGraftError("write failed: the disk is full", path="r.1001.exr"), 7),
    (FaceGraftError("the output folder is not writable", path="out"), 2),
])
def test_a_write_the_storage_refused_is_a_storage_error(error, code):
    class Failing(FakeStages):
        def finish(self, job, swap=None, mask=None):
            raise error

    with pytest.raises(FaceGraftError) as err:
        Scheduler(Failing(), FakeModel(), RenderReport()).run([1001, 1002])
    assert err.value.exit_code == code and err.value.frame in (1001, None)


def test_an_os_error_of_the_storage_behind_a_write_failure_is_a_storage_error():
    import errno

    try:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    except OSError as cause:
        try:
            raise FaceGraftError("write failed: the disk is full", path="r.1001.exr") from cause
        except FaceGraftError as exc:
            error = exc
    converted = storage_error(error, 1001)
    assert isinstance(converted, StorageError) and converted.exit_code == 7 and converted.frame == 1001
    assert "run the same command again" in converted.describe()
