"""A stored run config is untrusted input: read safely, brought up to date, stripped of security settings, and
allowed to build only what posereg's own configs build.

A run directory travels (a colleague's folder, an archive beside a paper), and its `.hydra/config.yaml` names
the callables posereg instantiates to rebuild the run. `load_stored_config` is the one door every tool that
opens a run goes through (`RunDir.config`: posereg-eval, -predict, -export, -hypotheses, DeepSkeleton's stage-1
run, a resumed run): before anything is instantiated it

* reads the YAML safely: no tags (`!!python/...`), no aliases, no more than MAX_CONFIG_BYTES;
* migrates it to today's layout (`posereg.runs.migrate`);
* drops every security setting (SECURITY_KEYS, anywhere): they come from the command line only, so a stored
  `trust_checkpoints: true` has no effect;
* checks every `_target_` against TRUSTED_TARGETS (what the shipped conf/ tree composes to; a test composes
  every preset and template cell against it) and the user's own components named in $POSEREG_TRUSTED_TARGETS
  (the environment, never the run: docs/extending.md), refuses Hydra's other keywords where they could reach another
  callable, and interpolations through resolvers other than TRUSTED_RESOLVERS (`oc.decode` / `oc.create`
  would build a node at resolution time).

A refusal is one ConfigError naming the file and the key (exit 2 at the entry points).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from posereg.errors import ConfigError
from posereg.runs.migrate import migrate_raw

MAX_CONFIG_BYTES = 1 << 20  # posereg's stored configs are a few KB
SECURITY_KEYS = ("trust_checkpoints", "trust", "weights_only")
ROOT_TRUST = "trust_checkpoints"
TRUST_REFERENCE = "${trust_checkpoints}"  # a node that follows the command line's setting (kept)

# Every `_target_` a stored config may name: what the shipped configs build (tests/test_trust.py composes every
# preset, option and template cell and checks this list is complete). A new component adds its name here.
TRUSTED_TARGETS = frozenset({
    # networks, heads, decoders
    "posereg.nets.Backbone", "posereg.nets.HeatmapNet", "posereg.nets.RegressionNet", "posereg.nets.MultiStageNet",
    "posereg.nets.deconv_head", "posereg.nets.hourglass.StackedHourglass", "posereg.nets.luvizon.LuvizonNet",
    "posereg.nets.sspnet.SSPNet", "posereg.nets.skeleton_fcn.SkeletonFCN",
    "posereg.nets.skeleton_regressor.SkeletonRegressor", "posereg.nets.cpn.CascadedPyramidNet",
    "posereg.nets.deeppose.DeepPoseCascade", "posereg.codecs.MapDecoder",
    # modules and loss terms
    "posereg.methods.PoseModule", "posereg.methods.deepskeleton.SkeletonMapModule",
    "posereg.methods.deepskeleton.SkeletonRegressionModule", "posereg.methods.deeppose.DeepPoseCascadeModule",
    "posereg.losses.CoordLoss", "posereg.losses.CropL2",
    "posereg.losses.ConfidenceBCE", "posereg.losses.GaussianHeatmapMSE", "posereg.losses.OneHotHeatmapCE",
    "posereg.losses.DiskHeatmapBCE", "posereg.losses.SkeletonMapBCE",
    # datasets and metrics
    "posereg.data.synth.SynthPose", "posereg.data.mpii.MPIIDataset", "posereg.data.coco.COCODataset",
    "posereg.data.h36m.H36MDataset", "posereg.data.mpi_inf_3dhp.MPIINF3DHPDataset", "posereg.data.lsp.LSPDataset",
    "posereg.metrics.PCKh", "posereg.metrics.pckh.mpii_pckh", "posereg.metrics.PCK3D", "posereg.metrics.MPJPE",
    "posereg.metrics.CocoKeypointAP", "posereg.metrics.lsp.lsp_pck", "posereg.metrics.skeleton.SkeletonMapMetric",
    # training: callbacks, loggers, speed options
    "posereg.training.callbacks.best_checkpoint", "posereg.training.callbacks.last_checkpoint",
    "posereg.training.callbacks.early_stopping", "posereg.training.speed.SpeedOptions",
    "posereg.training.loggers.wandb_logger", "posereg.viz.callbacks.PartMapsCallback",
    "posereg.viz.pose_callback.PoseImagesCallback",
    # torch and Lightning
    "torch.optim.Adam", "torch.optim.SGD", "torch.optim.RMSprop", "torch.optim.lr_scheduler.MultiStepLR",
    "torch.optim.lr_scheduler.ReduceLROnPlateau", "lightning.pytorch.Trainer",
    "lightning.pytorch.callbacks.LearningRateMonitor", "lightning.pytorch.callbacks.RichProgressBar",
    "lightning.pytorch.loggers.TensorBoardLogger",
})
# resolvers an interpolation of a stored config may call: OmegaConf's readers and posereg's own (runs/keys.py)
# The user's own components (docs/extending.md) are trusted from the environment only, never from a stored run:
# comma-separated names, each trusting that `_target_` and everything in the module it names.
TRUST_ENV = "POSEREG_TRUSTED_TARGETS"

TRUSTED_RESOLVERS = frozenset({"oc.select", "oc.env", "oc.dict.keys", "oc.dict.values", "pick", "run_key",
                               "run_dir", "amp_precision"})
CONVERT_MODES = ("none", "partial", "object", "all")
_RESOLVER = re.compile(r"\$\{\s*([^\s:}]+)\s*:")


def load_stored_config(path: Path, where: str | None = None) -> DictConfig:
    """The stored config at `path`, read safely, migrated, without security settings and checked (see the
    module docstring); ConfigError naming `where` (default: the path) and the key otherwise."""
    where = where or str(path)
    raw = migrate_raw(read_yaml(path, where), where)
    strip_security(raw)
    check_targets(raw, where)
    raw[ROOT_TRUST] = False  # the command line may set it (`trust_checkpoints=true`), never the file
    return OmegaConf.create(raw)


def read_yaml(path: Path, where: str, expect: type = dict) -> Any:
    """The YAML document at `path` as plain containers (safe loading, no tags, no aliases, bounded size);
    ConfigError naming `where` when it is not one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{where}: {size / 2**20:.1f} MB is not a config posereg wrote (at most "
                              f"{MAX_CONFIG_BYTES // 2**20} MB); refusing to open this run")
        text = path.read_bytes().decode("utf-8")
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ConfigError(f"{where}: YAML aliases (*{event.anchor}) are not in configs posereg writes; "
                                  "refusing to open this run")
            tag = getattr(event, "tag", None)  # set only where the document spells a tag out
            if tag is not None:
                raise ConfigError(f"{where}: YAML tag {tag} is not in configs posereg writes; refusing to open "
                                  "this run")
        data = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{where}: cannot be read as a posereg config ({type(err).__name__}: {first[:200]}); "
                          "refusing to open this run") from None
    except Exception as err:  # noqa: BLE001 - OmegaConf's own errors on odd documents (keys, nodes)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{where}: cannot be read as a posereg config ({type(err).__name__}: {first[:200]}); "
                          "refusing to open this run") from None
    if not isinstance(data, expect):
        raise ConfigError(f"{where}: holds a {type(data).__name__}, not the {expect.__name__} posereg writes; "
                          "refusing to open this run")
    return data


