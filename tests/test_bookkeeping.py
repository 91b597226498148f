"""Bookkeeping a researcher relies on: run keys that mean the experiment, debug=tiny keeps what it is told,
checkpoint retention and posereg-clean, TensorBoard events from a CSV history, runs stored by older posereg."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import BEST, compose_config
from posereg.cli.clean import main as clean
from posereg.cli.eval import evaluate
from posereg.cli.eval import main as eval_main
from posereg.data.transforms import AugmentConfig
from posereg.errors import ConfigError
from posereg.paths import CONF_DIR
from posereg.recipes.train import train_task
from posereg.runs import RunDir, register_resolvers
from posereg.runs.migrate import migrate_config
from posereg.weights import load_checkpoint

SMALL = ["backbone.name=resnet10t", "method.head.width=16", "data.input_size=32", "trainer.max_epochs=1"]
# configs stored by commit 85c4746 (before the folder-per-feature move), and the overrides they were composed with
STORED = Path(__file__).parent / "data"
TINY_MAPS = ["debug=tiny", "logger=none", "trainer.max_epochs=1", "trainer.precision=32-true", "num_threads=1",
             "data.sources.synth.length.train=64", "data.sources.synth.length.val=16",
             "data.sources.synth.length.test=16", "data.epoch_length=64", "experiment=deepskeleton_synth_maps",
             "method.net.width=16"]
OLD_CONFIGS = {"config_85c4746_deepskeleton_synth_maps_tiny.yaml": TINY_MAPS,
               "config_85c4746_luvizon_synth.yaml": ["experiment=luvizon_synth"]}
# Settings whose defaults changed since 85c4746 on purpose: debug=tiny now keeps last.ckpt only (reduced to
# weights) and no best.ckpt; SGD uses its fused kernel (b113a87). A migration keeps what the stored run did, so
# these stay as stored.
CHANGED_SINCE = {"config_85c4746_deepskeleton_synth_maps_tiny.yaml": {"keep_checkpoints",
                                                                      "callbacks.best_checkpoint.monitor",
                                                                      "method.optimizer.fused"}}


def _run_dir(*overrides: str) -> str:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    return f"{cfg.hydra.sweep.dir}/{cfg.hydra.sweep.subdir}"


def test_execution_settings_never_enter_the_run_key():
    base = _run_dir("method=h1", "seed=3")
    assert base.endswith("default/method=h1,seed=3")
    for extra in (["trainer=gpu"], ["trainer=ddp"], ["trainer.precision=bf16-mixed"], ["data.num_workers=7"],
                  ["logger=all"], ["callbacks=pose_images"], ["callbacks.step_checkpoint.every_n_train_steps=5"],
                  ["data=mpii", "data.root=/somewhere"], ["num_threads=1"], ["keep_checkpoints=weights"]):
        other = _run_dir("method=h1", "seed=3", *extra)
        expect = base.replace("method=h1", "data=mpii,method=h1") if "data=mpii" in extra else base
        assert other == expect, extra
    long = _run_dir(*[f"method.head.width={w}" for w in [64]], "data.sources.synth.clutter=0.123456789",
                    "data.sources.synth.truncation_rate=0.1111111", "data.sources.synth.occluder_rate=0.2222222",
                    "data.sources.synth.distractor_rate=0.3333333", "method.optimizer.lr=0.000123456")
    assert len(Path(long).name) <= 120 and "~" in Path(long).name  # long keys get a stable hash suffix


def test_debug_tiny_shrinks_budgets_only():
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["backbone=resnet50", "method=h2", "debug=tiny"])
    assert cfg.backbone.name == "resnet50" and cfg.method.name == "h2" and cfg.trainer.max_epochs == 2


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backbone", sorted(p.stem for p in (CONF_DIR / "backbone").glob("*.yaml") if p.stem != "timm"))
def test_every_backbone_trains_a_few_steps_under_debug_tiny(make_cfg, tmp_path, backbone):
    cfg = make_cfg(f"backbone={backbone}", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                   "test_after_fit=false", "method.head.width=16")
    metrics = train_task(cfg, run_path=tmp_path / "run", overrides=[], multirun=False)
    assert cfg.backbone.name == backbone and metrics["setup"]["backbone"] == backbone
    assert metrics["global_step"] == 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_weights_only_checkpoints_still_evaluate_and_clean_frees_disk(make_cfg, tmp_path, capsys):
    full = RunDir(tmp_path / "runs" / "full")
    train_task(make_cfg(*SMALL, BEST, "keep_checkpoints=full"), run_path=full.path, overrides=[], multirun=False)
    lean = RunDir(tmp_path / "runs" / "lean")
    train_task(make_cfg(*SMALL, BEST, "keep_checkpoints=weights"), run_path=lean.path, overrides=[], multirun=False)
    assert "optimizer_states" in load_checkpoint(full.last_ckpt)
    assert set(load_checkpoint(lean.last_ckpt)) >= {"state_dict"} and "optimizer_states" not in load_checkpoint(
        lean.last_ckpt)
    assert lean.last_ckpt.stat().st_size < 0.6 * full.last_ckpt.stat().st_size
    assert evaluate(lean.path)["metrics"]["val/pckh@0.5"] == pytest.approx(
        evaluate(full.path)["metrics"]["val/pckh@0.5"], abs=1e-6)
    before = full.last_ckpt.stat().st_size
    assert clean([str(tmp_path / "runs")]) == 0 and full.last_ckpt.stat().st_size == before  # dry run
    assert "would change" in capsys.readouterr().out
    assert clean([str(tmp_path / "runs"), "--apply", "--drop-last"]) == 0
    assert not full.last_ckpt.exists() and full.best_ckpt.exists() and not lean.last_ckpt.exists()
    assert "optimizer_states" not in load_checkpoint(full.best_ckpt)
    assert evaluate(full.path, ckpt="best")["metrics"]["val/pckh@0.5"] >= 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_finished_run_gets_its_tensorboard_logs_from_the_csv(make_cfg, tmp_path, capsys):
    from posereg.cli.report import main as report

    run = RunDir(tmp_path / "run")
    train_task(make_cfg(*SMALL), run_path=run.path, overrides=[], multirun=False)
    train_task(make_cfg(*SMALL, "logger=tensorboard"), run_path=run.path, overrides=[], multirun=False)
    assert "posereg-report --to-tensorboard" in capsys.readouterr().out
    assert report(["--to-tensorboard", str(run.path)]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.path / "tensorboard" / "from_csv"))
    events.Reload()
    assert "val/pckh@0.5" in events.Tags()["scalars"] and torch.isfinite(torch.tensor(
        events.Scalars("val/pckh@0.5")[-1].value))


@pytest.mark.parametrize("overrides,expected", [
    (["method=i1", "backbone=resnet50"], "resnet50"),
    (["method=r1"], "resnet18"),
    (["experiment=sspnet_synth"], None),  # SSP-Net, Luvizon'17 and the Hourglass are networks of their own
    (["experiment=luvizon_synth"], None),
    (["method=i1", "method/net=hourglass"], None),
    (["experiment=deepskeleton_synth_maps", "backbone=resnet50"], "resnet50"),  # takes the backbone's name only
])
def test_the_setup_names_the_backbone_only_when_the_network_uses_one(overrides, expected):
    from conftest import compose_config
    from posereg.console import network_backbone

    assert network_backbone(compose_config(overrides)) == expected


def test_git_commit_is_the_stated_one_else_the_checkouts(monkeypatch, tmp_path):
    import subprocess

    from posereg.runs import files

    sha = subprocess.run(["git", "-C", str(files.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    monkeypatch.delenv("POSEREG_GIT_COMMIT", raising=False)
    if sha:
        assert files.git_commit().split("+")[0] == sha
    monkeypatch.setenv("POSEREG_GIT_COMMIT", "c" * 40)  # a launcher's statement wins over a copied .git
    assert files.git_commit() == "c" * 40
    monkeypatch.delenv("POSEREG_GIT_COMMIT")
    monkeypatch.setattr(files, "REPO_ROOT", tmp_path)  # a copy without .git
    assert files.git_commit() is None


def test_is_held_tells_a_live_lock_from_a_leftover_file(tmp_path):
    from posereg.runs.lock import RunLock, is_held

    assert not is_held(tmp_path)  # no lock file
    lock = RunLock(tmp_path, job=None, since="now")
    lock.acquire()
    assert is_held(tmp_path)
    lock.release()
    (tmp_path / ".lock").write_text('{"host": "h", "pid": 1}')  # what a SIGKILLed owner leaves
    assert not is_held(tmp_path)


def _flat(cfg) -> dict:
    """Dotted keys -> values as stored (interpolations unresolved), without the machine's paths."""
    out: dict = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif not prefix.startswith("paths."):
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return out


