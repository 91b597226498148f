"""posereg-eval: re-evaluate a finished (or interrupted) run with the run's own saved config.

    posereg-eval run=runs/default/seed=0 [split=val|test] [ckpt=best|last|<file>] [key=value | group=option ...]

Overrides use Hydra's grammar and are checked against the run's config: an unknown key is refused with the
closest settings (add a new one with `+key=value`), and `data=<option>` style overrides replace that group with
the option. Writes eval_<split>.json beside the run (`posereg.evaluate` in Python does the same).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posereg.api.evaluate import evaluate
from posereg.cli.common import exit_2_on_bad_input, split_own_args
from posereg.errors import ConfigError

USAGE = ("posereg-eval run=<run dir> [split=val|test] [ckpt=best|last|<file>] [flip_test=true] [data=<option>] "
         "[key=value ...]")


def parse_args(argv: list[str] | None) -> tuple[Path, str, str, list[str]]:
    """Split `run=`, `split=`, `ckpt=` from the config overrides."""
    parser = argparse.ArgumentParser(prog="posereg-eval", usage=USAGE, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="run=<dir> split=val|test ckpt=best|last and key=value overrides")
    args = parser.parse_args(argv)
    try:
        found, rest = split_own_args(args.items, {"run": None, "split": "val", "ckpt": "best"})
    except ConfigError as err:
        parser.error(str(err))
    return Path(found["run"]), found["split"], found["ckpt"], rest


def main(argv: list[str] | None = None) -> None:
    """Console entry point (posereg-eval)."""
    run, split, ckpt, overrides = parse_args(argv)
    exit_2_on_bad_input(evaluate, run, split=split, ckpt=ckpt, overrides=overrides)


if __name__ == "__main__":
    main()
