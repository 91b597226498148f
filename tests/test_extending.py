"""docs/extending.md stays true: its Python blocks become a module (each block importing what it uses), its YAML
blocks the files it names, every shell command of it runs with a few steps, and each example is checked."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf, open_dict

from conftest import TINY, compose_config
from posereg.cli.eval import main as eval_main
from posereg.cli.train import main as train_main
from posereg.data.datamodule import DataInfo
from posereg.errors import ConfigError
from posereg.methods import build_module
from posereg.recipes.train import train_task
from posereg.runs import RunDir, find_run_dirs
from posereg.runs.trust import TRUST_ENV

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


ROOT = Path(__file__).resolve().parents[1]
# paths the page names for the reader's own files; the test makes them and puts them there
PLACEHOLDERS = {"/data/my_folder": "my_folder", "/weights/resnet18.safetensors": "resnet18.safetensors"}


def shell_commands(text: str) -> list[str]:
    """Every command of the page's ```bash blocks (continuation lines joined, comments kept for the reader)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        commands += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return commands


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def yaml_files(text: str) -> dict[str, str]:
    """Each YAML block under the `my_conf/...yaml` path named last before it."""
    files = {}
    for match in re.finditer(r"```yaml\n(.*?)```", text, re.S):
        named = re.findall(r"`(my_conf/[\w/]+\.yaml)`", text[:match.start()])
        assert named, f"a YAML block without a my_conf/ path before it: {match.group(1)[:60]}"
        files[named[-1]] = match.group(1)
    return files


def _substituted(arg: str, folder: Path) -> str:
    """`key=<placeholder>` with the placeholder's file in the reader's folder; any other argument as it is."""
    key, sep, value = arg.partition("=")
    return f"{key}={folder / PLACEHOLDERS[value]}" if sep and value in PLACEHOLDERS else arg


def _folder_dataset(folder: Path, count: int = 16) -> None:
    """`count` images with LSP-14 labels in labels.json, as the page's FolderPoses reads them."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    labels = []
    for i in range(count):
        cv2.imwrite(str(folder / f"{i}.jpg"), rng.integers(0, 255, (120, 100, 3), dtype=np.uint8))
        joints = np.c_[rng.uniform(20, 80, (14, 2)), np.ones(14)]
        labels.append({"image": f"{i}.jpg", "joints": joints.tolist()})
    (folder / "labels.json").write_text(json.dumps(labels))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The reader's folder: my_posereg_ext.py (the Python blocks), my_conf/ (the YAML blocks), the placeholders'
    files; on sys.path as the page asks."""
    from safetensors.torch import save_file
    from timm import create_model

    text = DOC.read_text()
    folder = tmp_path_factory.mktemp("ext")
    (folder / "my_posereg_ext.py").write_text("\n\n".join(python_blocks(text)))
    for name, block in yaml_files(text).items():
        assert isinstance(yaml.safe_load(block), dict)  # every YAML block parses
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(block)
    _folder_dataset(folder / PLACEHOLDERS["/data/my_folder"])
    weights = {k: v.contiguous() for k, v in create_model("resnet18", pretrained=False).state_dict().items()}
    save_file(weights, folder / PLACEHOLDERS["/weights/resnet18.safetensors"])
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("my_posereg_ext", None)


@pytest.fixture(scope="module")
def ext(workspace):
    """The page's Python blocks as the importable module `my_posereg_ext`."""
    import my_posereg_ext

    return my_posereg_ext


