"""Cross-field rules of a method config: what no single class can check on its own (one-line ConfigErrors).

Each rule is here once; a setting that one class owns (a loss kind, a ramp, a decoder mode) is checked
by that class' constructor instead.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from posereg.errors import ConfigError
from posereg.losses import DiskHeatmapBCE, GaussianHeatmapMSE, HeatmapLoss, LossTerm
from posereg.methods.root_depth import EVAL_MODES
from posereg.methods.schedule import LossSchedule


def method_dims(cfg: DictConfig, info: Any) -> int:
    """Output dimensionality: method.dims, else data.dims, else 3 when the data has 3D labels."""
    dims = cfg.method.dims if cfg.method.dims is not None else OmegaConf.select(cfg, "data.dims")
    return int(dims) if dims is not None else (3 if info.has_3d else 2)


def loss_schedule(method: DictConfig) -> LossSchedule:
    """The loss-weight schedule: each term's own weight, or the `before` / `after` phases."""
    weights = {str(k): float(v.weight) for k, v in method.loss.items() if v is not None}
    s = method.schedule
    return LossSchedule(weights=weights, switch_epoch=s.switch_epoch, before=dict(s.before), after=dict(s.after))


def _term_classes(method: DictConfig) -> dict[str, type[LossTerm]]:
    """Loss term name -> class, without building anything."""
    out = {}
    for name, term in method.loss.items():
        if term is None:
            continue
        cls = get_class(term._target_)
        if not issubclass(cls, LossTerm):
            raise ConfigError(f"method.loss.{name}._target_={term._target_} is not a posereg.losses.LossTerm")
        out[str(name)] = cls
    return out


def validate_combination(cfg: DictConfig, info: Any) -> None:
    """Raise ConfigError for an impossible method / data / setting combination; builds nothing."""
    m = cfg.method
    name = m.name
    dims = method_dims(cfg, info)
    if dims == 3 and not info.has_3d:
        raise ConfigError(f"method {name} is 3D (dims=3) but data {list(info.dataset_names)} has no 3D labels: "
                          "use a 3D data config (e.g. data=synth3d, h36m) or method.dims=null")
    terms = _term_classes(m)
    active = loss_schedule(m).terms()
    if not active:
        raise ConfigError(f"method {name}: every loss weight is zero: give a term in method.loss a weight")
    for term in sorted(active - set(terms)):
        raise ConfigError(f"method {name}: the schedule weighs loss term {term!r} but method.loss.{term} is not set")
    used = {t: terms[t] for t in active}
    net_cls = get_class(m.net._target_)
    if any(issubclass(c, HeatmapLoss) for c in used.values()) and not net_cls.produces_maps:
        raise ConfigError(f"method {name}: {net_cls.__name__} has no heat maps: drop the heat-map loss term")
    mode = OmegaConf.select(m, "decoder.mode")
    if mode == "argmax" and any(c.needs == "coords" for c in used.values()):
        raise ConfigError(f"method {name}: argmax decoding is not differentiable, so a coordinate loss cannot "
                          "train it: use method.decoder.mode=integral or drop the coordinate term")
    for t, cls in used.items():
        if issubclass(cls, GaussianHeatmapMSE) and m.loss[t].space == "prob" and mode != "integral":
            raise ConfigError(f"method {name}: method.loss.{t}.space=prob (softmax-normalized maps) needs "
                              "method.decoder.mode=integral")
        if issubclass(cls, DiskHeatmapBCE) and dims == 3:
            raise ConfigError(f"method {name}: H3/I3 (disk BCE) is 2D only, as in the paper: "
                              "use h1/h2/i1/i2 for 3D data")
    if m.get("cascade") is not None and m.output_weights is not None:
        raise ConfigError(f"method {name}: method.output_weights={list(m.output_weights)}: a DeepPose cascade run "
                          "trains its last stage alone (the earlier ones are frozen); leave it null")
    if cfg.get("flip_test") and not info.joint_set:
        raise ConfigError("flip_test=true needs data.joint_set")
    rd = m.root_depth
    if rd.enabled:
        if dims != 3:
            raise ConfigError("method.root_depth.enabled=true estimates an absolute 3D root depth: it needs 3D "
                              "data and a 3D method (e.g. data=synth3d)")
        if rd.eval not in EVAL_MODES:
            raise ConfigError(f"method.root_depth.eval={rd.eval!r} unknown: use one of {', '.join(EVAL_MODES)}")
