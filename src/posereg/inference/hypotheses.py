"""DeepSkeleton multiple hypotheses (Wan et al., §3.4): pick per sample the pose that best matches a 2D pose.

K finished regression runs (one per skeleton-map configuration: stick width x crop scale) each predict
the split; a 2D source gives a 2D pose per sample: the ground truth (`source=gt`) or the predictions of
another posereg run on the same samples (`source=<run dir>`, e.g. a 2D I1 run; in the paper a pretrained
Stacked Hourglass). For each sample the hypothesis k with the smallest reprojection error
``sum_j ||P_k Y_k,j - Y2D_j||²`` is kept, P_k being the projection through that run's crop camera (the
camera-frame joints decoded with the GT root depth, as the metrics decode them) and the errors taken in
original-image pixels, so hypotheses of different crop scales compare. Joints: those with a 2D label
for `gt`, every joint the 2D run predicts otherwise.

Reported, with the data's own metrics (`data.metrics`: MPJPE/PA-MPJPE on 3D data, PCKh on 2D data): each
hypothesis (`@h<k>`), `@single` (the first run given: put the default configuration first), `@selected`
(the method; also without suffix), `@oracle` (per sample the hypothesis closest to the GT: 3D error on
3D data, 2D error in image pixels otherwise) and `@ensemble` (the mean of the K poses; K runs of one
configuration make it the paper's "Ensemble" baseline). K = 1 reports the single hypothesis only.

Before any prediction: K >= 1, every run has a config and a checkpoint, predicts a pose (not a stage-1
map run), all share one joint set and dimensionality, a 3D regression has 3D data, and the split has as
many samples in every run. While predicting, each run's ground truth (camera-frame 3D joints, 2D joints
in image pixels) must match the first run's sample by sample: the same samples in the same order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from posereg.config import instantiate
from posereg.data import build_datamodule
from posereg.data.workers import closing_loader
from posereg.errors import ConfigError
from posereg.geometry import apply_affine, project
from posereg.jsonio import to_jsonable, write_json
from posereg.methods import build_module, method_dims
from posereg.methods.initial_weights import without_initial_weights
from posereg.runs import RunDir, RunMetrics, register_resolvers, run_key
from posereg.runs.files import CHECKPOINTS
from posereg.runs.open import OpenedRun, open_run

SPLITS = ("val", "test")
VARIANTS = ("single", "selected", "oracle", "ensemble")
EXPERIMENT = "deepskeleton_hypotheses"
ATOL_MM, ATOL_PX = 1.0, 0.5  # GT agreement between runs (float noise of crops and decoding)
_SKIP_KEYS = ("image",)


@dataclass
class RunSetup:
    """A run directory checked for use as a hypothesis or 2D source (nothing heavy built yet)."""

    opened: OpenedRun
    joint_set: str
    dims: int
    has_3d: bool
    samples: int
    datamodule: Any = field(repr=False, default=None)

    @property
    def path(self) -> Path:
        """The run directory."""
        return self.opened.run.path

    @property
    def cfg(self) -> DictConfig:
        """The run's stored config (paths.run_dir set to it)."""
        return self.opened.cfg

    @property
    def input_source(self) -> str:
        """What the run regresses from at evaluation: rgb, gt or predicted maps (rgb for non-DeepSkeleton runs)."""
        inp = OmegaConf.select(self.cfg, "method.input")
        if inp is None:
            return "rgb"
        return str(inp.get("eval_source") or inp.get("source"))

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.cfg.get("seed") or 0)


@dataclass
class Predictions:
    """One run's predictions on a split, concatenated over batches, and the GT it saw."""

    image_2d: Tensor  # (N,J,2) the pose projected to original-image pixels
    camera_3d: Tensor | None  # (N,J,3) camera frame, mm (GT root depth), None for 2D runs
    gt: dict[str, Any]  # the split's labels (no images)


# ------------------------------------------------------------------------------------------- run list
def split_run_list(text: str) -> list[Path]:
    """`a,b,c` -> run directories; run keys contain commas, so pieces are joined until they name a directory."""
    pieces, out, current = text.split(","), [], ""
    for piece in pieces:
        current = f"{current},{piece}" if current else piece
        if Path(current).expanduser().is_dir():
            out.append(Path(current).expanduser())
            current = ""
    if current:
        raise ConfigError(f"runs={text}: {current!r} is not a run directory")
    return out


