"""Build the generic pose module from `cfg.method`, `cfg.backbone`, `cfg.data` and the data's `DataInfo`."""

from __future__ import annotations

import inspect
import math
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from posereg import ops
from posereg.codecs import DECODERS, CoordinateCodec, HeatmapCodec, MapDecoder, input_hw
from posereg.errors import ConfigError
from posereg.losses import CONF_KINDS, COORD_KINDS, HEATMAP_LOSSES, HEATMAP_SPACES, PoseLoss
from posereg.methods.pose_module import PoseModule, resolve_cut
from posereg.methods.root_depth import EVAL_MODES, RootDepthEstimator
from posereg.methods.schedule import LossSchedule
from posereg.nets import Backbone, DeconvHead, IntegralNet, MultiStageNet, RegressionHead, build_backbone
from posereg.nets.root_depth import RootDepthMLP
from posereg.skeletons import get_joint_set

HEAD_TYPES = ("deconv", "regression")


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    """cfg.key or default, for DictConfig and dict alike."""
    if cfg is None:
        return default
    value = cfg.get(key, default)
    return default if value is None else value


def method_dims(cfg: DictConfig, info: Any) -> int:
    """Output dimensionality: method.dims, else data.dims, else 3 when the data has 3D labels."""
    dims = _get(cfg.method, "dims") or _get(cfg.get("data"), "dims")
    return int(dims) if dims is not None else (3 if info.has_3d else 2)


def _schedule(cfg: DictConfig) -> LossSchedule:
    """LossSchedule from method.loss.weights and method.schedule."""
    loss = cfg.method.get("loss") or {}
    sched = cfg.method.get("schedule") or {}
    return LossSchedule(
        weights=dict(_get(loss, "weights", {})),
        switch_epoch=sched.get("switch_epoch"),
        before=dict(sched.get("before") or {}),
        after=dict(sched.get("after") or {}),
    )


def _net_class(cfg: DictConfig) -> type | None:
    """The class of a custom network (method.net._target_), or None."""
    net_cfg = cfg.method.get("net")
    return None if net_cfg is None else hydra.utils.get_class(net_cfg._target_)


def num_outputs(cfg: DictConfig) -> list[str]:
    """Output names the configured network will return (before building it)."""
    net_cfg = cfg.method.get("net")
    if net_cfg is not None:
        # A custom network (method.net._target_) may announce its outputs through `config_output_names`.
        names_for = getattr(_net_class(cfg), "config_output_names", None)
        kwargs = {k: v for k, v in net_cfg.items() if not str(k).startswith("_")}
        return list(names_for(**kwargs)) if names_for is not None else None
    stages = _get(cfg.method, "stages")
    if stages:
        return [f"stage{s + 1}" for s in range(int(stages))]
    return ["out"]


