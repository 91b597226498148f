"""The model card's facts from a config, metrics.json and status.json alone (the trained card: test_python_docs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY, compose_config
from posereg.runs import RunMetrics
from posereg.runs.card import initialisation, metric_unit, model_card


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], "resnet18; started from random weights"),
    (["backbone.pretrained=true"], "resnet18; backbone started from timm's ImageNet weights of `resnet18` "
                                   "(backbone.pretrained=true)"),
    (["backbone.checkpoint=/w/r18.safetensors"], "resnet18; backbone started from the weight file `r18.safetensors` "
                                                 "(backbone.checkpoint)"),
    (["init_from=/runs/a/checkpoints/best.ckpt"], "resnet18; fine-tuned from the checkpoint `best.ckpt` (init_from)"),
    (["method=luvizon17_small"], "its own network (no backbone); started from random weights"),
])
def test_the_card_says_where_the_weights_started(overrides, expected):
    assert initialisation(compose_config([*TINY, *overrides])) == expected


@pytest.mark.parametrize(("name", "unit"), [("pckh@0.5", "% (0–100)"), ("auc", "% (0–100)"), ("pck3d", "% (0–100)"),
                                            ("mpjpe", "mm"), ("pa_mpjpe", "mm"), ("root_depth_error", "mm"),
                                            ("coco_ap", "0–1 (pycocotools)"), ("loss", "loss value")])
def test_metric_units_follow_the_architecture_page(name, unit):
    assert metric_unit(name) == unit


def test_a_card_of_a_3d_run_without_an_interface(tmp_path: Path):
    cfg = compose_config([*TINY, "data=synth3d", "flip_test=true"])
    metrics = RunMetrics(best={"val/mpjpe": 123.456, "val/pa_mpjpe": 98.7}, test={"test/mpjpe": 130.0},
                         monitor="val/mpjpe", setup={"steps": 6, "epochs": 2, "device_model": "a test CPU",
                                                     "precision": "32-true"},
                         complexity={"params": 12_345_678, "gmacs": 0.5})
    card = model_card(tmp_path / "run", cfg, metrics, {"git_commit": "abc123+dirty"})
    assert "| `mpjpe` | mm | 123.46 | 130.00 |" in card and "| `pa_mpjpe` | mm | 98.70 |  |" in card
    assert "flip test on, best by `val/mpjpe`" in card and "the last weights (the run kept no best.ckpt)" in card
    assert "joint set `h36m17` (17 joints), 3D" in card and "| parameters / compute | 12.35 M / 0.500 GMACs |" in card
    assert "commit `abc123+dirty` (**+dirty**: uncommitted changes)" in card and "a test CPU, 32-true" in card
    assert "print(result.joints_3d.shape)" in card and "Export it first: `posereg-export run=" in card
    assert model_card(tmp_path / "run", cfg, None, {}).count("No metrics.json yet") == 1
