"""`<run>/train.log`: what a run printed (posereg's console, Lightning's and Python's log records, warnings).

Only rank 0 writes it, appending one section per launch, so the log of a resumed run tells its whole story.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from posereg.console import console

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Tee:
    """A text stream writing to the terminal (whatever sys.stdout is now) and, without colour codes, the log."""

    def __init__(self, log: IO[str]) -> None:
        self.log = log

    @property
    def terminal(self) -> IO[str]:
        return sys.stdout

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.log.write(_ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.terminal, name)


@contextmanager
def run_log(path: Path, header: str) -> Iterator[None]:
    """Tee the console and log records into `path` (appending) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1, encoding="utf-8") as log:
        log.write(f"\n===== {header} =====\n")
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger()
        root.addHandler(handler)
        lightning_loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
        for lg in lightning_loggers:  # Lightning's info lines ("GPU available", "fit stopped") go to the file too
            lg.addHandler(handler)
        logging.captureWarnings(True)
        console.file = _Tee(log)
        try:
            yield
        finally:
            console.file = None  # back to following sys.stdout
            logging.captureWarnings(False)
            for lg in (root, *lightning_loggers):
                lg.removeHandler(handler)
