"""Stored run configs written by older posereg, brought up to date when a run is opened (`RunDir.config`).

A run directory keeps the config it was composed with (`.hydra/config.yaml`). When a class moves, a setting
stops having a Python default or a plain setting becomes a `_target_` node, the configs stored before still
describe their runs: this module is the one place that says how to read them, so posereg-eval, -predict,
-export, -hypotheses, a stage-1 run read by DeepSkeleton's stage 2 and a resumed run all see today's layout.

Every stored config from RUN_VERSION 2 on carries its layout version (`posereg_run_version`, also in
status.json as `run_version`); an unstamped one is version 1 (posereg up to the run-directory layout of
issue 25), whose steps are recognised by their shape and leave today's nodes alone:

* `_target_`s that moved (issue 27: a folder per feature) get their new names (MOVED_TARGETS);
* an augmentation block missing keys gets the values posereg took from its Python defaults then;
* a backbone without `pretrained` (before bac0723) started from random init or its `checkpoint`;
* the method, backbone, trainer, callbacks and logger of 269186e's layout (plain `method.head.type`,
  `method.codec`, loss kinds as strings, a backbone without `_target_`, ...) become the nodes that build the
  same network, loss terms and training settings today (`_method_269186e`).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from posereg.errors import ConfigError

RUN_VERSION = 2  # the layout of run directories this posereg writes
VERSION_KEY = "posereg_run_version"

# `_target_` module prefixes that moved -> where they are now (issue 27: a folder per feature)
MOVED_TARGETS = {
    "posereg.callbacks.": "posereg.training.callbacks.",
    "posereg.loggers.": "posereg.training.loggers.",
    "posereg.perf.": "posereg.training.speed.",
    "posereg.losses_skeleton.": "posereg.losses.",
}

# What `data.augment` meant for a key the stored config lacks: the values posereg took from its Python
# defaults (`AugmentConfig`, up to commit 85c4746) before conf/data/augment/ stated every key.
AUGMENT_BEFORE_GROUP = {
    "scale": [0.75, 1.25], "rotation": 30.0, "rotation_prob": 0.6, "rotation_dist": "uniform", "flip_prob": 0.5,
    "translation": 0.05, "brightness": 0.2, "contrast": 0.2, "gain": [0.8, 1.2], "photometric_prob": 0.8,
    "blur_prob": 0.1, "noise_prob": 0.1, "occlusion_prob": 0.0, "occlusion_holes": [1, 3],
    "occlusion_size": [0.08, 0.25],
}

# 269186e's loss kinds -> today's term classes (`method.loss.<term>: <kind>` became a `_target_` node)
LOSS_KINDS_269186E = {
    ("heatmap", "mse"): "posereg.losses.GaussianHeatmapMSE",
    ("heatmap", "ce"): "posereg.losses.OneHotHeatmapCE",
    ("heatmap", "bce"): "posereg.losses.DiskHeatmapBCE",
    ("conf", "bce"): "posereg.losses.ConfidenceBCE",
}
# what 269186e's code took for a key its method config left out (methods/build.py then)
HEAD_269186E = {"type": "deconv", "num_deconv": 3, "width": 256, "depth_bins": 64, "heatmap_stride": None}
CODEC_269186E = {"decoder": "integral", "ramp": "center", "beta": 1.0, "sigma": 1.0, "radius": 15.0}


def moved_target(target: str) -> str:
    """Today's name of a `_target_` (unchanged when it did not move)."""
    for old, new in MOVED_TARGETS.items():
        if target.startswith(old):
            return new + target[len(old):]
    return target


