"""One-off check for the preset restructuring (issue "one source of truth"): every old per-variant preset
`experiment=integral_<setting>_<variant>` (composed from a git revision) trains the same thing as its new form
`experiment=integral_<setting> method=<variant>`, comparing what each method reads.

    python scripts/check_preset_equivalence.py <old-commit>

Both configs are reduced to what is trained (data, backbone, trainer, network, loss terms and weights,
schedule, optimizer, scheduler, top-level settings), dropping keys the method never reads (R1's head and
decoder, the stage count of single-stage nets, a disabled root-depth block). Prints one line per preset.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from posereg.runs import register_resolvers

SETTINGS = ("mpii", "h36m_s1", "h36m_s2", "synth2d", "synth3d", "synthmixed")
HEATMAP = {"mse": "GaussianHeatmapMSE", "ce": "OneHotHeatmapCE", "bce": "DiskHeatmapBCE"}


def compose_all(conf: Path, runs: list[list[str]]) -> list[dict]:
    """Resolved configs (as plain dicts) for each override list."""
    register_resolvers()
    out = []
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        for ov in runs:
            cfg = compose(config_name="config", overrides=ov)
            out.append(OmegaConf.to_container(cfg, resolve=True))
    return out


def _terms_old(m: dict) -> dict[str, Any]:
    loss, codec = m.get("loss") or {}, m.get("codec") or {}
    weights = loss.get("weights") or {}
    terms = {}
    if loss.get("coord"):
        terms["coord"] = ("CoordLoss", loss["coord"], float(weights.get("coord", 0.0)))
    if loss.get("heatmap"):
        kind = HEATMAP[loss["heatmap"]]
        params: tuple = ()
        if kind == "GaussianHeatmapMSE":
            params = (codec.get("sigma"), loss.get("heatmap_space"))
        elif kind == "DiskHeatmapBCE":
            params = (codec.get("radius"),)
        terms["heatmap"] = (kind, params, float(weights.get("heatmap", 0.0)))
    if loss.get("conf"):
        terms["conf"] = ("ConfidenceBCE", None, float(weights.get("conf", 0.0)))
    return terms


def _terms_new(m: dict) -> dict[str, Any]:
    terms = {}
    for name, t in (m.get("loss") or {}).items():
        if t is None:
            continue
        kind = t["_target_"].rsplit(".", 1)[1]
        params: Any = None
        if kind == "CoordLoss":
            params = t["kind"]
        elif kind == "GaussianHeatmapMSE":
            params = (t["sigma"], t["space"])
        elif kind == "DiskHeatmapBCE":
            params = (t["radius"],)
        elif kind == "OneHotHeatmapCE":
            params = ()
        terms[name] = (kind, params, float(t["weight"]))
    return terms


def _net_old(m: dict, bb: dict) -> dict:
    if m.get("net"):
        return {"kind": m["net"]["_target_"].rsplit(".", 1)[1],
                **{k: v for k, v in m["net"].items() if k != "_target_"}}
    head, codec = m.get("head") or {}, m.get("codec") or {}
    backbone = {"name": bb["name"], "checkpoint": bb["checkpoint"], "out_indices": bb["out_indices"],
                "timm_kwargs": {**(bb.get("kwargs") or {}),
                                **({"feature_location": bb["feature_location"]} if bb.get("feature_location") else {})}}
    if head.get("type") == "regression":
        return {"kind": "RegressionNet", "backbone": backbone}
    net = {"kind": "MultiStageNet" if m.get("stages") else "HeatmapNet", "backbone": backbone,
           "head": {k: head[k] for k in ("num_deconv", "heatmap_stride", "width", "depth_bins")},
           "decoder": {"mode": codec["decoder"], "ramp": codec["ramp"], "beta": codec["beta"]}}
    if m.get("stages"):
        net["num_stages"] = m["stages"]
    return net


def _net_new(m: dict) -> dict:
    net = {k: v for k, v in m["net"].items() if k != "_target_"}
    kind = m["net"]["_target_"].rsplit(".", 1)[1]
    if "backbone" in net:
        net["backbone"] = {k: v for k, v in net["backbone"].items() if k != "_target_"}
    if "head" in net:
        net["head"] = {k: v for k, v in net["head"].items() if not k.startswith("_")}
    if "decoder" in net:
        net["decoder"] = {k: v for k, v in net["decoder"].items() if k != "_target_"}
    return {"kind": kind, **net}


def _schedule(m: dict, terms: dict) -> dict:
    s = m.get("schedule") or {}
    if s.get("switch_epoch") is None:
        return {"joint": {k: w for k, (_, _, w) in terms.items()}}
    return {"switch_epoch": s["switch_epoch"], "before": s["before"], "after": s["after"]}


def trained(cfg: dict, old: bool) -> dict:
    """What a config trains, in one canonical form."""
    m = cfg["method"]
    terms = _terms_old(m) if old else _terms_new(m)
    rd = m.get("root_depth") or {}
    top = {k: v for k, v in cfg.items() if k not in ("method", "backbone", "experiment_name")}
    return {
        "top": top,
        "name": m["name"],
        "dims": m.get("dims"),
        "net": _net_old(m, cfg["backbone"]) if old else _net_new(m),
        "terms": {k: v[:2] for k, v in terms.items()},
        "schedule": _schedule(m, terms),
        "output_weights": (m.get("loss") or {}).get("output_weights") if old else m.get("output_weights"),
        "optimizer": m.get("optimizer"),
        "scheduler": m.get("scheduler"),
        "root_depth": rd if rd.get("enabled") else {"enabled": False},
        "experiment_name": cfg["experiment_name"],
    }


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two nested structures differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in diff(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def main(rev: str) -> int:
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {repo} archive {rev} conf | tar -x -C {tmp}", shell=True, check=True)
        old_conf = Path(tmp) / "conf"
        names = sorted(p.stem for p in (old_conf / "experiment").glob("*.yaml"))
        old = compose_all(old_conf, [[f"experiment={n}"] for n in names])
    new_runs = []
    for n in names:
        ov = [f"experiment={n}"]
        for s in SETTINGS:
            if n.startswith(f"integral_{s}_"):
                ov = [f"experiment=integral_{s}", f"method={n[len(f'integral_{s}_'):]}"]
        new_runs.append(ov)
    new = compose_all(repo / "conf", new_runs)
    bad = 0
    for n, ov, a, b in zip(names, new_runs, old, new, strict=True):
        d = diff(trained(a, old=True), trained(b, old=False))
        bad += bool(d)
        print(f"{'SAME' if not d else 'DIFF'}  {n:28s} == {' '.join(ov)}" + "".join(f"\n      {x}" for x in d))
    print(f"{len(names) - bad} of {len(names)} presets train the same thing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "HEAD"))
