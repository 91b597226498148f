"""A run directory is untrusted input: a stored config builds only what posereg's configs build, security
settings come from the command line, YAML is read safely, posereg's own checkpoints load without trust."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from conftest import compose_config
from posereg.errors import ConfigError
from posereg.grid.plan import plan_sweep
from posereg.paths import CONF_DIR
from posereg.report.template import list_templates, load_template
from posereg.runs import RunDir
from posereg.runs.migrate import RUN_VERSION, VERSION_KEY
from posereg.runs.open import open_run
from posereg.runs.trust import TRUST_ENV, TRUSTED_TARGETS, check_targets, load_stored_config
from posereg.weights import load_checkpoint


def _targets(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["_target_"]} if isinstance(node.get("_target_"), str) else set()
        return found.union(*(_targets(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_targets(v) for v in node))
    return set()


def _shipped_compositions() -> list[list[str]]:
    """Every preset, every option of every config group, every value of every template's axes (cpu and --real)."""
    groups = {}
    for option in sorted(CONF_DIR.rglob("*.yaml")):
        rel = option.relative_to(CONF_DIR)
        if len(rel.parts) < 2 or rel.parts[0] in ("hydra",) or "base" in rel.parts[:-1]:
            continue
        group = "/".join(rel.parts[:-1])
        groups.setdefault(group, []).append(option.stem)
    combos = []
    for group, options in groups.items():
        if group.startswith("method/") or group.startswith("data/"):
            continue  # nested groups (loss terms, optimizers, sources, augment) are composed by their parents
        for option in options:
            extra = ["data=synth3d"] if group == "method" and "h36m" in option else []
            combos.append([f"{group}={option}", *extra])
    for name in list_templates():
        for real in (False, True):
            try:
                template = load_template(name, real=real)
            except ConfigError:  # a template without a `real:` section
                continue
            if template.kind == "bench":
                continue
            plan = plan_sweep(template, ["paths.runs_dir=/tmp/posereg-trust-test"])
            preset = (template.real if real else template.cpu)["experiment"]
            keys = OmegaConf.to_container(compose_config([f"experiment={preset}"]), resolve=False)
            first = plan.cells()[0]  # every value of every axis once (the other axes at their first value)
            cells = [{**first, axis: value} for axis, values in plan.grid.items() for value in values
                     if axis != "seed"]
            for cell in cells:
                # a hypotheses template's axes (source=gt) are not config keys: only those that are compose
                combos.append([o for o in plan.cell_overrides(cell) if _is_setting(keys, o.split("=", 1)[0])])
    return combos


def _is_setting(keys: dict, key: str) -> bool:
    """Whether `key` (an override's key) names a config group or a setting of the composed config `keys`."""
    key = key.lstrip("+~")
    if (CONF_DIR / key).is_dir():
        return True
    node = keys
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_target_the_shipped_configs_compose_to_is_allowed():
    from hydra import compose, initialize_config_dir

    seen: set[str] = set()
    combos = {tuple(sorted(c)) for c in _shipped_compositions()}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in sorted(combos):
            seen |= _targets(OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)),
                                                    resolve=False))
    assert seen <= TRUSTED_TARGETS, sorted(seen - TRUSTED_TARGETS)
    assert len(seen) >= 40  # networks, losses, metrics, datasets, callbacks, optimizers, the Trainer
    # the allow-list names nothing the configs never build (each entry is a shipped component)
    option_targets = set()
    for option in CONF_DIR.rglob("*.yaml"):
        option_targets |= _targets(yaml.safe_load(option.read_text()))
    assert option_targets | seen >= TRUSTED_TARGETS, sorted(TRUSTED_TARGETS - option_targets - seen)


# ------------------------------------------------------------------------------------------- attacks
def _stored_run(tmp_path: Path, **edits) -> RunDir:
    """A run directory whose stored config is today's default config with dotted `edits` applied."""
    run = RunDir(tmp_path / "run")
    cfg = compose_config(["debug=tiny", "logger=none"])
    run.save_config(["debug=tiny"], cfg)
    text = OmegaConf.load(run.config_file)
    for key, value in edits.items():
        OmegaConf.update(text, key, value, force_add=True, merge=False)
    run.config_file.write_text(OmegaConf.to_yaml(text))
    return run


@pytest.mark.parametrize("key,node,named", [
    ("method.optimizer", {"_target_": "torch.load", "f": "x", "weights_only": False},
     "method.optimizer._target_=torch.load"),
    ("method.net", {"_target_": "posereg.weights.load_checkpoint", "path": "x", "trust": True},
     "method.net._target_=posereg.weights.load_checkpoint"),
    ("data.metrics.evil", {"_target_": "builtins.eval", "_args_": ["print(1)"]},
     "data.metrics.evil._target_=builtins.eval"),
    ("method.scheduler._args_", [{"_target_": "os.system", "_args_": ["touch x"]}],
     "method.scheduler._args_.0._target_=os.system"),
    ("callbacks.speed._recursive_", False, "callbacks.speed._recursive_=False"),
    ("method.optimizer.lr", "${oc.decode:'{_target_: os.system}'}", "calls the resolver oc.decode"),
    ("method.optimizer._target_", "${oc.env:EVIL}", "method.optimizer._target_=${oc.env:EVIL}"),
])
def test_a_planted_target_is_refused_in_one_line_naming_the_key(tmp_path, key, node, named):
    run = _stored_run(tmp_path, **{key: node})
    with pytest.raises(ConfigError) as err:
        open_run(run.path)
    message = str(err.value)
    assert message.startswith(f"{run.config_file}: ") and named in message and "refusing to open" in message
    assert "\n" not in message


