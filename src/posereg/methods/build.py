"""Build the pose LightningModule from a composed config: every component comes from a `_target_` node.

`cfg.method.net` (network), `cfg.method.loss.<term>` (loss terms), `cfg.method.optimizer` / `.scheduler`
(`_partial_` factories), `cfg.data.metrics` (metrics) and `cfg.method.module` (the LightningModule class,
`PoseModule` or a subclass) are instantiated as they are; defaults live in the YAML files only.
"""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from posereg.codecs import CoordinateCodec, input_hw
from posereg.config import instantiate
from posereg.errors import ConfigError
from posereg.losses import PoseLoss
from posereg.methods.pose_module import PoseModule
from posereg.methods.root_depth import RootDepthEstimator
from posereg.methods.validate import loss_schedule, method_dims, validate_combination
from posereg.nets.contract import PoseNet
from posereg.nets.root_depth import RootDepthMLP
from posereg.skeletons import get_joint_set


def build_net(cfg: DictConfig, info: Any) -> PoseNet:
    """The network of `cfg.method.net`, sized for the data's joint set, dimensionality and input size."""
    net = instantiate(cfg.method.net, num_joints=get_joint_set(info.joint_set).num_joints,
                      dims=method_dims(cfg, info), input_size=info.input_size)
    if not isinstance(net, PoseNet):
        raise ConfigError(f"method.net._target_={cfg.method.net._target_} does not build a posereg.nets.PoseNet "
                          "(see docs/architecture.md, 'Networks')")
    return net


def build_root_depth(rd: DictConfig, net: PoseNet, input_size: Any) -> RootDepthEstimator | None:
    """The root-depth estimator of method.root_depth, sized by a probe pass of `net`, or None when disabled."""
    if not rd.enabled:
        return None
    names = net.output_names
    feature = names[0] if rd.features is None else rd.features
    if feature not in names:
        raise ConfigError(f"method.root_depth.features={feature!r} is not an output; available: {', '.join(names)}")
    index = names.index(feature)
    h, w = input_hw(input_size)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        features = net(torch.zeros(2, 3, h, w), cut=index)[index].get("features")
    net.train(was_training)
    if features is None or features.dim() != 4:
        raise ConfigError(f"method.root_depth: {type(net).__name__} output {feature!r} exposes no (B,C,h,w) "
                          "features for the root-depth MLP")
    mlp = RootDepthMLP(features.shape[1], hidden=tuple(int(n) for n in rd.hidden), extent_mm=float(rd.extent_mm),
                       detach_features=bool(rd.detach_features))
    return RootDepthEstimator(mlp, index, input_size, weight=float(rd.weight), eval_mode=rd.eval)


def _metric_factory(cfg: DictConfig):
    """Callable returning fresh metric instances from cfg.data.metrics (name -> `_target_` kwargs)."""
    metrics_cfg = cfg.data.get("metrics") or {}

    def make() -> dict[str, nn.Module]:
        return {str(k).replace(".", "_"): instantiate(v) for k, v in metrics_cfg.items()}

    return make


def build_module(cfg: DictConfig, info: Any) -> PoseModule:
    """Validate the combination, then build network, loss terms, schedule and metrics into the method's module."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    validate_combination(cfg, info)
    m = cfg.method
    net = build_net(cfg, info)
    terms = {str(k): instantiate(v) for k, v in m.loss.items() if v is not None}
    for term in terms.values():
        term.prepare(net)
    if m.output_weights is not None and len(m.output_weights) != len(net.output_names):
        raise ConfigError(f"method.output_weights has {len(m.output_weights)} entries for "
                          f"{len(net.output_names)} outputs ({', '.join(net.output_names)})")
    module_cls = get_class(m.module._target_)
    if not issubclass(module_cls, PoseModule):
        raise ConfigError(f"method.module._target_={m.module._target_} is not a posereg.methods.PoseModule")
    extra = {str(k): v for k, v in m.module.items() if not str(k).startswith("_")}
    return module_cls(
        net=net,
        loss=PoseLoss(terms, m.output_weights),
        codec=CoordinateCodec(info.input_size, method_dims(cfg, info), float(info.depth_range)),
        schedule=loss_schedule(m),
        metric_factory=_metric_factory(cfg),
        optimizer=instantiate(m.optimizer),
        scheduler=instantiate(m.scheduler) if m.get("scheduler") is not None else None,
        cut=cfg.cut,
        flip_test=bool(cfg.flip_test),
        flip_index=get_joint_set(info.joint_set).flip_index,
        monitor=cfg.data.get("monitor"),
        root_depth=build_root_depth(m.root_depth, net, info.input_size),
        **extra,
    )
