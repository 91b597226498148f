"""Model complexity of every network at its paper preset's input size (parameters, GMACs): each method x
backbone, the Stacked Hourglass, and DeepSkeleton's two networks (stage 1's skeleton-map FCN, stage 2's
regressor, counted on its own: with predicted maps, stage 1 runs before it).

GMACs are the multiply-accumulates of the convolution and linear layers (the papers' "FLOPs"), counted by
PyTorch's FLOP counter (posereg.nets.complexity); nothing is trained or loaded. Every row is printed and
returned (posereg-bench writes them to complexity.json).
"""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir

from posereg.data.datamodule import data_info
from posereg.errors import ConfigError
from posereg.methods import build_net
from posereg.methods.initial_weights import without_initial_weights
from posereg.nets.complexity import model_complexity
from posereg.paths import CONF_DIR
from posereg.runs import register_resolvers

# method -> the preset that states its paper setting (input size, head, data dimensionality)
PRESETS = {
    "r1": "integral_mpii", "h1": "integral_mpii", "h2": "integral_mpii", "h3": "integral_mpii",
    "istar": "integral_mpii", "i1": "integral_mpii", "i2": "integral_mpii", "i3": "integral_mpii",
    "ms_h1": "integral_mpii", "ms_i1": "integral_mpii", "luvizon17": "luvizon_mpii", "sspnet": "sspnet_h36m",
}
BACKBONES = ("resnet18", "resnet50", "resnet101", "hrnet_w32")
# networks outside the method x backbone matrix: label -> (overrides, whether it has a timm backbone)
EXTRA = {
    "hourglass (2 stacks), i1": (["experiment=integral_h36m_hourglass", "method=i1"], False),
    "deepskeleton_maps (stage-1 FCN)": (["experiment=deepskeleton_h36m_maps"], True),
    "deepskeleton_regress (stage 2 on maps)": (["experiment=deepskeleton_h36m_regress", "method.input.source=gt"],
                                               True),
    "deepskeleton_regress (stage 2 on rgb)": (["experiment=deepskeleton_h36m_regress", "method.input.source=rgb"],
                                              True),
    "cpn, h1": (["experiment=integral_mpii", "method=h1", "method/net=cpn"], True),
    "deeppose cascade (3 stages)": (["experiment=integral_mpii", "method=deeppose_cascade", "method.cascade.stages=3"],
                                    True),
}


def _row(label: str, overrides: list[str], backbone_in_label: bool = False) -> dict[str, Any]:
    """Compose, build and count one network; print its line."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    c = model_complexity(build_net(without_initial_weights(cfg), data_info(cfg)), int(cfg.data.input_size))
    label = f"{label} / {cfg.backbone.name}" if backbone_in_label else label
    row = {"model": label, "input": int(cfg.data.input_size), "joint_set": cfg.data.joint_set,
           "params_m": round(c.params / 1e6, 2), "gmacs": round(c.gmacs, 2)}
    print(f"{row['model']:52s} {row['input']:4d}²  {row['params_m']:7.2f} M  {row['gmacs']:7.2f} GMACs", flush=True)
    return row


def run_complexity_bench(quick: bool = False) -> list[dict[str, Any]]:
    """One row per method x backbone (methods with their own network: one row), then the other networks;
    `quick`: three methods and DeepSkeleton's networks, with ResNet-18 backbones."""
    register_resolvers()
    rows = []
    methods = ("i1", "r1", "sspnet") if quick else tuple(PRESETS)
    for method in methods:
        own_net = method in ("luvizon17", "sspnet")
        for backbone in (None,) if own_net else (BACKBONES[:1] if quick else BACKBONES):
            overrides = [f"experiment={PRESETS[method]}", f"method={method}"]
            if backbone:
                overrides.append(f"backbone={backbone}")
            label = f"{method}" + (f" / {backbone}" if backbone else "")
            try:
                rows.append(_row(label, overrides))
            except ConfigError as err:  # e.g. the multi-stage nets need a ResNet
                print(f"{label:52s} n/a: {err}", flush=True)
    for label, (overrides, has_backbone) in EXTRA.items():
        if not quick:
            rows.append(_row(label, overrides, has_backbone))
        elif has_backbone:
            rows.append(_row(label, [*overrides, f"backbone={BACKBONES[0]}"], has_backbone))
    return rows