def validate_combination(cfg: DictConfig, info: Any) -> None:
    """Raise ConfigError (one line) for impossible method/data/backbone combinations; builds nothing."""
    m = cfg.method
    dims = method_dims(cfg, info)
    name = _get(m, "name", "method")
    if dims == 3 and not info.has_3d:
        raise ConfigError(
            f"method {name} is 3D (dims=3) but data {list(info.dataset_names)} has no 3D labels: "
            "use a 3D data config (e.g. data=synth3d, h36m) or method.dims=null"
        )
    head = m.get("head") or {}
    head_type = _get(head, "type", "deconv")
    if head_type not in HEAD_TYPES:
        raise ConfigError(f"method.head.type={head_type!r} unknown: use one of {', '.join(HEAD_TYPES)}")
    codec = m.get("codec") or {}
    decoder = _get(codec, "decoder", "direct" if head_type == "regression" else "integral")
    if decoder not in DECODERS:
        raise ConfigError(f"method.codec.decoder={decoder!r} unknown: use one of {', '.join(DECODERS)}")
    if (head_type == "regression") != (decoder == "direct"):
        raise ConfigError(
            f"method.codec.decoder={decoder!r} does not fit method.head.type={head_type!r}: "
            "the regression head (R1) uses decoder=direct, map heads use integral or argmax"
        )
    ramp = _get(codec, "ramp", "center")
    if ramp not in ops.RAMPS:
        raise ConfigError(f"unknown ramp {ramp!r}: set method.codec.ramp to one of {', '.join(ops.RAMPS)}")
    loss = m.get("loss") or {}
    coord, heatmap, conf = _get(loss, "coord"), _get(loss, "heatmap"), _get(loss, "conf")
    if conf is not None and conf not in CONF_KINDS:
        raise ConfigError(f"method.loss.conf={conf!r} unknown: use one of {', '.join(CONF_KINDS)} or null")
    if coord is not None and coord not in COORD_KINDS:
        raise ConfigError(f"method.loss.coord={coord!r} unknown: use one of {', '.join(COORD_KINDS)} or null")
    if heatmap is not None and heatmap not in HEATMAP_LOSSES:
        raise ConfigError(f"method.loss.heatmap={heatmap!r} unknown: use one of {', '.join(HEATMAP_LOSSES)} or null")
    schedule = _schedule(cfg)
    terms = schedule.terms()
    if not terms:
        raise ConfigError(f"method {name}: every loss weight is zero: set method.loss.weights")
    for term in terms:
        kind = {"coord": coord, "heatmap": heatmap, "conf": conf}.get(term, "unknown-term")
        if kind == "unknown-term":
            raise ConfigError(f"method {name}: unknown loss term {term!r} in weights: use coord, heatmap, conf")
        if kind is None:
            raise ConfigError(f"method {name}: loss term {term!r} has a weight but method.loss.{term} is null")
    if "heatmap" in terms and head_type == "regression":
        raise ConfigError(f"method {name}: the regression head (R1) has no heat map: set method.loss.heatmap=null")
    if "coord" in terms and decoder == "argmax":
        raise ConfigError(
            f"method {name}: argmax decoding is not differentiable, so the coordinate loss cannot train it: "
            "use method.codec.decoder=integral or weight 0 for coord"
        )
    space = _get(loss, "heatmap_space", "logits")
    if space not in HEATMAP_SPACES:
        raise ConfigError(f"method.loss.heatmap_space={space!r} unknown: use one of {', '.join(HEATMAP_SPACES)}")
    if space == "prob" and (heatmap != "mse" or decoder != "integral"):
        raise ConfigError(
            f"method {name}: heatmap_space=prob (softmax-normalized maps) needs heatmap=mse and decoder=integral"
        )
    if dims == 3 and heatmap == "bce":
        raise ConfigError(
            f"method {name}: H3/I3 (disk BCE) is 2D only, as in the paper: use h1/h2/i1/i2 for 3D data"
        )
    stages = _get(m, "stages")
    if stages is not None and (int(stages) < 1 or head_type != "deconv"):
        raise ConfigError(f"method.stages={stages}: multi-stage needs stages >= 1 and a deconv head")
    output_weights = _get(loss, "output_weights")
    names = num_outputs(cfg)
    if names is not None and output_weights is not None and len(output_weights) != len(names):
        raise ConfigError(f"method.loss.output_weights has {len(output_weights)} entries for {len(names)} outputs")
    cut = cfg.get("cut")
    canonical = getattr(_net_class(cfg), "canonical_cut", None)
    if names is not None and canonical is not None:
        cut = canonical(cut, names)
    if names is not None and not (isinstance(cut, str) and cut.startswith("auto:")):
        resolve_cut(cut, names)
    if cfg.get("flip_test") and not info.joint_set:
        raise ConfigError("flip_test=true needs data.joint_set")
    _validate_root_depth(m.get("root_depth"), dims, info, names)


