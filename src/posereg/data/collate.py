"""Batch collation that tolerates sources with different `meta` keys (SynthPose mixed with real data)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import default_collate


def collate_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """default_collate, keeping only the `meta` keys every sample of the batch has."""
    metas = [s.get("meta", {}) for s in samples]
    shared = set(metas[0]).intersection(*metas[1:]) if metas else set()
    trimmed = [{**s, "meta": {k: m[k] for k in m if k in shared}} for s, m in zip(samples, metas, strict=True)]
    return default_collate(trimmed)
