"""Where a network's initial weights come from, decided from the composed config before anything is built.

`fetch_pretrained` runs before the data and the run's files: a config that starts its backbone from timm's
pretrained weights gets them into the Hugging Face cache first, or fails with one line (offline: use
`backbone.checkpoint`). A network whose every weight is loaded from a checkpoint afterwards (a finished run,
a resumed one, a stage-1 run) or that is only measured is built from `without_initial_weights(cfg)`: nothing
is downloaded and the original weight file need not exist any more.
"""

from __future__ import annotations

import copy

from omegaconf import DictConfig, open_dict

from posereg.console import network_backbone
from posereg.errors import ConfigError
from posereg.nets import create_timm
from posereg.nets.pretrained import check_weight_source


def pretrained_backbone(cfg: DictConfig) -> str | None:
    """The timm model whose pretrained weights the config's network starts from (None: random init or a file);
    ConfigError for contradicting weight settings, or `backbone.pretrained=true` on a network without one."""
    node = cfg.get("backbone")
    if node is None:
        return None
    pretrained, name = bool(node.get("pretrained")), network_backbone(cfg)
    if name is None:
        if pretrained:
            raise ConfigError(f"backbone.pretrained=true: method {cfg.method.name}'s network has no backbone to "
                              "start from pretrained weights; drop backbone.pretrained")
        return None
    check_weight_source(pretrained, node.get("checkpoint"), node.get("timm_kwargs"))
    return name if pretrained else None


def fetch_pretrained(*configs: DictConfig) -> list[str]:
    """Get the pretrained weights the configs' backbones start from into the Hugging Face cache (timm downloads
    each model's once); ConfigError when they cannot be had. Returns the model names fetched."""
    names = sorted({name for cfg in configs if (name := pretrained_backbone(cfg)) is not None})
    for name in names:
        create_timm(name, pretrained=True)
    return names


def without_initial_weights(cfg: DictConfig) -> DictConfig:
    """A copy of `cfg` whose backbone starts from random init (no `pretrained`, no `checkpoint`)."""
    cfg = copy.deepcopy(cfg)
    if cfg.get("backbone") is not None:
        with open_dict(cfg):
            cfg.backbone.pretrained = False
            cfg.backbone.checkpoint = None
    return cfg
