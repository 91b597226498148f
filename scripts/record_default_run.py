"""Record a finished default run (`make train`) as docs/benchmarks/default_run.json, the numbers README and
docs/synthpose.md print (`posereg-report --update-docs` renders them; a test keeps the docs equal to the file).

    python scripts/record_default_run.py runs/default/seed=0

The run must be done, on a clean commit, and not stopped by a time guard; no machine path is written.
"""

from __future__ import annotations

import argparse
import sys

from posereg.errors import ConfigError
from posereg.jsonio import write_json
from posereg.report.docs import DEFAULT_RUN, default_run_record
from posereg.runs import RunDir


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="the default run's directory")
    args = p.parse_args(argv)
    try:
        record = default_run_record(RunDir(args.run))
    except ConfigError as err:
        sys.exit(f"error: {err}")
    write_json(DEFAULT_RUN, record)
    print(f"wrote {DEFAULT_RUN.relative_to(DEFAULT_RUN.parents[2])}: {record}")


if __name__ == "__main__":
    main()
