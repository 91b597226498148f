"""Runs of the previous release open: run directories written by 269186e's code (tests/fixtures/runs_269186e:
a finished and an interrupted tiny run, trained with that commit's own code and conf) evaluate, predict,
export, report and resume; every method config of 269186e migrates to the network 269186e built."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from conftest import compose_config
from posereg.data.datamodule import DataInfo
from posereg.methods import build_net
from posereg.methods.initial_weights import without_initial_weights
from posereg.runs import RunDir
from posereg.runs.migrate import migrate_config
from posereg.weights import load_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# {"<method>/<data>": {"overrides", "config" (269186e's composed config, as it stored it), "params" (name -> shape
# of the network 269186e's build_net made)}}, written with 269186e's code
CONFIGS = json.loads((FIXTURES / "configs_269186e.json").read_text())
FINISHED = "backbone.name=test_efficientnet,debug=tiny,method.head.width=16,seed=0"
INTERRUPTED = "backbone.name=test_efficientnet,debug=tiny,method.head.width=16,trainer.limit_train_batches=40,seed=0"
COMMAND = ["debug=tiny", "logger=none", "backbone.name=test_efficientnet", "method.head.width=16",
           "trainer.limit_train_batches=40"]


@pytest.mark.parametrize("cell", sorted(CONFIGS))
def test_every_269186e_method_config_builds_the_network_269186e_built(cell):
    old = OmegaConf.create(CONFIGS[cell]["config"])
    cfg = migrate_config(old)
    assert "codec" not in cfg.method and cfg.method.net._target_.startswith("posereg.nets.")
    info = DataInfo(joint_set=str(cfg.data.joint_set), input_size=cfg.data.input_size, has_2d=True,
                    has_3d=cell.endswith("synth3d"), depth_range=2000.0, dataset_names=("synth",))
    net = build_net(without_initial_weights(cfg), info)
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == CONFIGS[cell]["params"]  # the same tensors: 269186e's checkpoints load into it


@pytest.fixture
def old_runs(tmp_path) -> Path:
    """A copy of the fixture's runs folder (the tools write beside the runs)."""
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / "runs_269186e", runs)
    return runs


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_finished_269186e_run_evaluates_predicts_exports_and_reports(old_runs, tmp_path):
    from posereg.cli.eval import evaluate
    from posereg.cli.export import main as export_main
    from posereg.cli.predict import predict
    from posereg.cli.report import main as report_main

    run = old_runs / "default" / FINISHED
    stored = json.loads((run / "metrics.json").read_text())
    # the validation and test of 269186e's own training, recomputed by today's code from the stored config and
    # weights (the best checkpoint is the last epoch's: final and best rows are equal)
    for split, section in (("val", "final"), ("test", "test")):
        out = evaluate(run, split=split)["metrics"]
        assert set(out) == set(stored[section])
        for name, value in stored[section].items():
            assert out[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name
    image = tmp_path / "person.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 72, 3), dtype=np.uint8)).save(image)
    summary = predict({"run": str(run), "input": str(image), "out": str(tmp_path / "pred"), "boxes": None,
                       "box": "whole", "box_score_thr": "0", "camera": None, "device": "cpu", "batch_size": "2",
                       "ckpt": "best", "overlays": "false"}, [], progress=False)
    people = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert summary["images"] == 1 and len(people["images"][0]["people"][0]["joints_2d"]) == 16
    export_main([f"run={run}", f"out={tmp_path / 'net.onnx'}"])
    exported = json.loads((tmp_path / "net.onnx.json").read_text())
    assert max(exported["max_abs_diff"].values()) < 1e-3
    assert report_main([str(old_runs / "default"), "--no-plots", "--out", str(tmp_path / "report")]) == 0
    assert "done" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_interrupted_269186e_run_resumes_to_done_with_the_configuration_it_started_with(old_runs, capsys):
    from posereg.recipes.train import train_task

    run = RunDir(old_runs / "default" / INTERRUPTED)
    before = load_checkpoint(run.last_ckpt)
    assert isinstance(before["callbacks"]["RngState"]["numpy"][1], np.ndarray)  # what 269186e wrote
    assert before["global_step"] == 65  # SIGTERM in the second epoch (step 65 of 80)
    cfg = compose_config([*COMMAND, f"paths.runs_dir={old_runs}"])
    assert cfg.method.stages == 2  # today's default; the run started with stages: null
    metrics = train_task(cfg, run_path=run.path, overrides=COMMAND, multirun=False)
    assert metrics is not None and metrics["global_step"] == 80  # 2 epochs of 40 steps: it went on from step 65
    status = run.read_status()
    assert status["status"] == "done" and status["resumed_from"].endswith("last.ckpt") and status["attempts"] == 2
    printed = capsys.readouterr().out
    assert "method.stages None (now 2)" in printed
    after = load_checkpoint(run.last_ckpt)["state_dict"]
    assert after.keys() == before["state_dict"].keys()
    assert any(not torch.equal(after[k], before["state_dict"][k]) for k in after if after[k].is_floating_point())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_changed_explicit_setting_still_refuses_the_resume(old_runs, capsys):
    from posereg.recipes.train import train_task

    run = RunDir(old_runs / "default" / INTERRUPTED)
    cfg = compose_config([*COMMAND, f"paths.runs_dir={old_runs}", "method.head.width=32"])
    with pytest.raises(SystemExit) as exc:
        train_task(cfg, run_path=run.path, overrides=[*COMMAND, "method.head.width=32"], multirun=False)
    assert exc.value.code == 2
    line = capsys.readouterr().out
    assert "method.head.width: 16 -> 32" in line and "posereg-eval" not in line
    assert run.read_status()["status"] == "interrupted"
