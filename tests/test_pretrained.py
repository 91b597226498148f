"""Initial weights: timm's pretrained weights through the Hugging Face cache (offline: one line, no run
directory), the refused combinations, the weight-file command (posereg-weights) and the paper presets.

Nothing here touches the network: the Hugging Face cache is an empty (or test-filled) folder and the hub is
offline, so a missing file fails at once.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import timm
import torch
import torchvision
from huggingface_hub import constants
from safetensors.torch import load_file, save_file

from conftest import InterruptAt, compose_config
from posereg.cli.eval import evaluate
from posereg.cli.sweep import main as sweep_main
from posereg.cli.weights import main as weights_main
from posereg.data.datamodule import data_info
from posereg.errors import ConfigError
from posereg.methods import build_net
from posereg.methods.initial_weights import fetch_pretrained, pretrained_backbone, without_initial_weights
from posereg.nets import Backbone
from posereg.nets.pretrained import weights_source
from posereg.recipes.train import train_task
from posereg.report.template import list_templates, load_template
from posereg.runs import RunDir, run_key

R18_BACKBONE_TENSORS = 120  # resnet18 without its classifier (fc.weight, fc.bias): 122 - 2


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline: timm finds only what a test puts there."""
    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def put_in_cache(cache: Path, name: str, state: dict[str, torch.Tensor]) -> None:
    """Store `state` where huggingface_hub's cache layout keeps timm's weights of `name`: refs/main names a
    snapshot folder holding model.safetensors (what a download leaves, minus the blob deduplication)."""
    repo = weights_source(name)
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "snapshots" / commit / "model.safetensors")


def random_resnet18() -> dict[str, torch.Tensor]:
    """A timm resnet18 state dict of random weights (distinct from any fresh init: seeded apart)."""
    torch.manual_seed(123)
    return timm.create_model("resnet18").state_dict()


def one_line(text: str) -> str:
    """The text, asserted to be a single non-empty line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# --- timm's mechanism: the cache, offline ---------------------------------------------------------------

def test_a_cached_copy_starts_the_backbone_offline_with_exactly_its_tensors(hub_cache, capsys):
    state = random_resnet18()
    put_in_cache(hub_cache, "resnet18", state)
    backbone = Backbone("resnet18", pretrained=True)
    own = backbone.body.state_dict()
    assert len(own) == R18_BACKBONE_TENSORS
    assert all(torch.equal(own[k], state[k]) for k in own)
    assert "timm's pretrained weights (timm/resnet18.a1_in1k)" in capsys.readouterr().out


def test_no_cached_copy_offline_is_one_line_naming_the_local_file_route(hub_cache):
    with pytest.raises(ConfigError) as err:
        Backbone("resnet18", pretrained=True)
    message = one_line(str(err.value))
    assert message.startswith("backbone.pretrained=true: the pretrained weights of resnet18 (timm/resnet18.a1_in1k) "
                              f"are not in the Hugging Face cache {hub_cache}")
    assert "backbone.pretrained=false backbone.checkpoint=<file>" in message
    assert "`posereg-weights export resnet18 --out resnet18.safetensors`" in message


@pytest.mark.slow
def test_posereg_train_offline_exits_2_with_one_line_and_leaves_no_run_directory(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty_cache")}
    result = subprocess.run(
        [sys.executable, "-m", "posereg.train", "debug=tiny", "logger=none", f"paths.runs_dir={runs}",
         "backbone.pretrained=true"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line(result.stdout + result.stderr)
    assert line.startswith("error: backbone.pretrained=true: the pretrained weights of resnet18")
    assert "backbone.checkpoint=<file>" in line and "posereg-weights export resnet18" in line
    run = runs / "default" / run_key(["backbone.pretrained=true", "debug=tiny"], 0)
    assert not run.exists()
    assert [p for p in runs.rglob("*") if p.is_file()] == []  # not a status, config or log file anywhere


class BackboneAtStart(pl.Callback):
    """Records the backbone's weights when fitting starts (after a resume has loaded its checkpoint)."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.state = {k: v.detach().clone() for k, v in pl_module.net.backbone.body.state_dict().items()}