def check_run(path: Path, split: str, ckpt: str, trust: bool, role: str) -> RunSetup:
    """A RunSetup, or a ConfigError naming the run: no config, no checkpoint, no pose, 3D method on 2D data."""
    if ckpt not in CHECKPOINTS:
        raise ConfigError(f"ckpt={ckpt}: use best or last")
    opened = open_run(path, ckpt, trust=trust, setting=role)  # as posereg-eval: best.ckpt, falling back to last.ckpt
    cfg = opened.cfg
    if str(OmegaConf.select(cfg, "method.net._target_", default="")).endswith("SkeletonFCN"):
        raise ConfigError(f"{role}={path}: a stage-1 skeleton-map run predicts no pose; give stage-2 "
                          "(deepskeleton_*_regress) or other pose runs")
    dm = build_datamodule(cfg)
    info = dm.info
    dims = method_dims(cfg, info)
    if dims == 3 and not info.has_3d:
        raise ConfigError(f"{role}={path}: a 3D regression on 2D-only data {list(info.dataset_names)}: "
                          "3D hypotheses need 3D labels")
    samples = len(dm.dataset(split))
    return RunSetup(opened, info.joint_set, dims, info.has_3d, samples, dm)


def check_setups(hyps: Sequence[RunSetup], source: RunSetup | None, split: str) -> None:
    """ConfigError unless every hypothesis and the 2D source agree on joint set, dimensionality and sample count."""
    ref = hyps[0]
    for h in hyps[1:]:
        if h.joint_set != ref.joint_set:
            raise ConfigError(f"runs: {h.path} uses joint set {h.joint_set}, {ref.path} {ref.joint_set}: "
                              "hypotheses must share one joint set")
        if h.dims != ref.dims:
            raise ConfigError(f"runs: {h.path} regresses {h.dims}D, {ref.path} {ref.dims}D: hypotheses must agree")
        if h.samples != ref.samples:
            raise ConfigError(f"runs: {h.path} has {h.samples} {split} samples, {ref.path} {ref.samples}: "
                              "other data or split, not the same samples")
    if source is not None:
        if source.joint_set != ref.joint_set:
            raise ConfigError(f"source={source.path}: joint set {source.joint_set}, the hypotheses {ref.joint_set}")
        if source.samples != ref.samples:
            raise ConfigError(f"source={source.path}: {source.samples} {split} samples, the hypotheses "
                              f"{ref.samples}: its samples do not align with the runs' samples")


# ----------------------------------------------------------------------------------------- predicting
def _to(value: Any, device: torch.device) -> Any:
    """Tensors of a (nested) batch on `device`."""
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def concat(parts: Sequence[Any]) -> Any:
    """Concatenate per-batch values along the sample axis: tensors, lists, dicts of those."""
    first = parts[0]
    if torch.is_tensor(first):
        return torch.cat([p.detach().cpu() for p in parts])
    if isinstance(first, dict):
        return {k: concat([p[k] for p in parts]) for k in first}
    if isinstance(first, list | tuple):
        return [x for p in parts for x in p]
    return first


def take(value: Any, index: Any) -> Any:
    """Samples `index` (a slice) of a concatenated value."""
    if torch.is_tensor(value):
        return value[index]
    if isinstance(value, dict):
        return {k: take(v, index) for k, v in value.items()}
    if isinstance(value, list):
        return value[index]
    return value


def gt_image_2d(gt: Mapping[str, Any]) -> Tensor:
    """(N,J,2) GT joints in original-image pixels."""
    return apply_affine(gt["crop_to_image"].double(), gt["joints_2d"].double())