def strip_security(node: Any) -> None:
    """Remove every security setting (SECURITY_KEYS) from a stored config in place, anywhere in it; a node that
    refers to the root setting (`${trust_checkpoints}`) is kept, so it follows the command line."""
    for mapping in _mappings(node):
        for key in [k for k in mapping if k in SECURITY_KEYS and mapping[k] != TRUST_REFERENCE]:
            del mapping[key]


def user_trusted_targets() -> tuple[str, ...]:
    """The names in $POSEREG_TRUSTED_TARGETS (comma-separated; empty when unset)."""
    return tuple(name.strip() for name in os.environ.get(TRUST_ENV, "").split(",") if name.strip())


def is_trusted_target(target: str) -> bool:
    """True for a class posereg's configs build, or one the user trusts ($POSEREG_TRUSTED_TARGETS: the name itself
    or a module above it)."""
    return target in TRUSTED_TARGETS or any(target == name or target.startswith(name + ".")
                                             for name in user_trusted_targets())


def check_targets(node: Any, where: str) -> None:
    """ConfigError naming the first key of `node` that could build or call something posereg's configs do not."""
    for path, key, value in _items(node):
        name = f"{path}.{key}" if path else str(key)
        if key == "_target_" and (not isinstance(value, str) or not is_trusted_target(value)):
            raise ConfigError(f"{where}: {name}={_short(value)} is not a class posereg builds; refusing to open "
                              f"this run (if it is your own class, trust it with {TRUST_ENV}=<its name or module>)")
        if key == "_partial_" and not isinstance(value, bool):
            raise ConfigError(f"{where}: {name}={_short(value)} must be true or false; refusing to open this run")
        if key == "_recursive_" and value is not True:
            raise ConfigError(f"{where}: {name}={_short(value)} would hand nested nodes to a target unbuilt; "
                              "refusing to open this run")
        if key == "_convert_" and value not in CONVERT_MODES:
            raise ConfigError(f"{where}: {name}={_short(value)} is not one of Hydra's modes; refusing to open "
                              "this run")
        if key == "_args_" and not isinstance(value, list):
            raise ConfigError(f"{where}: {name} must be a list; refusing to open this run")
        if isinstance(value, str):
            for resolver in _RESOLVER.findall(value):
                if resolver not in TRUSTED_RESOLVERS:
                    raise ConfigError(f"{where}: {name}={_short(value)} calls the resolver {resolver}, which "
                                      "posereg's configs never use; refusing to open this run")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _mappings(node: Any) -> list[dict]:
    """Every mapping inside `node` (itself included), iteratively: a deep document cannot exhaust the stack."""
    found, stack = [], [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _items(node: Any) -> list[tuple[str, Any, Any]]:
    """(dotted path of the parent, key, value) of every entry in `node`; list items are keyed by their index."""
    out, stack = [], [("", node)]
    while stack:
        path, item = stack.pop()
        entries = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, value in entries:
            out.append((path, key, value))
            if isinstance(value, dict | list):
                stack.append((f"{path}.{key}" if path else str(key), value))
    return out