@pytest.mark.slow
def test_a_run_starts_from_the_cached_weights_and_resumes_and_evaluates_without_them(make_cfg, hub_cache, tmp_path,
                                                                                      monkeypatch):
    state = random_resnet18()
    put_in_cache(hub_cache, "resnet18", state)
    run = RunDir(tmp_path / "run")
    start = BackboneAtStart()
    with pytest.raises(SystemExit):
        train_task(make_cfg("backbone.pretrained=true", "test_after_fit=false"), run_path=run.path, overrides=[],
                   multirun=False, extra_callbacks=[start, InterruptAt(2)])
    assert len(start.state) == R18_BACKBONE_TENSORS
    assert all(torch.equal(start.state[k], state[k]) for k in start.state)
    # the cache is gone (another node, or cleaned): the run resumes and evaluates from its own checkpoints
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "emptied"))
    interrupted = torch.load(run.last_ckpt, weights_only=False)["state_dict"]
    resumed = BackboneAtStart()
    train_task(make_cfg("backbone.pretrained=true", "test_after_fit=false"), run_path=run.path, overrides=[],
               multirun=False, extra_callbacks=[resumed])
    assert run.read_status()["status"] == "done" and run.read_status()["resumed_from"].endswith("last.ckpt")
    assert all(torch.equal(v, interrupted[f"net.backbone.body.{k}"]) for k, v in resumed.state.items())
    assert not torch.equal(resumed.state["conv1.weight"], state["conv1.weight"])  # two steps trained: moved on
    out = evaluate(run.path, split="val")
    assert math.isfinite(out["metrics"]["val/pckh@0.5"])


# --- refused combinations: one line, exit 2, before anything is built -------------------------------------