@pytest.mark.parametrize("text,why", [
    ("method: !!python/object/apply:os.system ['touch x']\n", "YAML tag tag:yaml.org,2002:python/object/apply"),
    ("a: &x [1, 2]\nb: *x\n", "YAML aliases"),
    ("- just\n- a list\n", "holds a list"),
    ("a: [unclosed\n", "cannot be read"),
    ("a: 1\na: 2\n", "cannot be read"),
])
def test_yaml_is_read_safely(tmp_path, text, why):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=why):
        load_stored_config(path)
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UnicodeDecodeError"):
        load_stored_config(path)


def test_security_settings_come_from_the_command_line_only(tmp_path):
    run = _stored_run(tmp_path, **{"trust_checkpoints": True, "data.metrics.pckh.weights_only": False,
                                   "method.loss.coord.trust": True})
    raw = OmegaConf.to_container(RunDir(run.path).config(), resolve=False)
    assert raw["trust_checkpoints"] is False
    assert "weights_only" not in raw["data"]["metrics"]["pckh"] and "trust" not in raw["method"]["loss"]["coord"]
    (run.path / "checkpoints").mkdir()
    torch.save({"state_dict": {}}, run.best_ckpt)
    assert open_run(run.path).trust is False
    assert open_run(run.path, overrides=["trust_checkpoints=true"]).trust is True
    # DeepSkeleton's stage 2 follows the root setting by reference: kept, so the command line decides
    stage2 = compose_config(["experiment=deepskeleton_synth_regress", "debug=tiny"])
    assert OmegaConf.to_container(stage2, resolve=False)["method"]["module"]["trust_checkpoints"] == \
        "${trust_checkpoints}"
    run2 = RunDir(tmp_path / "stage2")
    run2.save_config([], stage2)
    assert RunDir(run2.path).config().method.module.trust_checkpoints is False


def test_a_stored_config_carries_its_layout_version(tmp_path):
    run = _stored_run(tmp_path)
    assert yaml.safe_load(run.config_file.read_text())[VERSION_KEY] == RUN_VERSION
    assert VERSION_KEY not in run.config()  # read back in today's layout, without the stamp
    text = run.config_file.read_text().replace(f"{VERSION_KEY}: {RUN_VERSION}", f"{VERSION_KEY}: 99")
    run.config_file.write_text(text)
    with pytest.raises(ConfigError, match="newer posereg"):
        run.config()


def test_the_users_own_classes_are_trusted_from_the_environment_only(tmp_path, monkeypatch):
    """$POSEREG_TRUSTED_TARGETS names a class or a module above it (whole dotted parts); a stored run cannot set it."""
    run = _stored_run(tmp_path, **{"method.optimizer._target_": "my_ext.optim.Fancy", TRUST_ENV: "my_ext"})
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"not a class posereg builds.*trust it with {TRUST_ENV}="):
        run.config()
    for trusted in ("my_ext.optim.Fancy", "my_ext.optim", "my_ext", " other.Thing , my_ext "):
        monkeypatch.setenv(TRUST_ENV, trusted)
        assert run.config().method.optimizer._target_ == "my_ext.optim.Fancy", trusted
    for untrusted in ("my_ex", "my_ext.opt", "my_ext.optim.Fancy.x", "Fancy", " , "):
        monkeypatch.setenv(TRUST_ENV, untrusted)
        with pytest.raises(ConfigError, match="my_ext.optim.Fancy is not a class posereg builds"):
            run.config()


def test_check_targets_walks_lists_and_nested_nodes():
    check_targets({"a": [{"b": {"_target_": "torch.optim.Adam", "_partial_": True}}]}, "here")
    with pytest.raises(ConfigError, match=r"^here: a\.0\.b\._partial_=yes must be true or false"):
        check_targets({"a": [{"b": {"_target_": "torch.optim.Adam", "_partial_": "yes"}}]}, "here")


def test_numpy_in_a_lightning_checkpoint_loads_without_trust(tmp_path):
    state = {"rng": np.random.get_state(), "score": np.float64(0.25), "count": np.int64(3),
             "arr": np.arange(4, dtype=np.float32)}
    torch.save(state, tmp_path / "a.ckpt")
    loaded = load_checkpoint(tmp_path / "a.ckpt")
    assert loaded["rng"][0] == "MT19937" and np.array_equal(loaded["rng"][1], state["rng"][1])
    assert loaded["score"] == 0.25 and loaded["count"] == 3 and loaded["arr"].tolist() == [0, 1, 2, 3]
    torch.save({"o": np.array([1, "x"], dtype=object)}, tmp_path / "b.ckpt")
    with pytest.raises(ConfigError, match="ObjectDType"):
        load_checkpoint(tmp_path / "b.ckpt")


def test_a_planted_trust_setting_and_checkpoint_never_run_code(tmp_path):
    """Issue 25, attack 1: `trust_checkpoints: true` in the stored config plus a crafted best.ckpt."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (shutil.copy, (__file__, str(marker)))

    run = _stored_run(tmp_path, trust_checkpoints=True)
    (run.path / "checkpoints").mkdir()
    torch.save({"state_dict": {}, "evil": Payload()}, run.best_ckpt)
    from posereg.cli.eval import evaluate

    with pytest.raises(ConfigError, match="trust_checkpoints=true"):
        evaluate(run.path)
    assert not marker.exists()
    assert json.loads(json.dumps(OmegaConf.to_container(run.config())))["trust_checkpoints"] is False
