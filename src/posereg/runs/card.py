"""The model card, `MODEL.md`: what a finished run is, how well it does under which protocol, how to load it.

Written beside the checkpoints when a run finishes (the run lifecycle's exit, `RunDir.write_card`) and beside
the exported file by posereg-export. Its facts come from the stored config, metrics.json, status.json and the
network's exported interface (`posereg.inference.export.description`); metric names and units follow
docs/architecture.md §4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from posereg.console import format_value, network_backbone
from posereg.runs.metrics import RunMetrics
from posereg.skeletons import get_joint_set

_UNITS = (  # name prefix -> unit (docs/architecture.md §4); the first match wins
    (("mpjpe", "pa_mpjpe", "n_mpjpe", "root_depth_error"), "mm"),
    (("coco_",), "0–1 (pycocotools)"),
    (("pckh", "pck", "auc", "pcp"), "% (0–100)"),
    (("loss",), "loss value"),
)
_STAGES = (("best", "validation, best epoch"), ("final", "validation, last epoch"), ("test", "test"))


def metric_unit(name: str) -> str:
    """The unit of a metric name without its stage (`pckh@0.5` -> '% (0–100)', `mpjpe` -> 'mm')."""
    for prefixes, unit in _UNITS:
        if name.startswith(prefixes):
            return unit
    return ""


def initialisation(cfg: DictConfig) -> str:
    """Where the network's initial weights came from, in words."""
    backbone, node = network_backbone(cfg), cfg.get("backbone") or {}
    if cfg.get("init_from"):
        start = f"fine-tuned from the checkpoint `{Path(str(cfg.init_from)).name}` (init_from)"
    elif backbone and node.get("checkpoint"):
        start = f"backbone started from the weight file `{Path(str(node.checkpoint)).name}` (backbone.checkpoint)"
    elif backbone and node.get("pretrained"):
        start = f"backbone started from timm's ImageNet weights of `{backbone}` (backbone.pretrained=true)"
    else:
        start = "started from random weights"
    return f"{backbone or 'its own network (no backbone)'}; {start}"


def _rows(pairs: list[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in pairs]]