def _validate_root_depth(rd: Any, dims: int, info: Any, names: list[str] | None) -> None:
    """Config errors of method.root_depth (when enabled), before anything is built."""
    if not rd or not rd.get("enabled"):
        return
    if dims != 3 or not info.has_3d:
        raise ConfigError("method.root_depth.enabled=true estimates an absolute 3D root depth: it needs 3D data "
                          "and a 3D method (e.g. data=synth3d)")
    mode = _get(rd, "eval", "gt")
    if mode not in EVAL_MODES:
        raise ConfigError(f"method.root_depth.eval={mode!r} unknown: use one of {', '.join(EVAL_MODES)}")
    feature = _get(rd, "features")
    if feature is not None and names is not None and feature not in names:
        raise ConfigError(f"method.root_depth.features={feature!r} is not an output; available: {', '.join(names)}")


def build_root_depth(rd: Any, net: nn.Module, input_size: Any) -> RootDepthEstimator | None:
    """The root-depth estimator of method.root_depth, sized by a probe pass of `net`, or None when disabled."""
    if not rd or not rd.get("enabled"):
        return None
    names = list(getattr(net, "output_names", ["out"]))
    feature = _get(rd, "features", names[0])
    index = names.index(feature)
    h, w = input_hw(input_size)
    probe = torch.zeros(2, 3, h, w)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        takes_cut = "cut" in inspect.signature(net.forward).parameters
        outputs = net(probe, cut=feature) if takes_cut else net(probe)
    net.train(was_training)
    features = outputs[index].get("features")
    if features is None or features.dim() != 4:
        raise ConfigError(f"method.root_depth: {type(net).__name__} output {feature!r} exposes no (B,C,h,w) "
                          "features for the root-depth MLP")
    mlp = RootDepthMLP(features.shape[1], hidden=tuple(int(n) for n in _get(rd, "hidden", (128, 128, 256))),
                       extent_mm=float(_get(rd, "extent_mm", 2000.0)),
                       detach_features=bool(_get(rd, "detach_features", True)))
    return RootDepthEstimator(mlp, index, input_size, weight=float(_get(rd, "weight", 1.0)),
                              eval_mode=_get(rd, "eval", "gt"))


def _num_deconv(head: Any, backbone_stride: int) -> int:
    """Deconv count: from method.head.heatmap_stride when set, else method.head.num_deconv."""
    stride = _get(head, "heatmap_stride")
    if stride is None:
        return int(_get(head, "num_deconv", 3))
    n = math.log2(backbone_stride / int(stride))
    if n < 0 or n != int(n):
        raise ConfigError(
            f"method.head.heatmap_stride={stride} cannot be reached from the backbone stride {backbone_stride} "
            "by x2 deconvolutions"
        )
    return int(n)


def build_net(cfg: DictConfig, num_joints: int, dims: int) -> nn.Module:
    """The network of the method: single-stage backbone + head, or the multi-stage ResNet."""
    m = cfg.method
    if m.get("net") is not None:
        # Custom network: method.net._target_ with its own kwargs; num_joints/dims/input_size are passed
        # when its constructor takes them.
        params = inspect.signature(hydra.utils.get_class(m.net._target_)).parameters
        extra = {"num_joints": num_joints, "dims": dims}
        data = cfg.get("data")
        if data is not None and data.get("input_size") is not None:
            size = data.input_size
            extra["input_size"] = size if isinstance(size, int) else [int(v) for v in size]
        return hydra.utils.instantiate(m.net, **{k: v for k, v in extra.items() if k in params})
    head = m.get("head") or {}
    codec = m.get("codec") or {}
    head_type = _get(head, "type", "deconv")
    depth_bins = int(_get(head, "depth_bins", 64)) if dims == 3 else None
    decoder = None
    if head_type != "regression":
        decoder = MapDecoder(_get(codec, "decoder", "integral"), _get(codec, "ramp", "center"),
                             _get(codec, "beta", 1.0))
    width = int(_get(head, "width", 256))
    if _get(m, "stages"):
        b = cfg.backbone
        return MultiStageNet(
            b.name, num_joints, decoder, num_stages=int(m.stages), depth_bins=depth_bins,
            num_deconv=_num_deconv(head, 32), width=width, checkpoint=b.get("checkpoint"),
            **dict(b.get("kwargs") or {}),
        )
    backbone: Backbone = build_backbone(cfg.backbone)
    if head_type == "regression":
        return IntegralNet(backbone, RegressionHead(backbone.out_channels, num_joints, dims), None)
    deconv = DeconvHead(backbone.out_channels, num_joints, depth_bins=depth_bins,
                        num_deconv=_num_deconv(head, backbone.out_stride), width=width)
    return IntegralNet(backbone, deconv, decoder)


