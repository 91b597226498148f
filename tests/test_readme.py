"""The README's quick examples run as written where affordable: every `posereg-train` line of "Switching method,
data and backbone" composes (`--cfg job` appended: training them all is the paper grids' job) and `--help`
answers; every line of "After training" runs in a folder holding `runs/default/seed=0` (a tiny trained run)
and `runs/quickstart3d/seed=0` (an untrained 3D one), except posereg-report's, which needs a whole grid."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, compose_config
from posereg.cli.clean import main as clean_main
from posereg.cli.eval import main as eval_main
from posereg.cli.export import main as export_main
from posereg.cli.predict import main as predict_main
from posereg.cli.train import main as train_main
from posereg.data import build_datamodule
from posereg.methods import build_module
from posereg.paths import real_slices_dir
from posereg.recipes.train import train_task

README = Path(__file__).resolve().parents[1] / "README.md"
MAINS = {"posereg-train": train_main, "posereg-eval": eval_main, "posereg-predict": predict_main,
         "posereg-export": export_main, "posereg-clean": clean_main}
NOT_RUN = {"posereg-report": "needs a trained grid (runs/integral_table7)"}
SMALL = ["backbone.name=resnet10t", "method.head.width=16"]


def section_commands(heading: str) -> list[list[str]]:
    """The commands of the first ```bash block under a README heading, as argv lists (comments and the
    `[optional]` notation dropped)."""
    text = README.read_text()
    start = text.index(f"## {heading}")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S).group(1)
    lines = [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return [[arg for arg in shlex.split(line, comments=True) if not arg.startswith("[")] for line in lines]


@pytest.mark.parametrize("argv", section_commands("Switching method, data and backbone"), ids=shlex.join)
def test_the_switching_examples_compose(argv, capsys):
    assert argv[0] == "posereg-train"
    extra = [] if "--help" in argv or "--cfg" in argv else ["--cfg", "job"]
    train_main([*argv[1:], *extra])
    out = capsys.readouterr().out
    if "--help" in argv:
        assert "== Config groups ==" in out and "method: deeppose_cascade, deepskeleton_maps" in out
        return
    assert out.startswith("data:\n") and "\nmethod:\n" in out  # the composed config
    for arg in argv[1:]:  # each group choice shows in the composed config
        key, _, value = arg.partition("=")
        if key == "method":
            assert f"  name: {value}\n" in out


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder as the README's reader has it after training: runs/default/seed=0, runs/quickstart3d/seed=0,
    photos/ with detections in dets.json, clip.mp4."""
    root = tmp_path_factory.mktemp("readme")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = compose_config([*TINY, f"paths.runs_dir={root / 'runs'}", "trainer.max_epochs=1", "test_after_fit=false",
                          *SMALL])
    train_task(cfg, run_path=root / "runs" / "default" / "seed=0", overrides=[], multirun=False)
    cfg3d = compose_config([*TINY, "data=synth3d", *SMALL, "method.head.depth_bins=8"])
    run3d = root / "runs" / "quickstart3d" / "seed=0"
    (run3d / ".hydra").mkdir(parents=True)
    (run3d / "checkpoints").mkdir()
    OmegaConf.save(cfg3d, run3d / ".hydra" / "config.yaml")
    torch.save({"state_dict": build_module(cfg3d, build_datamodule(cfg3d).info).state_dict()},
               run3d / "checkpoints" / "last.ckpt")
    photos = sorted((real_slices_dir() / "coco").glob("*.jpg"))[:2]
    if len(photos) < 2:
        pytest.skip(f"needs the real-data slices (coco jpgs) under {real_slices_dir()}")
    (root / "photos").mkdir()
    for photo in photos:
        (root / "photos" / photo.name).write_bytes(photo.read_bytes())
    (root / "dets.json").write_text(json.dumps([{"image_id": int(p.stem), "bbox": [20.0, 30.0, 120.0, 200.0],
                                                  "score": 0.9} for p in photos]))
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for k in range(3):
        writer.write(np.full((64, 96, 3), 60 * k, dtype=np.uint8))
    writer.release()
    return root


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_after_training_examples_run_as_written(folder, monkeypatch):
    monkeypatch.chdir(folder)
    ran = []
    for argv in section_commands("After training"):
        if argv[0] in NOT_RUN:
            continue
        result = MAINS[argv[0]](argv[1:])
        assert result in (None, 0), argv
        ran.append(argv[0])
    assert ran == ["posereg-eval", "posereg-predict", "posereg-predict", "posereg-export", "posereg-clean"]
    run = folder / "runs" / "default" / "seed=0"
    assert json.loads((run / "eval_test.json").read_text())["overrides"] == ["flip_test=false"]
    photos = json.loads((run / "predictions" / "photos" / "predictions.json").read_text())
    assert [len(image["people"]) for image in photos["images"]] == [1, 1]  # one detection each
    assert (folder / "runs" / "quickstart3d" / "seed=0" / "predictions" / "clip" / "videos" / "clip.json").is_file()
    assert (run / "export" / "out.onnx").is_file() and (run / "export" / "MODEL.md").is_file()
    assert not (folder / "predictions").exists()  # nothing written into the current folder