def _metrics_section(cfg: DictConfig, metrics: RunMetrics | None, has_best: bool) -> list[str]:
    if metrics is None or not (metrics.best or metrics.final or metrics.test):
        return ["## Metrics", "", "No metrics.json yet: the run has not finished."]
    columns = [(section, title) for section, title in _STAGES if getattr(metrics, section)]
    names: list[str] = []
    for section, _ in columns:
        names += [n.split("/", 1)[1] for n in getattr(metrics, section) if "/" in n and n.split("/", 1)[1] not in names]
    monitor = f", best by `{metrics.monitor}`" if metrics.monitor else ""
    lines = ["## Metrics", "",
             f"Protocol: validation and test splits of `{'+'.join(map(str, cfg.data.sources))}`, joint set "
             f"`{cfg.data.joint_set}`, prediction from output `{cfg.get('cut') or 'last'}`, flip test "
             f"{'on' if cfg.get('flip_test') else 'off'}{monitor}; `test` evaluates "
             f"{'the best checkpoint (best.ckpt)' if has_best else 'the last weights (the run kept no best.ckpt)'}. "
             "Names and units: docs/architecture.md §4.", "",
             "| metric | unit | " + " | ".join(title for _, title in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for name in names:
        cells = []
        for section, _ in columns:
            values = getattr(metrics, section)
            value = next((values[f"{s}/{name}"] for s in ("val", "test") if f"{s}/{name}" in values), None)
            cells.append("" if value is None else format_value(name, float(value)))
        lines.append(f"| `{name}` | {metric_unit(name)} | " + " | ".join(cells) + " |")
    return lines


def _python_section(run_path: Path, joints: int, dims: int) -> list[str]:
    shape = f"(1, {joints}, 2)"
    return ["## Load it in Python", "",
            "```python", "import numpy as np", "", "import posereg", "",
            f'model = posereg.load("{run_path}")',
            "image = np.zeros((240, 320, 3), dtype=np.uint8)  # an RGB uint8 (H, W, 3) array, a PIL image or a path",
            "result = model.predict(image)                     # one person in the whole image; boxes=[[x, y, w, h]]",
            f"print(result.joints_2d.shape)                     # {shape}: people, joints, x/y in image pixels",
            *([f"print(result.joints_3d.shape)                     # (1, {joints}, 3): root-relative mm, camera "
               "frame"] if dims == 3 else []),
            "```"]


def _shape(dims: list[Any]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _onnx_section(interface: dict[str, Any] | None, run_path: Path, exported: Path | None) -> list[str]:
    lines = ["## Use it with onnxruntime", ""]
    if exported is None:
        lines += [f"Export it first: `posereg-export run={run_path} format=onnx` writes `export/<output>.onnx`, "
                  "its JSON description and a card like this one beside it. The file's interface:", ""]
    if interface is None:
        return lines
    inp = interface["input"]
    _, _, height, width = inp["shape"]
    shapes = interface.get("shapes", {})
    outputs = ", ".join(f"`{n}` {_shape(shapes.get(n, []))} ({interface['units'][n]})" for n in interface["outputs"])
    padding = interface.get("box_padding")
    padded = f" times {padding:g} for a detector's box (the run's box padding)" if padding else ""
    if exported is not None:
        lines += [f"File: `{exported.name}`; its description and the check against PyTorch: `{exported.name}.json`.",
                  ""]
    lines += [f"* input `{inp['name']}`: float32 {_shape(inp['shape'])}, RGB crops normalised as "
              f"{inp['normalisation']}, mean {inp['rgb_mean']}, std {inp['rgb_std']}; any batch size",
              f"* outputs: {outputs}",
              f"* the crop: a person box (x, y, w, h) widened to a square of side s = max(w, h){padded} around its "
              f"centre (cx, cy), resized to {width} x {height}; image pixels = (cx, cy) + (joints_crop_px - "
              f"{width} / 2) * s / {width} (pixel centres at +0.5)", ""]
    if exported is not None:
        lines += ["```python", "import numpy as np", "import onnxruntime as ort", "",
                  f'session = ort.InferenceSession("{exported}", providers=["CPUExecutionProvider"])',
                  f"crop = np.zeros(({height}, {width}, 3), dtype=np.uint8)  # one person's square crop, RGB",
                  f"mean, std = np.array({inp['rgb_mean']}), np.array({inp['rgb_std']})",
                  "x = ((crop / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)",
                  'joints_crop_px = session.run(["joints_crop_px"], {"image": x})[0][0]',
                  "cx, cy, s = 160.0, 120.0, 200.0  # the crop's centre and side in the image",
                  f"joints_image = np.array([cx, cy]) + (joints_crop_px - {width} / 2) * s / {width}",
                  "print(joints_image.shape)", "```"]
    return lines


def model_card(run_path: Path, cfg: DictConfig, metrics: RunMetrics | None, status: dict[str, Any],
               interface: dict[str, Any] | None = None, exported: Path | None = None) -> str:
    """MODEL.md's text for the run at `run_path` (absolute paths in its snippets); `exported`: the file
    posereg-export wrote (the onnxruntime section then runs on it)."""
    run_path = Path(run_path).resolve()
    js = get_joint_set(cfg.data.joint_set)
    setup = metrics.setup if metrics else {}
    dims = int(interface["dims"]) if interface else int(cfg.data.get("dims") or 2)
    complexity = metrics.complexity if metrics else {}
    size = cfg.data.input_size
    commit = status.get("git_commit") or "unknown"
    budget = (f"{setup.get('steps', '?')} steps, {setup.get('epochs', cfg.trainer.get('max_epochs'))} epochs, "
              f"batch {cfg.data.batch_size}" + (f", budget_scale {cfg.budget_scale}" if cfg.get("budget_scale", 1)
                                                 != 1 else ""))
    rows = [("method", f"`{cfg.method.name}`"), ("network", initialisation(cfg)),
            ("data", f"`{'+'.join(map(str, cfg.data.sources))}`, joint set `{js.name}` ({js.num_joints} joints), "
                     f"{dims}D"),
            ("input", f"{size} x {size} RGB crops" if isinstance(size, int) else f"{tuple(size)} RGB crops"),
            ("budget", budget),
            ("parameters / compute", f"{complexity['params'] / 1e6:.2f} M / {complexity['gmacs']:.3f} GMACs"
             if complexity else "not measured"),
            ("trained on", f"{setup.get('device_model', 'unknown device')}, {setup.get('precision', '?')} precision"),
            ("code", f"commit `{commit}`" + (" (**+dirty**: uncommitted changes)" if commit.endswith("+dirty")
                                              else "")),
            ("run", f"`{run_path}` (config: `.hydra/config.yaml`)")]
    joints = ", ".join(f"{i} `{name}`" for i, name in enumerate(js.names))
    has_best = (run_path / "checkpoints" / "best.ckpt").is_file()
    lines = [f"# Model card: {cfg.experiment_name} / {run_path.name}", "", *_rows(rows), "", "## Joints", "",
             f"In the order of every output: {joints}.", "", *_metrics_section(cfg, metrics, has_best), "",
             *_python_section(run_path, js.num_joints, dims), "", *_onnx_section(interface, run_path, exported), ""]
    return "\n".join(lines)