@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["backbone.pretrained=true", "backbone.checkpoint=/weights/r18.pth"],
         "backbone.pretrained=true and backbone.checkpoint=/weights/r18.pth: choose one source of initial weights"),
        (["+backbone.timm_kwargs.pretrained=true"],
         "backbone.timm_kwargs.pretrained: the initial weights are set with backbone.pretrained=true"),
        (["+backbone.timm_kwargs.checkpoint_path=/weights/r18.pth"],
         "backbone.timm_kwargs.checkpoint_path: the initial weights are set with backbone.checkpoint=<file>"),
        (["method=sspnet_small", "data=synth3d", "backbone.pretrained=true"],
         "backbone.pretrained=true: method sspnet_small's network has no backbone"),
    ],
    ids=["pretrained-and-checkpoint", "timm-kwargs-pretrained", "timm-kwargs-checkpoint-path", "no-backbone"],
)
def test_contradicting_weight_settings_fail_in_one_line_without_a_run_directory(make_cfg, tmp_path, capsys,
                                                                                  hub_cache, overrides, expected):
    run = RunDir(tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        train_task(make_cfg(*overrides), run_path=run.path, overrides=[], multirun=False)
    assert exc.value.code == 2
    assert not run.path.exists()
    assert one_line(capsys.readouterr().out).startswith(f"error: {expected}")


def test_backbone_refuses_pretrained_with_a_checkpoint_or_through_timm_kwargs(tmp_path):
    with pytest.raises(ConfigError, match="choose one source"):
        Backbone("resnet18", pretrained=True, checkpoint=str(tmp_path / "r18.pth"))
    with pytest.raises(ConfigError, match=r"^backbone\.timm_kwargs\.pretrained: .* backbone\.pretrained=true"):
        Backbone("resnet18", timm_kwargs={"pretrained": True})


@pytest.mark.parametrize(("weights", "unavailable"), [("backbone.pretrained=true", "not in the Hugging Face cache"),
                                                      ("backbone.checkpoint=/gone/r18.pth", "does not exist")])
def test_a_network_whose_weights_come_from_a_checkpoint_is_built_without_its_initial_ones(hub_cache, weights,
                                                                                           unavailable):
    cfg = compose_config(["method=i1", weights])
    with pytest.raises(ConfigError, match=unavailable):
        build_net(cfg, data_info(cfg))
    net = build_net(without_initial_weights(cfg), data_info(cfg))  # what eval, predict, export and resume build
    assert sum(p.numel() for p in net.backbone.parameters()) == 11_689_512 - 513_000  # resnet18 less its classifier
    assert compose_config(["method=i1", weights]).backbone == cfg.backbone  # the run's own config is left as it was


# --- the --real paper presets ------------------------------------------------------------------------------

PAPER_INIT = {  # preset -> the backbone whose ImageNet weights it starts from (None: random init or a run's)
    "integral_mpii": "resnet50", "integral_h36m_s1": "resnet50", "integral_h36m_s2": "resnet50",
    "integral_h36m_hourglass": None,  # "HourGlass is trained from scratch"
    "deepskeleton_h36m_maps": "resnet50", "deepskeleton_h36m_regress": "resnet50",
    "deepskeleton_mpii_maps": "resnet50", "deepskeleton_mpii_regress": "resnet50",
    "luvizon_mpii": None, "luvizon_lsp": None, "sspnet_h36m": None, "sspnet_3dhp": None,
}


@pytest.mark.parametrize("preset", sorted(PAPER_INIT))
def test_paper_presets_start_from_imagenet_where_the_paper_did(preset):
    cfg = compose_config([f"experiment={preset}"])
    assert pretrained_backbone(cfg) == PAPER_INIT[preset]
    assert "Initial weights:" in "".join(load_preset_text(preset))


def load_preset_text(preset: str) -> list[str]:
    """The preset's YAML lines and those of the base files it includes."""
    from posereg.paths import CONF_DIR

    lines = (CONF_DIR / "experiment" / f"{preset}.yaml").read_text().splitlines()
    bases = [line.split("- ", 1)[1].split("@")[0] for line in lines if line.strip().startswith("- base/")]
    return lines + [t for b in bases for t in (CONF_DIR / "experiment" / f"{b}.yaml").read_text().splitlines()]


def test_every_templates_real_preset_is_in_the_table_above():
    reals = {load_template(name).real.get("experiment") for name in list_templates()}
    assert reals - {None} <= set(PAPER_INIT)


def test_real_sweep_offline_stops_in_one_line_before_any_cell(hub_cache, tmp_path, capsys):
    runs = tmp_path / "runs"
    rc = sweep_main(["integral_table3", "--real", "method=h1", "seed=0", f"paths.runs_dir={runs}"])
    assert rc == 2
    err = one_line(capsys.readouterr().err)
    # the three backbones of Table 3 are fetched in name order, each once: the first missing one stops the grid
    assert err.startswith("error: backbone.pretrained=true: the pretrained weights of resnet101 ")
    assert not runs.exists()


def test_a_sweep_fetches_only_for_cells_that_start_pretrained(tmp_path, monkeypatch):
    import posereg.methods.initial_weights as initial_weights
    from posereg.cli.sweep import fetch_pretrained_weights
    from posereg.grid.plan import plan_sweep

    asked = []
    monkeypatch.setattr(initial_weights, "fetch_pretrained", lambda *cfgs: asked.append(cfgs))
    common = ["method=h1,i1", "seed=0,1", f"paths.runs_dir={tmp_path}"]
    fetch_pretrained_weights(plan_sweep(load_template("integral_table3"), [*common, "backbone=resnet18"]))
    assert asked == []  # the CPU grid starts from random init: nothing to fetch
    fetch_pretrained_weights(plan_sweep(load_template("integral_table3"), [*common, "backbone=resnet18",
                                                                           "backbone.pretrained=true"]))
    [configs] = asked  # one composed config per cell but the seed
    assert len(configs) == 2 and all(cfg.backbone.pretrained for cfg in configs)


def test_real_sweep_cost_and_dry_run_need_no_weights(hub_cache, tmp_path, capsys):
    runs = tmp_path / "runs"
    common = ["integral_table3", "--real", "method=h1", "backbone=resnet50", "seed=0", f"paths.runs_dir={runs}"]
    assert sweep_main([*common, "--dry-run"]) == 0
    assert "backbone=resnet50" in capsys.readouterr().out
    assert sweep_main([*common, "--cost"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("integral_table3: 1 cells")
    assert lines[2].startswith("backbone=resnet50,method=h1,seed=0") and " pending " in lines[2]


def test_fetch_pretrained_fetches_each_model_once_from_the_cache(hub_cache):
    put_in_cache(hub_cache, "resnet18", random_resnet18())
    cfgs = [compose_config(["backbone.pretrained=true", f"seed={s}"]) for s in (0, 1)]
    cfgs.append(compose_config(["method=sspnet_small", "data=synth3d"]))  # no backbone, no weights
    assert fetch_pretrained(*cfgs) == ["resnet18"]


# --- posereg-weights: the local file ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet101"])
def test_torchvision_resnets_have_timms_tensor_names_and_shapes(name):
    with torch.device("meta"):  # names and shapes only: no memory, no init
        tv = getattr(torchvision.models, name)().state_dict()
        tm = timm.create_model(name).state_dict()
    assert list(tv) == list(tm)
    assert all(tv[k].shape == tm[k].shape for k in tv)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_convert_a_torchvision_checkpoint_then_load_it_as_backbone_checkpoint(tmp_path, capsys, suffix):
    torch.manual_seed(7)
    tv = torchvision.models.resnet18().state_dict()
    source = tmp_path / "resnet18_torchvision.pth"
    # a training script's checkpoint: the weights under `state_dict` with a `module.` prefix, plus a stray tensor
    torch.save({"state_dict": {**{f"module.{k}": v for k, v in tv.items()}, "module.aux.weight": torch.ones(3)},
                "epoch": 90}, source)
    out = tmp_path / f"r18{suffix}"
    assert weights_main(["convert", str(source), "--model", "resnet18", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == (f"wrote {out}: 122 of the file's 123 tensors match timm's resnet18 by name and shape "
                          "(1 dropped); posereg's backbone resnet18 loads 120 of its 120 tensors from it")
    assert printed[1] == f"use it with: backbone.pretrained=false backbone.checkpoint={out.resolve()}"
    written = load_file(out) if suffix == ".safetensors" else torch.load(out, weights_only=True)
    assert sorted(written) == sorted(tv) and all(torch.equal(written[k], tv[k]) for k in tv)
    backbone = Backbone("resnet18", checkpoint=str(out))
    assert f"backbone resnet18: loaded 120 of 120 tensors from {out} (2 of its tensors skipped)" in \
        capsys.readouterr().out
    own = backbone.body.state_dict()
    assert all(torch.equal(own[k], tv[k]) for k in own)


def test_convert_a_timm_state_dict(tmp_path, capsys):
    state = random_resnet18()
    source = tmp_path / "timm_resnet18.pth"
    torch.save(state, source)
    out = tmp_path / "r18.safetensors"
    assert weights_main(["convert", str(source), "--model", "resnet18", "--out", str(out)]) == 0
    assert "122 of the file's 122 tensors match timm's resnet18 by name and shape (0 dropped); posereg's backbone " \
           "resnet18 loads 120 of its 120 tensors" in capsys.readouterr().out
    written = load_file(out)
    assert all(torch.equal(written[k], state[k]) for k in state)


def test_export_from_the_cache_offline_round_trips_through_backbone_checkpoint(hub_cache, tmp_path, capsys):
    state = random_resnet18()
    put_in_cache(hub_cache, "resnet18", state)
    out = tmp_path / "exported" / "resnet18.safetensors"
    assert weights_main(["export", "resnet18", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"wrote {out}: 122 tensors of timm's resnet18 (timm/resnet18.a1_in1k); posereg's backbone resnet18 loads "
        "120 of its 120 tensors from it (2 unused: outside the features, e.g. the classifier)")
    written = load_file(out)
    assert sorted(written) == sorted(state) and all(torch.equal(written[k], state[k]) for k in state)
    Backbone("resnet18", checkpoint=str(out))
    assert "loaded 120 of 120 tensors" in capsys.readouterr().out


def test_export_offline_without_a_cached_copy_is_one_line_and_writes_nothing(hub_cache, tmp_path, capsys):
    out = tmp_path / "resnet50.safetensors"
    with pytest.raises(SystemExit) as exc:
        weights_main(["export", "resnet50", "--out", str(out)])
    assert exc.value.code == 2
    line = one_line(capsys.readouterr().out)
    assert line.startswith("error: posereg-weights export resnet50: the pretrained weights of resnet50 "
                           "(timm/resnet50.a1_in1k) are not in the Hugging Face cache")
    assert line.endswith("run `posereg-weights export` on a machine with a network and copy the file")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["convert", "{r18}", "--model", "resnet50", "--out", "{tmp}/x.safetensors"],
         "posereg-weights convert {r18} --model resnet50: only "),
        (["convert", "{r18}", "--model", "resnet5", "--out", "{tmp}/x.safetensors"],
         "--model='resnet5' is not a timm model"),
        (["export", "resnet18", "--out", "{tmp}/x.bin"], "{tmp}/x.bin: name the weight file to write"),
    ],
    ids=["another-network", "not-a-timm-model", "unknown-suffix"],
)
def test_weight_command_errors_are_one_line(tmp_path, capsys, args, expected):
    r18 = tmp_path / "r18.pth"
    torch.save(random_resnet18(), r18)
    fill = {"r18": r18, "tmp": tmp_path}
    with pytest.raises(SystemExit) as exc:
        weights_main([a.format(**fill) for a in args])
    assert exc.value.code == 2
    assert one_line(capsys.readouterr().out).startswith(f"error: {expected.format(**fill)}")
    assert not (tmp_path / "x.safetensors").exists()
