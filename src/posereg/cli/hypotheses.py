"""posereg-hypotheses: DeepSkeleton's selection among K regression runs by reprojection onto a 2D pose.

    posereg-hypotheses runs=<dir1>,<dir2>,... source=gt|<2D run dir> [split=val|test] [out=<run dir>]
                       [ckpt=best|last] [device=cpu|cuda] [num_threads=N] [trust_checkpoints=false] [force=false]

Writes a run directory (default <runs dir>/deepskeleton_hypotheses/<key>) with status.json, metrics.json
(`<split>/<metric>@h<k>|single|selected|oracle|ensemble`) and .hydra/overrides.yaml, so `posereg-report`
tabulates it (e.g. with --template deepskeleton_table). `runs=` may be repeated; run directories whose
names contain commas are recognised as a whole. A finished output is kept unless force=true.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posereg.console import console, print_metrics
from posereg.errors import ConfigError, DataError

USAGE = ("posereg-hypotheses runs=<dir1>,<dir2>,... source=gt|<2D run dir> [split=val|test] [out=<run dir>] "
         "[ckpt=best|last] [device=cpu] [num_threads=N] [trust_checkpoints=false] [force=false]")
_FLAGS = ("true", "1", "yes")


def parse_args(argv: list[str] | None) -> dict:
    """key=value items -> settings; `runs=` accumulates."""
    parser = argparse.ArgumentParser(prog="posereg-hypotheses", usage=USAGE, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="runs=... source=... and the optional key=value settings")
    args = parser.parse_args(argv)
    found: dict = {"runs": [], "source": "gt", "split": "test", "out": None, "ckpt": "best", "device": "cpu",
                   "num_threads": None, "trust_checkpoints": "false", "force": "false"}
    for item in args.items:
        key, eq, value = item.partition("=")
        if not eq or key not in found:
            parser.error(f"unknown argument {item!r}; usage: {USAGE}")
        if key == "runs":
            found["runs"].append(value)
        else:
            found[key] = value
    return found


def main(argv: list[str] | None = None) -> int:
    """Console entry point (posereg-hypotheses)."""
    s = parse_args(argv)
    try:
        from posereg.inference.hypotheses import run_hypotheses, split_run_list

        if s["num_threads"]:
            import torch

            torch.set_num_threads(int(s["num_threads"]))
        runs = [p for text in s["runs"] if text for p in split_run_list(text)]
        out = run_hypotheses(runs, source=s["source"], split=s["split"], out=s["out"], ckpt=s["ckpt"],
                             device=s["device"], trust=s["trust_checkpoints"].lower() in _FLAGS,
                             force=s["force"].lower() in _FLAGS)
    except (ConfigError, DataError) as err:
        console.print(f"[bold red]error[/bold red]: {err}")
        return 2
    from posereg.runs import RunDir

    metrics = RunDir(Path(out)).read_metrics()
    shown = {k: v for k, v in (metrics.get("final") or {}).items() if "@h" not in k}
    print_metrics({"final": shown}, title=f"hypotheses: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
