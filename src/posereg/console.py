"""What a run prints: the resolved config at start and a metrics table at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)  # long lines stay whole in logs (grep-able)

def network_backbone(cfg: DictConfig) -> str | None:
    """The backbone the method's network is built on (None for networks of their own: SSP-Net, Luvizon'17,
    the Hourglass), whether the network takes the backbone group or only its name."""
    backbone = OmegaConf.select(cfg, "method.net.backbone", default=None)
    if isinstance(backbone, DictConfig):
        backbone = backbone.get("name")
    return str(backbone) if backbone else None


def print_run_summary(cfg: DictConfig, run_path: Path, complexity: Any = None) -> None:
    """One line saying what this run trains, and where its full config is."""
    data = cfg.data
    size = data.input_size if isinstance(data.input_size, int) else "x".join(map(str, data.input_size))
    backbone = network_backbone(cfg)
    net = f", backbone {backbone}" if backbone else ""
    params = f", {complexity.summary()}" if complexity is not None else ""
    console.print(f"[bold]posereg[/bold] {cfg.experiment_name}/{run_path.name}: method {cfg.method.name}{net}, "
                  f"data {'+'.join(map(str, data.sources))} at {size}², batch {data.batch_size}, "
                  f"{cfg.trainer.max_epochs} epochs, seed {cfg.seed}{params}")
    console.print(f"  full config: {run_path / '.hydra' / 'config.yaml'}")


def format_value(name: str, value: float) -> str:
    """Metric value with the precision its unit deserves."""
    if "coco_a" in name:
        return f"{value:.4f}"
    return f"{value:.2f}"


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """A rich table of scalar metrics: one row per metric, columns final / best / test."""
    columns = [c for c in ("final", "best", "test") if metrics.get(c)]
    names: list[str] = []
    for column in columns:
        for name in metrics[column]:
            base = name.split("/", 1)[1] if "/" in name else name
            if base not in names and name not in ("epoch", "step"):
                names.append(base)
    table = Table(title=title, show_lines=False)
    table.add_column("metric")
    for column in columns:
        table.add_column(column, justify="right")
    for base in names:
        cells = []
        for column in columns:
            value = None
            for stage in ("val", "test"):
                value = metrics[column].get(f"{stage}/{base}", value)
            cells.append("" if value is None else format_value(base, float(value)))
        table.add_row(base, *cells)
    return table


def print_metrics(metrics: dict[str, Any], title: str) -> None:
    """Print the final metrics table."""
    console.print(metrics_table(metrics, title))
