"""Every mistyped group option or key is one line with the closest valid names and exit 2, before torch loads:
posereg-train, -sweep, -eval, -predict and -export; `--help` answers without torch too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import TINY, compose_config
from posereg.errors import ConfigError
from posereg.overrides import check_key, check_overrides, closest, hint

ROOT = Path(__file__).resolve().parents[1]
TYPOS = {  # override -> the line it must give (the closest names, difflib's order)
    "method=i11": "method=i11: method has no option i11; did you mean i1?",
    "backbone=resnet5": "backbone=resnet5: backbone has no option resnet5; did you mean resnet50, resnet18 or "
                        "resnet101?",
    "trainer.max_epoch=3": "trainer.max_epoch=3: trainer has no key max_epoch; did you mean max_epochs or "
                           "max_steps?",
    "data=synth2": "data=synth2: data has no option synth2; did you mean synth2d or synth3d?",
    "experiment=quickstrat": "experiment=quickstrat: experiment has no option quickstrat; did you mean quickstart "
                             "or quickstart3d?",
    "method.head.widht=1": "method.head.widht=1: method.head has no key widht; did you mean width?",
}


def _command(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run an entry point's main(argv) in a fresh interpreter that reports at exit whether torch was imported."""
    code = ("import atexit, sys; atexit.register(lambda: print('torch loaded:', 'torch' in sys.modules)); "
            f"from posereg.cli.{module} import main; sys.exit(main({argv!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines[-1] == "torch loaded: False", result.stdout + result.stderr
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1 and len(lines) == 2, lines  # the error line, then the atexit report
    return errors[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory) -> Path:
    """A run directory as posereg-eval, -predict and -export open it: its stored config and a checkpoint file."""
    run = tmp_path_factory.mktemp("typos") / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(compose_config([*TINY]), run / ".hydra" / "config.yaml")
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")  # opening checks it exists; nothing reads it first
    return run


@pytest.mark.parametrize("typo", list(TYPOS))
def test_posereg_train_answers_a_typo_in_one_line_without_torch(typo):
    result = _command("train", [typo])
    assert result.returncode == 2
    assert _one_error_line(result) == TYPOS[typo]


@pytest.mark.parametrize("typo", ["method=i11", "trainer.max_epoch=3", "method=h1,i11", "data=synth2"])
def test_posereg_sweep_answers_a_typo_in_one_line_without_torch(typo):
    result = _command("sweep", ["integral_table1", typo])
    assert result.returncode == 2
    assert TYPOS.get(typo, "method=h1,i11: method has no option i11; did you mean i1?") in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "torch loaded: False"


@pytest.mark.parametrize("typo", list(TYPOS))
@pytest.mark.parametrize("command", ["eval", "predict", "export"])
def test_the_run_commands_answer_a_typo_in_one_line_without_torch(stored_run, command, typo):
    argv = [f"run={stored_run}", typo] + ([f"input={ROOT / 'README.md'}"] if command == "predict" else [])
    result = _command(command, argv)
    assert result.returncode == 2
    line = _one_error_line(result)
    if typo.startswith("experiment="):  # a preset has no place in a finished run's config: still the closest names
        assert line.startswith(TYPOS[typo])
    else:
        assert line == TYPOS[typo]


def test_a_valid_preset_on_a_finished_run_says_why_it_cannot_apply(stored_run):
    line = _one_error_line(_command("eval", [f"run={stored_run}", "experiment=quickstart"]))
    assert line == ("experiment=quickstart: experiment chooses settings when a run is trained; give the settings "
                    "to change here as key=value")


def test_help_answers_without_torch():
    result = _command("train", ["--help"])
    assert result.returncode == 0, result.stderr
    assert "method: deeppose_cascade, deepskeleton_maps, deepskeleton_regress, h1, h2, h3, i1" in result.stdout
    assert "max_epochs:" in result.stdout and result.stdout.strip().endswith("torch loaded: False")
    for module in ("eval", "predict", "export", "sweep"):
        out = _command(module, ["--help"])
        assert out.returncode == 0 and out.stdout.strip().endswith("torch loaded: False"), module


def test_closest_names_and_the_lists_when_none_is_close():
    assert closest("max_epoch", ["max_epochs", "max_steps", "precision"]) == ["max_epochs", "max_steps"]
    assert hint("zzz", ["b", "a"]) == "options: a, b"
    assert hint("zzz", [str(i) for i in range(20)]).endswith(", ...")
    with pytest.raises(ConfigError, match=r"^trainer.foo=1: trainer has no key foo; its keys: .* \(a new key is "
                                          r"added with \+trainer.foo=...\)$"):
        check_overrides(["trainer.foo=1"])


def test_valid_overrides_pass_and_swept_groups_are_checked_per_value():
    check_overrides(["method=r1,i1", "method.head.width=3", "seed=0,1", "+foo=1", "~method.loss.heatmap",
                     "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "method/loss@method.loss.coord=elastic"])
    with pytest.raises(ConfigError, match=r"^hydra.launcher.n_job=2: hydra.launcher has no key n_job; did you mean "
                                          r"n_jobs\?$"):
        check_overrides(["hydra/launcher=joblib", "hydra.launcher.n_job=2"])
    with pytest.raises(ConfigError, match=r"^method/los@method.loss.coord=l1: no config group method/los; did you "
                                          r"mean method/loss"):
        check_overrides(["method/los@method.loss.coord=l1"])


def test_a_key_under_a_null_node_or_a_value_says_what_it_is():
    cfg = OmegaConf.create({"a": {"b": 1, "c": None}})
    with pytest.raises(ConfigError, match=r"^a.b.x=1: a.b is a value \(1\), not a group of settings$"):
        check_key("a.b.x=1", cfg, "a.b.x")
    with pytest.raises(ConfigError, match=r"^a.c.x=1: a.c is a value \(None\)"):
        check_key("a.c.x=1", cfg, "a.c.x")