def first_mismatch(ref: Mapping[str, Any], other: Mapping[str, Any]) -> int | None:
    """Index of the first sample whose GT differs (3D joints in mm, 2D joints in image px), None when all agree."""
    n = min(len(ref["weights"]), len(other["weights"]))
    a2, b2 = gt_image_2d(take(ref, slice(0, n))), gt_image_2d(take(other, slice(0, n)))
    both2 = (ref["weights"][:n, :, 0] > 0) & (other["weights"][:n, :, 0] > 0)
    bad = ((a2 - b2).abs().amax(-1) > ATOL_PX) & both2
    if ref["weights"].shape[-1] > 2 and "joints_3d" in ref and "joints_3d" in other:
        both3 = (ref["weights"][:n, :, 2] > 0) & (other["weights"][:n, :, 2] > 0)
        d3 = (ref["joints_3d"][:n].double() - other["joints_3d"][:n].double()).abs().amax(-1)
        bad |= (d3 > ATOL_MM) & both3
    rows = bad.any(dim=1).nonzero()
    return int(rows[0]) if len(rows) else None


def fingerprint(gt: Mapping[str, Any]) -> str:
    """A short hash of the split's GT (2D image px to 1 px, 3D to 1 mm, labelled joints only)."""
    h = hashlib.sha1()
    labelled = gt["weights"][..., 0] > 0
    h.update(torch.where(labelled[..., None], gt_image_2d(gt).round(), 0.0).numpy().tobytes())
    if "joints_3d" in gt and gt["weights"].shape[-1] > 2:
        h.update(torch.where((gt["weights"][..., 2] > 0)[..., None], gt["joints_3d"].double().round(), 0.0)
                 .numpy().tobytes())
    return h.hexdigest()[:12]


def predict(setup: RunSetup, split: str, device: str, reference: Mapping[str, Any] | None, role: str
            ) -> Predictions:
    """Run the module of `setup` over the split; ConfigError as soon as a batch's GT differs from `reference`."""
    # the checkpoint holds every weight: the initial ones are neither downloaded nor read
    model = setup.opened.load_into(build_module(without_initial_weights(setup.cfg), setup.datamodule.info))
    dev = torch.device(device)
    model.to(dev).eval()
    dm = setup.datamodule
    dm.setup("validate" if split == "val" else "test")
    loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
    preds_2d, preds_3d, gts, seen = [], [], [], 0
    with torch.no_grad(), closing_loader(loader):
        for i, batch in enumerate(loader):
            batch = _to(batch, dev)
            out = model.predict_step(batch, i)
            gt = {k: v for k, v in batch.items() if k not in _SKIP_KEYS}
            if reference is not None:
                ref = take(reference, slice(seen, seen + len(gt["weights"])))
                bad = first_mismatch(ref, _to(gt, torch.device("cpu")))
                if bad is not None:
                    raise ConfigError(f"{role}={setup.path}: {split} sample {seen + bad} is not the first run's "
                                      "sample (its ground truth differs): the runs do not see the same samples")
            cam = out.get("joints_3d_cam")
            if cam is not None:
                crop = project(cam.double(), batch["camera"].double())
                preds_2d.append(apply_affine(batch["crop_to_image"].double(), crop))
                preds_3d.append(cam.double())
            else:
                preds_2d.append(out["joints_2d_image"].double())
            gts.append(gt)
            seen += len(gt["weights"])
    return Predictions(concat(preds_2d), concat(preds_3d) if preds_3d else None, concat(gts))