def _init_prior_bias(net: nn.Module, prior: float) -> None:
    """Start every deconv head's output bias at logit(prior), the fraction of positive cells of an H3 disk.

    The per-cell BCE then starts at the prior instead of p = 0.5 everywhere (as in focal-loss detectors);
    a constant shift does not change the softmax, so the integral of I3 starts unchanged.
    """
    p = min(max(prior, 1e-4), 0.5)
    for module in net.modules():
        if isinstance(module, DeconvHead):
            nn.init.constant_(module.final.bias, math.log(p / (1 - p)))


def _metric_factory(cfg: DictConfig):
    """Callable returning fresh metric instances from cfg.data.metrics (name -> `_target_` kwargs)."""
    metrics_cfg = cfg.data.get("metrics") if cfg.get("data") is not None else None

    def make() -> dict[str, nn.Module]:
        if not metrics_cfg:
            return {}
        return {str(k).replace(".", "_"): hydra.utils.instantiate(v) for k, v in metrics_cfg.items()}

    return make


def build_module(cfg: DictConfig, info: Any) -> PoseModule:
    """Validate the combination, then build network, codecs, loss, schedule and metrics into a PoseModule."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    validate_combination(cfg, info)
    m = cfg.method
    dims = method_dims(cfg, info)
    joint_set = get_joint_set(info.joint_set)
    depth_range = float(getattr(info, "depth_range", None) or _get(cfg.data, "depth_range", 2000.0))
    codec_cfg = m.get("codec") or {}
    loss_cfg = m.get("loss") or {}
    heatmap = _get(loss_cfg, "heatmap")
    space = _get(loss_cfg, "heatmap_space", "logits")
    heatmap_codec = None
    if heatmap is not None:
        heatmap_codec = HeatmapCodec(
            HEATMAP_LOSSES[heatmap], info.input_size, ramp=_get(codec_cfg, "ramp", "center"),
            sigma=float(_get(codec_cfg, "sigma", 1.0)), radius=float(_get(codec_cfg, "radius", 15.0)),
            normalize=space == "prob",
        )
    loss = PoseLoss(_get(loss_cfg, "coord"), heatmap, heatmap_codec, _get(loss_cfg, "output_weights"),
                    conf=_get(loss_cfg, "conf"), heatmap_space=space)
    net = build_net(cfg, joint_set.num_joints, dims)
    if heatmap == "bce":
        h, w = input_hw(info.input_size)
        _init_prior_bias(net, math.pi * float(_get(codec_cfg, "radius", 15.0)) ** 2 / (h * w))
    optimizer = hydra.utils.instantiate(m.optimizer) if m.get("optimizer") is not None else None
    scheduler = hydra.utils.instantiate(m.scheduler) if m.get("scheduler") is not None else None
    return PoseModule(
        net=net,
        loss=loss,
        codec=CoordinateCodec(info.input_size, dims, depth_range),
        schedule=_schedule(cfg),
        metric_factory=_metric_factory(cfg),
        optimizer=optimizer,
        scheduler=scheduler,
        cut=cfg.get("cut"),
        flip_test=bool(cfg.get("flip_test") or False),
        flip_index=joint_set.flip_index,
        monitor=_get(cfg.data, "monitor"),
        root_depth=build_root_depth(m.get("root_depth"), net, info.input_size),
    )
