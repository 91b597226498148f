"""What a run prints: the resolved config at start and a metrics table at the end."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

console = Console(highlight=False)

_CONFIG_ORDER = ("experiment_name", "seed", "data", "backbone", "method", "trainer", "logger", "callbacks")


def print_config(cfg: DictConfig) -> None:
    """Print the resolved config, most important groups first."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    ordered = {k: container[k] for k in _CONFIG_ORDER if k in container}
    ordered.update({k: v for k, v in container.items() if k not in ordered})
    text = OmegaConf.to_yaml(OmegaConf.create(ordered))
    console.rule("[bold]posereg: resolved config")
    console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


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
