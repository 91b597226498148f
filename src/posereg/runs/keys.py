"""Run keys: the directory name of a run, from the overrides that define the experiment plus the seed.

Overrides that do not change what is trained never enter the key, so the same experiment finds the same
directory whatever it runs on: device and precision (`trainer=gpu`, `trainer.precision`), logging and
observing callbacks, checkpoint cadence, dataset root paths, loader workers, launchers and the run
bookkeeping flags. A key longer than MAX_KEY_LENGTH keeps its start and gets a stable hash suffix; the full
overrides are in the run's `.hydra/overrides.yaml`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAX_KEY_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9=,._+@:\-\[\]]")
# exact keys (and config groups) that do not define a run
_BOOKKEEPING = {"seed", "experiment", "experiment_name", "resume", "force", "retry_failed", "test_after_fit",
                "num_threads", "trust_checkpoints", "init_from_min_fraction", "requeue_signal", "keep_checkpoints",
                "trainer", "logger", "callbacks", "paths"}
# key prefixes that do not define a run: device/precision/logging settings, loaders, paths, launchers
_EXECUTION = ("logger.", "paths.", "hydra", "trainer.accelerator", "trainer.devices", "trainer.num_nodes",
              "trainer.strategy", "trainer.precision", "trainer.benchmark", "trainer.deterministic",
              "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.log_every_n_steps",
              "trainer.sync_batchnorm", "trainer.use_distributed_sampler", "data.num_workers", "data.pin_memory",
              "data.persistent_workers", "data.eval_batch_size", "callbacks.")
# exceptions to the prefixes above: callbacks that change training
_DEFINING_CALLBACKS = ("callbacks.early_stopping",)


def override_key(line: str) -> str:
    """The key (or config group) an override line sets: `+a.b=1` -> `a.b`, `trainer=gpu` -> `trainer`."""
    return line.split("=", 1)[0].lstrip("+~").strip()


def defines_run(key: str) -> bool:
    """True when an override of `key` changes what is trained (so it belongs in the run key)."""
    if key.startswith(_DEFINING_CALLBACKS):
        return True
    if key in _BOOKKEEPING or key.startswith(_EXECUTION):
        return False
    parts = key.split(".")
    is_root = parts[0] == "data" and (parts[-1] == "root" or parts[-1].endswith("_root"))
    return not is_root


def run_key(overrides: Iterable[str] | str | None, seed: int | str) -> str:
    """Directory name of a run: its defining overrides, sorted, plus `seed=<seed>`."""
    if isinstance(overrides, str):  # a Hydra override_dirname (older run directories)
        overrides = [p for p in overrides.split(",") if p]
    lines = sorted(str(o) for o in overrides or [] if defines_run(override_key(str(o))))
    key = ",".join([*lines, f"seed={seed}"])
    key = _UNSAFE.sub("_", key.replace("/", "_"))
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha1(key.encode()).hexdigest()[:10]
        key = f"{key[: MAX_KEY_LENGTH - 11]}~{digest}"
    return key


_FRESH_DIRS: dict[tuple[str, ...], str] = {}


def run_dir(runs_dir: str, experiment: str, overrides: Any, seed: int | str, resume: Any) -> str:
    """Run directory for the current command; with resume=false, the first unused '-vN' sibling."""
    base = Path(str(runs_dir)) / str(experiment) / run_key(list(overrides or []), seed)
    if str(resume).lower() not in ("false", "0", "no"):
        return str(base)
    memo = (str(runs_dir), str(experiment), str(base), str(seed))
    if memo not in _FRESH_DIRS:  # Hydra resolves the run dir more than once per process
        candidate, version = base, 1
        while candidate.exists() and any(candidate.iterdir()):
            version += 1
            candidate = base.with_name(f"{base.name}-v{version}")
        _FRESH_DIRS[memo] = str(candidate)
    return _FRESH_DIRS[memo]


def pick(flag: Any, if_true: Any, if_false: Any) -> Any:
    """``${pick:flag,a,b}``: a when flag is true (bool or 'true'/'1'/'yes'), else b (e.g. proxy metric names)."""
    return if_true if str(flag).strip().lower() in ("true", "1", "yes") else if_false


def amp_precision() -> str:
    """``${amp_precision:}``: the mixed precision `trainer=gpu` uses on this machine (posereg.devices decides)."""
    from posereg.devices import amp_precision as decide  # imports torch: only when a GPU preset is resolved

    return decide()


def register_resolvers() -> None:
    """Register the OmegaConf resolvers the Hydra config uses (run directories, ``pick``, ``amp_precision``)."""
    from omegaconf import OmegaConf

    for name, fn in (("pick", pick), ("run_key", run_key), ("run_dir", run_dir), ("amp_precision", amp_precision)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
