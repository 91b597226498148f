"""Model complexity of every method x backbone at its paper preset's input size (parameters, GMACs).

GMACs are the multiply-accumulates of the convolution and linear layers (the papers' "FLOPs"), counted by
PyTorch's FLOP counter (posereg.nets.complexity); nothing is trained or loaded.
"""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir

from posereg.data.datamodule import data_info
from posereg.errors import ConfigError
from posereg.methods import build_net
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
EXTRA = {"hourglass (2 stacks), i1": ["experiment=integral_h36m_hourglass", "method=i1"],
         "cpn, h1": ["experiment=integral_mpii", "method=h1", "method/net=cpn"],
         "deeppose cascade (3 stages)": ["experiment=integral_mpii", "method=deeppose_cascade",
                                         "method.cascade.stages=3"]}


def _row(label: str, overrides: list[str]) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    c = model_complexity(build_net(cfg, data_info(cfg)), int(cfg.data.input_size))
    return {"model": label, "input": int(cfg.data.input_size), "joint_set": cfg.data.joint_set,
            "params_m": round(c.params / 1e6, 2), "gmacs": round(c.gmacs, 2)}


def run_complexity_bench(quick: bool = False) -> list[dict[str, Any]]:
    """One row per method x backbone (methods with their own network: one row)."""
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
                print(f"{label:28s} n/a: {err}", flush=True)
                continue
            print(f"{rows[-1]['model']:28s} {rows[-1]['input']:4d}²  {rows[-1]['params_m']:7.2f} M  "
                  f"{rows[-1]['gmacs']:7.2f} GMACs", flush=True)
    if not quick:
        rows += [_row(label, ov) for label, ov in EXTRA.items()]
    return rows
