"""The papers' published numbers (a packaged copy of ../shared/reference/paper_numbers.yaml)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from posereg.errors import ConfigError

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
REF_PREFIX = "ref:"


@cache
def paper_numbers(path: Path = PAPER_NUMBERS) -> dict:
    """The parsed paper-numbers file."""
    with open(path) as f:
        return yaml.safe_load(f)


def lookup(ref: str, numbers: dict | None = None) -> Any:
    """Value at a `/`-separated path (keys may contain dots), e.g. `ssp_net/table4_quantization_mm/setup`."""
    node: Any = paper_numbers() if numbers is None else numbers
    for part in ref.removeprefix(REF_PREFIX).strip("/").split("/"):
        if isinstance(node, dict):
            key = next((k for k in node if str(k) == part), None)
            if key is None:
                raise ConfigError(f"paper number {ref!r}: no key {part!r} in {PAPER_NUMBERS.name}")
            node = node[key]
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)]
        else:
            raise ConfigError(f"paper number {ref!r}: cannot index {type(node).__name__} with {part!r}")
    return node


def resolve(value: Any, numbers: dict | None = None) -> Any:
    """A template's paper entry: `ref:path` strings are looked up, anything else is returned as is."""
    if isinstance(value, str) and value.startswith(REF_PREFIX):
        return lookup(value, numbers)
    return value
