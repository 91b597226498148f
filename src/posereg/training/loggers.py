"""Experiment loggers: the append-only CSV log every run keeps, and the W&B factory of `logger=wandb`."""

from __future__ import annotations

import csv
import io
import netrc
import os
import secrets
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from posereg.errors import DataError
from posereg.jsonio import atomic_write_bytes
from posereg.runs.files import RunDir


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, made append-only: a resumed run keeps every row written before it stopped.

    Lightning's own writer deletes an existing metrics.csv when it starts and rewrites the file with only
    the rows it holds when new columns appear; this one keeps the file and merges columns.
    """

    def _check_log_dir_exists(self) -> None:
        """Keep an existing metrics.csv (the history of earlier attempts)."""

    def save(self) -> None:
        """Append the pending rows; rewrite the file atomically (old rows kept) when new columns appear."""
        if not self.metrics:
            return
        path = Path(self.metrics_file_path)
        old_rows: list[dict[str, str]] = []
        if path.is_file() and not self.metrics_keys:
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.metrics_keys = sorted(reader.fieldnames or [])
        new_keys = set().union(*self.metrics) - set(self.metrics_keys)
        if new_keys or not path.is_file():
            if path.is_file():
                with open(path, newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self.metrics_keys = sorted(set(self.metrics_keys) | new_keys)
            buffer = io.StringIO(newline="")
            writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(old_rows + self.metrics)
            atomic_write_bytes(path, buffer.getvalue().encode())
        else:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.metrics_keys).writerows(self.metrics)
        self.metrics = []


class AppendingCSVLogger(CSVLogger):
    """`<run>/csv/metrics.csv`, kept across resumes (see AppendingWriter)."""

    def __init__(self, run_dir: str | Path):
        super().__init__(save_dir=str(run_dir), name="csv", version="")

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def wandb_has_credentials() -> bool:
    """True when W&B could log in without asking (API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def wandb_mode(requested: str) -> str:
    """Resolve 'auto' to online or offline; an explicit WANDB_MODE in the environment wins."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested in ("online", "offline", "disabled"):
        return requested
    return "online" if wandb_has_credentials() else "offline"


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of a run directory, created once (by rank 0) and reused on resume and requeue."""
    file = RunDir(run_dir).wandb_id_file
    if file.exists():
        return file.read_text().strip()
    run_id = secrets.token_hex(4)
    atomic_write_bytes(file, (run_id + "\n").encode())
    return run_id


def wandb_logger(run_dir: str, project: str, entity: str | None, group: str, mode: str = "auto",
                 log_checkpoints: bool = True) -> Logger:
    """A WandbLogger for one posereg run: its stored id (resume="allow"), offline without credentials."""
    from lightning.pytorch.loggers import WandbLogger

    mode = wandb_mode(mode)
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    (Path(run_dir) / "wandb").mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(project=project, entity=entity, group=group, name=Path(run_dir).name,
                         id=wandb_run_id(Path(run_dir)), resume="allow", save_dir=run_dir, mode=mode,
                         log_model="all" if (mode == "online" and log_checkpoints) else False)
    if mode == "offline":
        print(f"W&B is offline (no credentials); sync later with: wandb sync {Path(run_dir) / 'wandb'}")
    return logger


def csv_to_tensorboard(run_dir: str | Path) -> Path:
    """Write a run's CSV history (csv/metrics.csv) as TensorBoard events in <run>/tensorboard: the logs of a
    run that finished before `logger=tensorboard` was asked for. Returns the events folder."""
    from torch.utils.tensorboard import SummaryWriter

    run = RunDir(run_dir)
    source = run.csv_dir / "metrics.csv"
    if not source.is_file():
        raise DataError(f"{source} does not exist: is {run.path} a posereg run directory?")
    out = run.tensorboard_dir / "from_csv"
    writer = SummaryWriter(str(out))
    with open(source, newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, text in row.items():
                if key in ("step", "epoch") or not text:
                    continue
                try:
                    writer.add_scalar(key, float(text), step)
                except ValueError:
                    continue
    writer.close()
    return out