@pytest.mark.parametrize("name", sorted(OLD_CONFIGS))
def test_a_config_stored_before_the_move_reads_as_todays(name):
    old = OmegaConf.load(STORED / name)
    today = compose_config(OLD_CONFIGS[name])
    migrated = migrate_config(old)
    changed = CHANGED_SINCE.get(name, set())
    assert {k: v for k, v in _flat(migrated).items() if k not in changed} == {
        k: v for k, v in _flat(today).items() if k not in changed}  # moved `_target_`s renamed, augment keys completed
    assert _flat(old) != _flat(today)
    if old.data.augment.enabled:  # the old block relied on Python defaults that no longer exist
        with pytest.raises(ConfigError, match=r"^data.augment.photometric_prob is missing"):
            AugmentConfig.from_cfg(old.data.augment)
        assert AugmentConfig.from_cfg(migrated.data.augment) == AugmentConfig.from_cfg(today.data.augment)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_run_stored_before_the_move_still_evaluates(tmp_path):
    run = RunDir(tmp_path / "run")
    train_task(compose_config([*TINY_MAPS, f"paths.runs_dir={tmp_path}"]), run_path=run.path, overrides=TINY_MAPS,
               multirun=False)
    today = evaluate(run.path, "test")["metrics"]
    stored = OmegaConf.load(STORED / "config_85c4746_deepskeleton_synth_maps_tiny.yaml")
    stored.paths.runs_dir, stored.paths.run_dir = str(tmp_path), str(run.path)
    run.config_file.write_text(OmegaConf.to_yaml(stored))  # the run as 85c4746 would have stored it
    assert "posereg.losses_skeleton.SkeletonMapBCE" in run.config_file.read_text()
    eval_main([f"run={run.path}", "split=test"])
    assert json.loads((run.path / "eval_test.json").read_text())["metrics"] == today
    assert today["test/skel_iou_fg"] >= 0 and today["test/loss"] > 0