# ------------------------------------------------------------------------------------------ selecting
def reprojection_errors(proj: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """(K,N) sum over joints of squared distances between (K,N,J,2) projections and (N,J,2) 2D poses where `mask`."""
    d = (proj - target[None]).square().sum(-1)
    return torch.where(mask[None], d, torch.zeros_like(d)).sum(-1)


def pose_errors(poses: Tensor, gt: Tensor, mask: Tensor, root: int | None) -> Tensor:
    """(K,N) mean per-joint distance of (K,N,J,D) poses to (N,J,D) GT where `mask`, root-aligned when `root` is set."""
    if root is not None:
        poses = poses - poses[..., root : root + 1, :]
        gt = gt - gt[:, root : root + 1, :]
    d = (poses - gt[None]).norm(dim=-1)
    d = torch.where(mask[None], d, torch.zeros_like(d))
    return d.sum(-1) / mask.sum(-1).clamp_min(1)[None]


def pick(values: Tensor, index: Tensor) -> Tensor:
    """Per sample n, values[index[n], n] of (K,N,...) values."""
    return values[index, torch.arange(values.shape[1])]


def _scalar(name: str, value: Any) -> bool:
    return "/" not in name and "_curve" not in name and (isinstance(value, int | float) or (
        torch.is_tensor(value) and value.numel() == 1))


def score(metric_nodes: Mapping[str, Any], image_2d: Tensor, camera_3d: Tensor | None, gt: Mapping[str, Any],
          chunk: int = 4096) -> dict[str, Any]:
    """The data's metrics (fresh instances of `data.metrics`) on one set of predictions, in chunks of samples."""
    metrics = {str(k): instantiate(v) for k, v in metric_nodes.items()}
    n = len(image_2d)
    for start in range(0, n, chunk):
        part = slice(start, min(start + chunk, n))
        preds = {"joints_2d_image": image_2d[part].float(), "joint_conf": None,
                 "joints_3d_cam": None if camera_3d is None else camera_3d[part].float()}
        for m in metrics.values():
            m.update_from_batch(preds, take(gt, part))
    out: dict[str, Any] = {}
    for name, m in metrics.items():
        for key, value in m.compute().items():
            if key in out:
                raise ConfigError(f"data.metrics.{name} reports {key!r} like another metric: rename or drop one")
            out[key] = value
    return out


@dataclass
class Selection:
    """Per-sample choices and the pose sets of every variant."""

    chosen: Tensor  # (N,) index of the selected hypothesis
    oracle: Tensor  # (N,) index of the hypothesis closest to the GT
    reprojection: Tensor  # (K,N) summed squared reprojection errors, px²
    poses: dict[str, tuple[Tensor, Tensor | None]]  # variant -> (image_2d, camera_3d)


def select(preds: Sequence[Predictions], target_2d: Tensor, mask_2d: Tensor, root: int | None) -> Selection:
    """Selected / oracle / ensemble / single poses from K predictions (see the module docstring)."""
    gt = preds[0].gt
    img = torch.stack([p.image_2d for p in preds])  # (K,N,J,2)
    cam = torch.stack([p.camera_3d for p in preds]) if preds[0].camera_3d is not None else None
    reproj = reprojection_errors(img, target_2d.double(), mask_2d)
    chosen = reproj.argmin(dim=0)
    if cam is not None:
        err = pose_errors(cam, gt["joints_3d"].double(), gt["weights"][..., 2] > 0, root)
    else:
        err = pose_errors(img, gt_image_2d(gt), gt["weights"][..., 0] > 0, None)
    oracle = err.argmin(dim=0)
    poses: dict[str, tuple[Tensor, Tensor | None]] = {f"h{k}": (img[k], None if cam is None else cam[k])
                                                      for k in range(len(preds))}
    poses["single"] = poses["h0"]
    if len(preds) > 1:
        for name, index in (("selected", chosen), ("oracle", oracle)):
            poses[name] = (pick(img, index), None if cam is None else pick(cam, index))
        poses["ensemble"] = (img.mean(0), None if cam is None else cam.mean(0))
    return Selection(chosen, oracle, reproj, poses)


# ------------------------------------------------------------------------------------------- the run
def _root_index(cfg: DictConfig) -> int:
    """The root joint of the data's MPJPE metric (0 when it has none): the oracle root-aligns on it."""
    for node in (cfg.data.get("metrics") or {}).values():
        if str(node.get("_target_", "")).endswith("MPJPE"):
            return int(node.get("root_index", 0))
    return 0


def _joined(values: Sequence[Any]) -> str:
    """One value, or the distinct values joined by '+'."""
    distinct = list(dict.fromkeys(str(v) for v in values))
    return distinct[0] if len(distinct) == 1 else "+".join(distinct)


def run_overrides(hyps: Sequence[RunSetup], source: RunSetup | None, split: str) -> list[str]:
    """The lines of the output's .hydra/overrides.yaml (grid axes a report can group by), without the seed."""
    digest = hashlib.sha1("\n".join(str(h.path.resolve()) for h in hyps).encode()).hexdigest()[:8]
    return [f"method={_joined([h.cfg.method.name for h in hyps])}",
            f"method.input.source={_joined([h.input_source for h in hyps])}",
            f"source={'gt' if source is None else 'run'}", f"split={split}", f"hypotheses={len(hyps)}",
            f"runs={digest}"]


def default_out(hyps: Sequence[RunSetup], overrides: Sequence[str], seed: str) -> Path:
    """<runs dir of the first run>/deepskeleton_hypotheses/<run key>."""
    return hyps[0].path.parent.parent / EXPERIMENT / run_key(list(overrides), seed)


def hypotheses_metrics(split: str, variants: Mapping[str, dict[str, Any]], extras: dict[str, Any],
                       setup: dict[str, Any]) -> RunMetrics:
    """metrics.json: `<split>/<metric>@<variant>` (+ the method's own value unsuffixed) in `final` (and `test`)."""
    scalars: dict[str, float] = {}
    method = "selected" if "selected" in variants else "single"
    for variant, values in variants.items():
        for name, value in values.items():
            if _scalar(name, value):
                scalars[f"{split}/{name}@{variant}"] = float(value)
                if variant == method:
                    scalars[f"{split}/{name}"] = float(value)
            else:
                extras.setdefault(variant, {})[name] = to_jsonable(value)
    return RunMetrics(final=scalars, test=dict(scalars) if split == "test" else {}, setup=setup, extras=extras)


def run_hypotheses(runs: Sequence[str | Path], source: str = "gt", split: str = "test", out: str | Path | None = None,
                   ckpt: str = "best", device: str = "cpu", trust: bool = False, force: bool = False) -> Path:
    """Evaluate K hypotheses against a 2D source and write a run directory; returns its path."""
    register_resolvers()
    if split not in SPLITS:
        raise ConfigError(f"split={split}: choose val or test")
    if not runs:
        raise ConfigError("runs= is empty (K = 0): give the regression run directories, one per hypothesis")
    hyps = [check_run(Path(r), split, ckpt, trust, "runs") for r in runs]
    src = None if source == "gt" else check_run(Path(source), split, ckpt, trust, "source")
    check_setups(hyps, src, split)
    lines, seed = run_overrides(hyps, src, split), _joined([h.seed for h in hyps])
    run = RunDir(Path(out) if out else default_out(hyps, lines, seed))
    with run.record() as attempt:
        if run.read_status(repair=True).get("status") == "done" and not force:
            return run.path
        run.save_config([*lines, f"seed={seed}"])
        attempt.start(EXPERIMENT, [*lines, f"seed={seed}"], launch="posereg-hypotheses")
        preds: list[Predictions] = []
        for h in hyps:
            preds.append(predict(h, split, device, preds[0].gt if preds else None, "runs"))
        gt = preds[0].gt
        if src is None:
            target, mask = gt_image_2d(gt), gt["weights"][..., 0] > 0
        else:
            p2d = predict(src, split, device, gt, "source")
            target, mask = p2d.image_2d, torch.isfinite(p2d.image_2d).all(-1)
        root = _root_index(hyps[0].cfg) if hyps[0].dims == 3 else None
        sel = select(preds, target, mask, root)
        nodes = hyps[0].cfg.data.get("metrics") or {}
        variants = {name: score(nodes, img, cam, gt) for name, (img, cam) in sel.poses.items()}
        joints = mask.sum(-1).clamp_min(1).double()
        for name, (img, _) in sel.poses.items():
            per = (img - target.double()).norm(dim=-1)
            variants[name]["reproj_px"] = (torch.where(mask, per, 0.0).sum(-1) / joints).mean()
        k = len(hyps)
        extras = {"runs": [str(h.path) for h in hyps], "source": source, "split": split, "samples": len(target),
                  "gt_fingerprint": fingerprint(gt), "input_sources": [h.input_source for h in hyps],
                  "selected_share": (torch.bincount(sel.chosen, minlength=k).double() / len(target)).tolist(),
                  "oracle_share": (torch.bincount(sel.oracle, minlength=k).double() / len(target)).tolist()}
        # the first run's training setup (what the report's setup line shows), plus what was combined
        first = RunDir(hyps[0].path).metrics()
        setup = {**(first.setup if first else {}), "hypotheses": k, "source_2d": source, "seed": seed}
        write_json(run.path / "hypotheses.json", to_jsonable(extras))
        attempt.done(hypotheses_metrics(split, variants, {"hypotheses": extras}, setup))
    return run.path
