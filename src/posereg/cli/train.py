"""posereg-train: the Hydra training app. Re-running a command continues its run directory.

    posereg-train [group=option | key=value ...] [--cfg job] [-m ...] [--help]

This module is the light part: Hydra's command line, and the overrides checked against the config tree
before Hydra composes them (`posereg.overrides`: a mistyped group, option or key is one line with the
closest valid names, exit 2). The recipe (`posereg.recipes.train`, with torch, Lightning and timm) is imported
only once there is a run to train, so `--help`, `--cfg` and config errors answer in a second or two.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import hydra
from hydra._internal.utils import get_args_parser
from omegaconf import DictConfig, OmegaConf, open_dict

from posereg.cli.common import exit_2_on_bad_input
from posereg.overrides import ConfigTree, check_overrides
from posereg.paths import CONF_DIR
from posereg.runs.keys import register_resolvers
from posereg.training.sweep_guard import sweep_child_guard

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    # the one deferred import: torch, Lightning and timm load only here, when there is a run to train
    from posereg.recipes.train import train_task

    metrics = train_task(cfg)
    if not metrics:
        return None
    monitor = metrics.get("monitor")
    return (metrics.get("best") or {}).get(monitor) if monitor else None


def check_command_line(argv: list[str]) -> bool:
    """ConfigError for a mistyped group, option or key among the overrides; with --help, print the help instead
    and return True (Hydra's own listing composes the tree once per group: seconds)."""
    args = get_args_parser().parse_args(argv)
    extra = [args.config_dir] if args.config_dir else []
    if args.help:
        print_help(args.overrides, extra, resolve=args.resolve)
        return True
    if not (args.hydra_help or args.shell_completion or args.info):
        check_overrides(args.overrides, extra_dirs=extra)
    return False


def print_help(overrides: list[str], extra_dirs: list[str], resolve: bool = False) -> None:
    """posereg-train's help, from conf/hydra/default.yaml's `help.template` as Hydra fills it."""
    check_overrides(overrides, extra_dirs=extra_dirs)
    tree = ConfigTree(CONF_DIR, extra_dirs)
    cfg = tree.compose(overrides)
    template = str(cfg.hydra.help.template)
    with open_dict(cfg):
        del cfg["hydra"]

    def listing(hydra_groups: bool) -> str:
        groups = [g for g in tree.groups() if (g == "hydra" or g.startswith("hydra/")) == hydra_groups]
        return "".join(f"{g}: {', '.join(tree.options(g))}\n" for g in groups)

    print(string.Template(template).safe_substitute(
        HYDRA_CONFIG_GROUPS=listing(True), APP_CONFIG_GROUPS=listing(False),
        CONFIG=OmegaConf.to_yaml(cfg, resolve=resolve)))


@contextmanager
def _argv(argv: list[str] | None) -> Iterator[list[str]]:
    """sys.argv set to the command's arguments while Hydra reads them (for in-process calls)."""
    if argv is None:
        yield sys.argv[1:]
        return
    saved = sys.argv
    sys.argv = [saved[0] if saved else "posereg-train", *argv]
    try:
        yield list(argv)
    finally:
        sys.argv = saved


def main(argv: list[str] | None = None) -> None:
    """Console entry point (posereg-train)."""
    sweep_child_guard()  # as posereg-sweep's Hydra child: end with the sweep, leaving no worker behind
    with _argv(argv) as args:
        if not exit_2_on_bad_input(check_command_line, args):
            _hydra_main()


if __name__ == "__main__":
    main()
