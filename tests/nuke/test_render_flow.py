"""A compositor's day with the real FaceGraft CLI: render, render again (nothing to do), change something
upstream and render again (re-cached, re-tracked, re-rendered), bad frames skipped and reported, the
blocking call for ``nuke -t``, animated knobs. The node's internal Writes are executed the way Nuke
would (the graph renderer writes what flows into them), so the cached plate is what the node sees."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import facegraft_nuke
import nk_graph
import nuke
import numpy as np
import pytest
from facegraft_nuke import apply, knobs, node_settings, nodes, paths
from facegraft_nuke.errors import NodeError, RenderError
from nuke_support import plate_read, save_script

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from render_models import build_identity_model  # type: ignore[import-not-found]  # noqa: E402

WIDTH, HEIGHT = 640, 360


def _graded_plate(plate: str, gain: float = 1.0) -> nuke.Node:
    read = plate_read(plate, 1001, 1012)
    grade = nuke.Node("Grade", "Grade1")
    grade.addKnob(nuke.Array_Knob("multiply", value=gain))
    grade.setInput(0, read)
    nuke.root().add_node(grade)
    return grade


def _node(tmp_path: Path, upstream: nuke.Node, last: int = 1003) -> nuke.Gizmo:
    save_script(tmp_path / "comp" / "sh010_comp_v001.nk", 1001, last)
    model = build_identity_model(tmp_path / "face.onnx", res=64, shift=(0.2, -0.1, 0.1))
    node = nuke.createNode("FaceGraft")
    node.setInput(0, upstream)
    node["model_file"].setValue(str(model))
    node["python"].setValue(sys.executable)
    node["device"].setValue("cpu")
    node["color_match"].setValue("none")
    return node


def _run(node: nuke.Gizmo) -> list[tuple[str, bool]]:
    job = knobs.render(node)
    assert job is not None, nuke.recorded("message")
    job.join(300)
    assert job.result is not None and job.result.ok, job.result
    return [(s.label, "--overwrite" in s.argv) for s in job.steps]


def test_render_render_again_and_render_after_an_upstream_change(fake: object, single_face_plate: str,
                                                                 tmp_path: Path) -> None:
    graph = nk_graph.Renderer(nk_graph.Scene(WIDTH, HEIGHT, "ocio://studio-config-latest", "scene_linear"))
    nk_graph.nuke_executes_writes(graph)
    grade = _graded_plate(single_face_plate)
    node = _node(tmp_path, grade)
    chosen = node_settings.read(node)
    assert chosen.plate.endswith("/plate.####.exr")  # through the cache: the plate is graded upstream

    assert _run(node) == [("track", False), ("render", False)]
    assert node["rendered"].value() is True and node["status"].value() == "rendered 1001-1003"
    assert ("execute", "RenderRead", "reload") in nuke.calls
    first = graph.render(node, 1002)
    stream = graph.render(grade, 1002)
    face = first["swap.alpha"] > 0.5
    assert face.sum() > 1000 and np.abs(first["rgba.red"] - stream["rgba.red"])[face].mean() > 0.05
    np.testing.assert_array_equal(first["rgba.red"][first["swap.alpha"] == 0], stream["rgba.red"][first["swap.alpha"] == 0])
    cli_composite = nk_graph.read_exr(paths.frame_path(chosen.out, 1002), WIDTH, HEIGHT)
    for channel in ("rgba.red", "rgba.green", "rgba.blue"):  # swap over the live plate == FaceGraft's composite
        np.testing.assert_allclose(first[channel], cli_composite[channel], rtol=2e-3, atol=1e-3)
    frames = {f: Path(paths.frame_path(chosen.out, f)).stat().st_mtime_ns for f in range(1001, 1004)}

    # the same render delivered to another comp: FaceGraftApply with its defaults merges it the same way
    delivered = nuke.createNode("FaceGraftApply")
    delivered.setInput(0, grade)
    delivered["file"].setValue(chosen.out)
    apply.knob_changed(delivered, delivered["file"])
    applied = graph.render(delivered, 1002)
    for channel in ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha", "stmap.red", "matte.face"):
        np.testing.assert_allclose(applied[channel], first[channel], atol=1e-5)

    assert _run(node) == [("render", False)]  # nothing changed: no tracking, every frame kept
    assert {f: Path(paths.frame_path(chosen.out, f)).stat().st_mtime_ns for f in range(1001, 1004)} == frames

    grade["multiply"].setValue(1.6)  # the plate changes upstream
    assert _run(node) == [("track", False), ("render", False)]
    again = graph.render(node, 1002)
    stream = graph.render(grade, 1002)
    rendered = nk_graph.read_exr(paths.frame_path(chosen.out, 1002), WIDTH, HEIGHT)
    off = rendered["swap.alpha"] == 0
    np.testing.assert_allclose(rendered["rgba.red"][off], stream["rgba.red"][off], rtol=1e-3)  # the new plate
    assert np.abs(again["rgba.red"] - first["rgba.red"])[face].mean() > 0.05  # and the new face on it
    logs = Path(chosen.out).parent / "logs"
    assert {p.name for p in logs.iterdir()} >= {"track.log", "render.log"}

    plate = Path(paths.frame_path(chosen.plate, 1001)).stat().st_mtime_ns
    rendered = {f: Path(paths.frame_path(chosen.out, f)).stat().st_mtime_ns for f in range(1001, 1004)}
    node["erode"].setValue(1.0)  # a render setting: no tracking, every frame rendered again by FaceGraft's resume
    assert _run(node) == [("render", False)]
    assert Path(paths.frame_path(chosen.plate, 1001)).stat().st_mtime_ns == plate  # the cache kept its unchanged frames
    assert all(Path(paths.frame_path(chosen.out, f)).stat().st_mtime_ns != rendered[f] for f in rendered)


def test_blocking_render_for_nuke_t_reports_skipped_frames(fake: object, single_face_plate: str,
                                                           tmp_path: Path) -> None:
    """``facegraft_nuke.render(node, block=True)`` without a GUI: no main-thread round trip, the result returned,
    a bad frame skipped on purpose reported as such (not as a failure), and the frame shows an error."""
    plates = tmp_path / "plates"
    plates.mkdir()
    for frame in (1001, 1002, 1003):
        shutil.copy(single_face_plate.replace("####", str(frame)), plates / f"sf.{frame}.exr")
    damaged = plates / "sf.1002.exr"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 3])
    nuke.GUI = False
    nuke.queue_main_thread = True  # nothing may wait for a main thread that `nuke -t` does not run
    node = _node(tmp_path, plate_read(str(plates / "sf.####.exr"), 1001, 1003))
    node["on_error"].setValue("skip")
    done = facegraft_nuke.render(node, block=True)
    assert (done.first, done.last, done.skipped) == (1001, 1003, "1002") and not nuke.main_queue
    assert node["rendered"].value() is True and "frames 1002 skipped" in node["status"].value()
    graph = nk_graph.Renderer(nk_graph.Scene(WIDTH, HEIGHT, "ocio://studio-config-latest", "scene_linear"))
    graph.render(node, 1003)
    with pytest.raises(nk_graph.ReadError, match="RenderRead: missing frame 1002"):
        graph.render(node.node("RenderRead"), 1002)

    node["on_error"].setValue("fail")
    with pytest.raises(RenderError, match="bad frame"):
        facegraft_nuke.render(node, block=True)


def test_animated_knobs_are_sent_when_constant_and_refused_when_they_change(fake: object, tmp_path: Path) -> None:
    node = _node(tmp_path, nuke.Node("Grade", "Grade1"), last=1010)
    erode = node["erode"]
    erode.setExpression("feather / 3")  # an expression that does not change over the shot
    assert node_settings.read(node).erode == 4.0
    erode.clearAnimated()
    erode.setAnimated()
    erode.setValueAt(2.0, 1001)
    erode.setValueAt(6.0, 1010)
    with pytest.raises(NodeError, match=r"'erode' is animated \(2 to 6 over frames 1001-1010, changing at frame 1002\)"):
        node_settings.read(node)
    assert knobs.render(node) is None and "'erode' is animated" in nuke.recorded("message")[-1][1]
    feather = node["feather"]
    feather.setAnimated()
    feather.setValueAt(8.0, 1001)
    erode.clearAnimated()
    assert node_settings.read(node).feather == 8.0


def test_nothing_runs_twice_for_one_node(fake: object, tmp_path: Path) -> None:
    node = _node(tmp_path, nuke.Node("Grade", "Grade1"))
    from facegraft_nuke import bridge, rendering

    blocker = bridge.Job(rendering.job_key(node), "busy", lambda job: bridge.StepResult(True))
    blocker._register()
    try:
        assert knobs.render(node) is None and "busy (rendering or training)" in nuke.recorded("message")[-1][1]
        assert knobs.submit_farm(node) is None and "busy" in nuke.recorded("message")[-1][1]
    finally:
        blocker._unregister()
    assert nodes.text(node, "status") == "not rendered"
