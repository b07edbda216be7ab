"""The quality report and the extract / train / export / eval commands end to end (tiny sizes)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facegraft.cli.main import main
from facegraft.training.evaluate import evaluate, masked_psnr, masked_ssim


def test_image_metrics_rank_closer_images_higher() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.6, (32, 32, 3)).astype(np.float32)
    matte = np.ones((32, 32), np.float32)
    near, far = a + 0.01 * rng.standard_normal(a.shape), a + 0.1 * rng.standard_normal(a.shape)
    assert masked_psnr(a, near, matte) > masked_psnr(a, far, matte)
    assert masked_ssim(a, a, matte) > 0.999 > masked_ssim(a, near, matte) > masked_ssim(a, far, matte)


def test_cli_extract_train_export_eval(man_extract, single_face_plate: str, clip_facesets, tmp_path: Path, capsys) -> None:
    track = man_extract.track_path
    man = str(tmp_path / "man")
    assert main(["extract", single_face_plate, "--identity", "man", "--out", man, "--res", "32", "--track", track,
                 "--min-motion", "0", "--frames", "1001-1006"]) == 0
    run = str(tmp_path / "run")
    common = ["--faceset", man, "--faceset", str(clip_facesets[1]), "--out", run, "--res", "64", "--width", "4",
              "--latent", "8", "--batch", "2", "--preview-every", "0", "--no-tensorboard", "--threads", "1"]
    assert main(["train", *common, "--steps", "2"]) == 0
    assert main(["train", *common, "--steps", "3"]) == 2  # run exists, no --resume: refused, nothing lost
    assert main(["train", *common, "--steps", "3", "--resume"]) == 0
    model = str(tmp_path / "m.onnx")
    assert main(["export", run, "--source", "woman", "--target", "nobody", "--out", model]) == 2
    assert "no identity 'nobody'" in capsys.readouterr().err and not Path(model).exists()
    assert main(["export", run, "--source", "woman", "--target", "man", "--out", model, "--fp16"]) == 0
    assert "max abs difference" in capsys.readouterr().out
    assert main(["eval", "--model", model, "--plate", single_face_plate, "--track", track, "--out",
                 str(tmp_path / "report"), "--frames", "1001-1003", "--no-identity", "--no-expression"]) == 0
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["model"]["steps"] == 3 and saved["frames"] == [1001, 1002, 1003]


def test_eval_report(tiny_run: Path, man_extract, single_face_plate: str, clip_facesets, tmp_path: Path) -> None:
    from facegraft.training.export import export_model

    model = export_model(tiny_run, source="woman", target="man", out=tmp_path / "m.onnx").path
    report = evaluate(model, single_face_plate, man_extract.track_path, tmp_path / "report",
                      faceset=clip_facesets[1], frames="1001-1004")
    m = report.metrics
    assert report.frames == [1001, 1002, 1003, 1004]
    assert m["self_reconstruction"]["faces"] == 12 and np.isfinite(m["self_reconstruction"]["psnr_db"])
    assert m["identity"]["status"] == "ok" and m["identity"]["swap_to_source"] > 0
    assert 0 < m["expression"]["nme_mean"] < 1 and m["flicker"]["ratio"] >= 0
    assert any("used in training" in n for n in report.notes)
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["metrics"]["identity"] == m["identity"]
    for name in ("identity.png", "expression.png", "flicker.png", "swaps.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000