def _rename_targets(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: moved_target(v) if k == "_target_" and isinstance(v, str) else _rename_targets(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_targets(v) for v in node]
    return node


def _complete_augment(block: Any) -> None:
    """Fill the keys an augment mapping lacks with what they meant when it was stored."""
    if isinstance(block, dict):
        for key, value in AUGMENT_BEFORE_GROUP.items():
            block.setdefault(key, value)


# Networks whose config gained `pretrained` (issue 26): a config stored before trained from random weights.
PRETRAINED_FOLLOWS_BACKBONE = ("posereg.nets.SkeletonFCN", "posereg.nets.SkeletonRegressor",
                               "posereg.nets.skeleton_fcn.SkeletonFCN",
                               "posereg.nets.skeleton_regressor.SkeletonRegressor")


def migrate_config(cfg: DictConfig) -> DictConfig:
    """A stored config in today's layout (see the module docstring; interpolations kept)."""
    return OmegaConf.create(migrate_raw(OmegaConf.to_container(cfg, resolve=False)))


def migrate_raw(raw: Any, where: str = "the stored config") -> dict[str, Any]:
    """`migrate_config` on plain containers (as a safe YAML load gives them); the version stamp is removed.
    ConfigError naming `where` for a config that is not a mapping or comes from a newer posereg."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: holds a {type(raw).__name__}, not the mapping posereg writes")
    raw = dict(raw)
    version = raw.pop(VERSION_KEY, 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: {VERSION_KEY}={version!r} is not a layout version posereg writes")
    if version > RUN_VERSION:
        raise ConfigError(f"{where}: written by a newer posereg (layout version {version}; this one reads up to "
                          f"{RUN_VERSION}): update posereg to open this run")
    if version < 2:
        raw = _to_version_2(raw)
    _add_max_time(raw)
    return raw


def _add_max_time(raw: dict[str, Any]) -> None:
    """`trainer.max_time` (a known key since 82ec453): null where a stored Trainer lacks it, which is what Lightning
    took (no wall-clock guard); a keyword added to every layout version, so it is completed on every read."""
    trainer = raw.get("trainer")
    if isinstance(trainer, dict) and trainer.get("_target_") == "lightning.pytorch.Trainer":
        trainer.setdefault("max_time", None)


def stamped(raw: dict[str, Any]) -> dict[str, Any]:
    """A config to store, with this posereg's layout version first."""
    return {VERSION_KEY: RUN_VERSION, **{k: v for k, v in raw.items() if k != VERSION_KEY}}


def _to_version_2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (unstamped) -> 2: each step recognises the older shape and leaves today's alone."""
    raw = _rename_targets(raw)
    data = raw.get("data")
    if isinstance(data, dict):
        _complete_augment(data.get("augment"))
        sources = data.get("sources")
        for source in (sources.values() if isinstance(sources, dict) else ()):
            if isinstance(source, dict):
                _complete_augment(source.get("augment"))
    method = raw.get("method")
    if isinstance(method, dict) and _is_269186e_method(method):
        raw["method"] = _method_269186e(method)
    backbone = raw.get("backbone")
    if isinstance(backbone, dict) and "_target_" not in backbone and "name" in backbone:
        raw["backbone"] = _backbone_269186e(backbone)
    _add_pretrained(raw)
    trainer = raw.get("trainer")
    if isinstance(trainer, dict) and "_target_" not in trainer:
        raw["trainer"] = {"_target_": "lightning.pytorch.Trainer", **trainer}
    callbacks = raw.get("callbacks")
    if isinstance(callbacks, dict) and ("extra" in callbacks or "save_best" in callbacks):
        raw["callbacks"] = _callbacks_269186e(callbacks)
    logger = raw.get("logger")
    if isinstance(logger, dict) and logger and all(isinstance(v, bool) for v in logger.values()):
        raw["logger"] = {}  # flags of the loggers it wrote; today: nodes of the loggers to build (execution only)
    return raw


def _add_pretrained(raw: dict[str, Any]) -> None:
    """`backbone.pretrained` (bac0723): false where the stored backbone lacks it (runs started from random init or
    `checkpoint`); a network that forwards the backbone's weight settings (`checkpoint: ${backbone.checkpoint}`)
    forwards `pretrained` too."""
    backbone, method = raw.get("backbone"), raw.get("method")
    if isinstance(backbone, dict) and "_target_" in backbone:
        backbone.setdefault("pretrained", False)
    net = method.get("net") if isinstance(method, dict) else None
    if isinstance(net, dict) and (net.get("checkpoint") == "${backbone.checkpoint}"
                                  or net.get("_target_") in PRETRAINED_FOLLOWS_BACKBONE):
        net.setdefault("pretrained", "${backbone.pretrained}")


def _is_269186e_method(method: dict[str, Any]) -> bool:
    """The method layout of 269186e: a codec block, a head type, or loss kinds as strings."""
    loss = method.get("loss")
    kinds = isinstance(loss, dict) and any(isinstance(loss.get(t), str) for t in ("coord", "heatmap", "conf"))
    head = method.get("head")
    return "codec" in method or (isinstance(head, dict) and "type" in head) or kinds


def _setting(block: Any, key: str, defaults: dict[str, Any]) -> Any:
    """`block[key]`, or what 269186e took when it was missing or null."""
    value = block.get(key) if isinstance(block, dict) else None
    return defaults[key] if value is None else value


def _method_269186e(old: dict[str, Any]) -> dict[str, Any]:
    """269186e's method config as today's nodes that build the same network, loss terms and schedule."""
    head, codec = old.get("head") or {}, old.get("codec") or {}
    loss = old.get("loss") or {}
    weights = loss.get("weights") or {}
    head_type = _setting(head, "type", HEAD_269186E)
    new: dict[str, Any] = {k: v for k, v in old.items() if k not in ("head", "codec", "loss")}
    new["module"] = {"_target_": "posereg.methods.PoseModule"}
    new["output_weights"] = loss.get("output_weights")
    new.setdefault("root_depth", {"enabled": False})
    if old.get("net") is None:  # the Integral family: the network was chosen by head.type and stages
        if head_type == "regression":
            new["net"] = {"_target_": "posereg.nets.RegressionNet", "backbone": "${backbone}"}
        else:
            new["head"] = {"_target_": "posereg.nets.deconv_head", "_partial_": True,
                           **{k: _setting(head, k, HEAD_269186E)
                              for k in ("num_deconv", "heatmap_stride", "width", "depth_bins")}}
            new["decoder"] = {"_target_": "posereg.codecs.MapDecoder",
                              "mode": _setting(codec, "decoder", CODEC_269186E),
                              "ramp": _setting(codec, "ramp", CODEC_269186E),
                              "beta": _setting(codec, "beta", CODEC_269186E)}
            net = {"_target_": "posereg.nets.HeatmapNet", "backbone": "${backbone}", "head": "${method.head}",
                   "decoder": "${method.decoder}"}
            if old.get("stages"):
                net.update(_target_="posereg.nets.MultiStageNet", num_stages="${method.stages}")
            new["net"] = net
    terms: dict[str, Any] = {}
    for term in ("coord", "heatmap", "conf"):
        kind = loss.get(term)
        if kind is None:
            continue
        if isinstance(kind, dict):  # already a node
            terms[term] = kind
            continue
        weight = float(weights.get(term, 0.0))
        if term == "coord":
            terms[term] = {"_target_": "posereg.losses.CoordLoss", "kind": kind, "weight": weight}
            continue
        target = LOSS_KINDS_269186E.get((term, str(kind)))
        if target is None:
            raise ConfigError(f"method.loss.{term}={kind!r}: not a loss kind posereg 269186e knew; this run cannot "
                              "be read")
        node: dict[str, Any] = {"_target_": target, "weight": weight}
        if term == "heatmap":
            node.update(ramp="${method.decoder.ramp}", input_size="${data.input_size}")
            if kind == "mse":
                node.update(sigma=_setting(codec, "sigma", CODEC_269186E), space=loss.get("heatmap_space") or "logits")
            elif kind == "bce":
                node["radius"] = _setting(codec, "radius", CODEC_269186E)
        terms[term] = node
    new["loss"] = terms
    return new


def _backbone_269186e(old: dict[str, Any]) -> dict[str, Any]:
    """269186e's backbone block (timm keyword arguments in `kwargs`, `feature_location` beside) as today's node."""
    timm_kwargs = dict(old.get("kwargs") or {})
    if old.get("feature_location") is not None:
        timm_kwargs["feature_location"] = old["feature_location"]
    new = {k: v for k, v in old.items() if k not in ("kwargs", "feature_location")}
    return {"_target_": "posereg.nets.Backbone", **new, "timm_kwargs": timm_kwargs}


def _callbacks_269186e(old: dict[str, Any]) -> dict[str, Any]:
    """269186e's callback flags: the one that changed training (early stopping's patience) and the extra nodes;
    the others (checkpoint cadence, progress bar) are execution settings a resumed run takes from its command."""
    extra = old.get("extra") if isinstance(old.get("extra"), dict) else {}
    return {**extra, "early_stopping": {"patience": old.get("early_stopping_patience")}}