def test_every_python_block_imports_what_it_uses(tmp_path):
    """Each block alone, as a reader copies it: no name it uses is left undefined (ruff's F821)."""
    ruff = Path(sys.executable).with_name("ruff")
    for k, block in enumerate(python_blocks(DOC.read_text())):
        (tmp_path / f"block_{k}.py").write_text(block)
    out = subprocess.run([str(ruff), "check", "--no-cache", "--isolated", "--select", "F821,F401", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("command", shell_commands(DOC.read_text()),
                         ids=lambda c: shlex.join(shlex.split(c, comments=True)[1:]))
def test_every_shell_command_of_the_page_runs(workspace, command, tmp_path, monkeypatch):
    """As written, in the reader's folder, with a few steps (debug=tiny) and the runs under tmp_path."""
    argv = [_substituted(arg, workspace) for arg in shlex.split(command, comments=True)]
    assert argv[0] == "posereg-train", command
    monkeypatch.chdir(workspace)
    train_main([*argv[1:], *TINY, f"paths.runs_dir={tmp_path}"])
    [run] = find_run_dirs(tmp_path)
    metrics = RunDir(run).read_metrics()
    assert RunDir(run).read_status()["status"] == "done" and metrics["global_step"] == 6
    expected = {"cut=all": "val/pckh@0.5@coarse", "MeanPixelError": "val/mpe", "data=folder": "val/pck_pc@0.2"}
    for needle, metric in expected.items():
        if needle in command:
            assert metric in metrics["final"], (command, sorted(metrics["final"]))


@pytest.mark.slow
def test_a_run_of_your_own_network_opens_once_you_trust_its_module(workspace, tmp_path, monkeypatch):
    """posereg-eval (like -predict, -export and a resume) builds a stored run's classes only when posereg ships
    them or the environment trusts them, as the page says."""
    trust = f"{TRUST_ENV}=my_posereg_ext"
    assert trust in DOC.read_text()
    monkeypatch.chdir(workspace)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    train_main(["--config-dir", "my_conf", "method=i1", "method/net=twostep", *TINY, f"paths.runs_dir={tmp_path}"])
    [run] = find_run_dirs(tmp_path)
    with pytest.raises(SystemExit) as refused:
        eval_main([f"run={run}"])
    assert refused.value.code == 2
    monkeypatch.setenv(*trust.split("="))
    eval_main([f"run={run}"])
    assert json.loads((run / "eval_val.json").read_text())["metrics"]["val/pckh@0.5"] >= 0


def _info(size: int = 32) -> DataInfo:
    return DataInfo("mpii16", size, True, False, 2000.0, ("synth",))


@pytest.mark.slow
def test_the_network_example_trains_and_exits_early(ext, make_cfg, tmp_path):
    cfg = make_cfg("method=i1", "data.input_size=32", "cut=all", "trainer.max_epochs=1")
    with open_dict(cfg):
        cfg.method.net = OmegaConf.create({"_target_": "my_posereg_ext.TwoStepNet", "decoder": "${method.decoder}",
                                           "width": 8})
    metrics = train_task(cfg, run_path=tmp_path / "run", overrides=[], multirun=False)
    assert {"val/pckh@0.5@coarse", "val/pckh@0.5@fine"} <= set(metrics["final"])
    net = build_module(cfg, _info()).net.eval()
    assert [o["name"] for o in net(torch.zeros(1, 3, 32, 32), cut=0)] == ["coarse"]


def test_the_loss_term_example_is_a_weighted_huber(ext):
    cfg = compose_config(["method=istar", "backbone.name=resnet10t", "method.head.width=8", "data.input_size=32"])
    with open_dict(cfg):
        cfg.method.loss.coord = OmegaConf.create({"_target_": "my_posereg_ext.CoordHuber", "delta": 0.05,
                                                  "weight": 1.0})
    module = build_module(cfg, _info())
    coords = torch.full((2, 16, 2), 0.5)
    out = [{"name": "out", "coords": coords}]
    batch = {"joints_2d": torch.full((2, 16, 2), 0.5 * 32 + 0.1 * 32), "weights": torch.ones(2, 16, 3)}
    value = module.compute_loss(out, batch, epoch=0)["coord"]
    # |d| = 0.1 > delta: huber = delta * (|d| - delta / 2) per axis; 16 joints x 2 axes, divided by the batch (2)
    assert value.item() == pytest.approx(16 * 2 * 0.05 * (0.1 - 0.025), rel=1e-5)


def test_the_dataset_example_crops_and_round_trips(ext, tmp_path):
    rng = np.random.default_rng(0)
    labels = []
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), rng.integers(0, 255, (120, 100, 3), dtype=np.uint8))
        joints = np.c_[rng.uniform(20, 80, (14, 2)), np.ones(14)]
        joints[0, 2] = 0
        labels.append({"image": f"{i}.jpg", "joints": joints.tolist()})
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    ds = ext.FolderPoses(root=str(tmp_path), split="val", joint_set="lsp14", input_size=64)
    sample = ds[1]
    A = sample["crop_to_image"].numpy()
    back = sample["joints_2d"].numpy() @ A[:, :2].T + A[:, 2]
    labelled = sample["weights"][:, 0].numpy() > 0
    expect = np.asarray(labels[1]["joints"])[:, :2] + 0.5
    assert labelled.sum() == 13 and np.allclose(back[labelled], expect[labelled], atol=1e-3)


def test_the_metric_example_is_the_mean_pixel_error(ext):
    metric = ext.MeanPixelError()
    gt = torch.rand(4, 16, 2) * 100
    batch = {"joints_2d": gt, "weights": torch.ones(4, 16, 3), "crop_to_image": torch.eye(2, 3).expand(4, 2, 3)}
    batch["weights"][0, :3] = 0
    pred = gt + torch.tensor([3.0, 4.0])
    pred[0, :3] = float("nan")  # masked joints may hold anything
    metric.update_from_batch({"joints_2d_image": pred}, batch)
    assert metric.compute()["mpe"].item() == pytest.approx(5.0)


class _Snapshots(pl.Callback):
    """The network's parameters when training starts and after every epoch."""

    def __init__(self) -> None:
        self.taken: list[dict[str, torch.Tensor]] = []

    def _take(self, module: pl.LightningModule) -> None:
        self.taken.append({k: v.detach().clone() for k, v in module.net.named_parameters()})

    def on_train_start(self, trainer, pl_module) -> None:
        self._take(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._take(pl_module)


@pytest.mark.slow
def test_the_module_example_holds_the_backbone_for_its_warmup_epochs(ext, make_cfg, tmp_path):
    cfg = make_cfg("method=i1", "backbone.name=resnet10t", "method.head.width=8", "data.input_size=32",
                   "test_after_fit=false")
    with open_dict(cfg):
        cfg.method.module = OmegaConf.create({"_target_": "my_posereg_ext.FrozenWarmup", "frozen": "backbone.",
                                              "epochs": 1})
    snapshots = _Snapshots()
    train_task(cfg, run_path=tmp_path / "run", overrides=[], multirun=False, extra_callbacks=[snapshots])
    start, epoch0, epoch1 = snapshots.taken  # debug=tiny: two epochs
    backbone = [k for k in start if k.startswith("backbone.")]
    head = [k for k in start if k.startswith("head.")]
    assert backbone and head
    assert all(torch.equal(start[k], epoch0[k]) for k in backbone)  # held during the warm-up epoch
    assert not all(torch.equal(start[k], epoch0[k]) for k in head)  # while the head trains
    assert not all(torch.equal(epoch0[k], epoch1[k]) for k in backbone)  # then the backbone trains too
    with open_dict(cfg):
        cfg.method.module.frozen = "trunk."
    with pytest.raises(ConfigError, match=r"^method.module.frozen='trunk.': no parameter"):
        build_module(cfg, _info())
