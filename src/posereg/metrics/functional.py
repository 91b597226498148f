"""Pure tensor pose metrics: PCK/PCKh and curves, AUC, PCP, MPJPE family, 3D PCK/AUC.

Conventions (binding definitions: ``../shared/notes/metrics.md``):

* 2D: a joint is correct iff ``||pred - gt|| / normalizer <= thr`` (MPII MATLAB, ties count);
  joints with ``mask == False`` are excluded from numerator and denominator.
* 3D PCK: a joint is correct iff its error is ``< thr`` mm (MPI-INF-3DHP).
* Percentages are returned in 0-100, lengths in the input unit (mm for 3D).
* Pooled values are ``sum(correct) / sum(labelled)`` over (frame, joint) pairs.
* Masked-out joints never influence a result, whatever they hold (NaN, inf, garbage): they are
  removed by selection (``torch.where`` / boolean indexing) before any arithmetic, never by
  multiplying with a 0 mask (``0 * nan = nan``).
* Per-part PCK/PCKh (``part_percent``): the mean of the per-joint values of the part's joints (left/right
  pair), each ``correct / labelled`` of that joint over the set; NaN when a joint of the part has no
  label in the set (HRNet / official MPII tables).

Counting helpers (``*_counts``) return sums that torchmetrics states accumulate; the scalar
functions are the same computation divided at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

CURVE_THRESHOLDS_2D: tuple[float, ...] = tuple(k / 100 for k in range(51))  # 0, 0.01, ..., 0.50
CURVE_THRESHOLDS_3D: tuple[float, ...] = tuple(float(t) for t in range(0, 151, 5))  # 0, 5, ..., 150 mm


# ----------------------------------------------------------------------------------------------- geometry
def crop_to_image_points(points: Tensor, crop_to_image: Tensor) -> Tensor:
    """Apply (B,2,3) affine maps to (B,J,2) points: crop pixels -> original image pixels."""
    a = crop_to_image.to(points.dtype)
    return torch.einsum("bij,bkj->bki", a[:, :, :2], points) + a[:, None, :, 2]


def affine_scale(crop_to_image: Tensor) -> Tensor:
    """Isotropic scale sqrt(|det A[:, :2]|) of (B,2,3) affine maps, (B,)."""
    a = crop_to_image[:, :, :2].double()
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    return det.abs().sqrt()


def root_align(joints: Tensor, root_index: int = 0) -> Tensor:
    """Subtract the root joint: (B,J,C) -> (B,J,C) with joints[:, root] == 0."""
    return joints - joints[:, root_index : root_index + 1]


def joint_errors(pred: Tensor, gt: Tensor) -> Tensor:
    """Euclidean distance per joint in float64, (B,J)."""
    return torch.linalg.vector_norm(pred.double() - gt.double(), dim=-1)


def _mask(mask: Tensor | None, like: Tensor) -> Tensor:
    return torch.ones(like.shape, dtype=torch.bool, device=like.device) if mask is None else mask.bool()


def _select(x: Tensor, m: Tensor) -> Tensor:
    """x (B,J,C) with the joints where m (B,J) is False set to 0 by selection (NaN/inf there are dropped)."""
    return torch.where(m[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


# ------------------------------------------------------------------------------------------------ 2D PCK
def pck_counts(
    pred: Tensor, gt: Tensor, mask: Tensor | None, normalizer: Tensor, thresholds: Sequence[float]
) -> tuple[Tensor, Tensor]:
    """Per-threshold, per-joint correct counts (T,J) and labelled counts (J,), float64.

    ``normalizer`` is (B,) (head size, torso, bbox size) in the same unit as the coordinates;
    frames with a non-positive normalizer are excluded.
    """
    dist = joint_errors(pred, gt)
    norm = normalizer.double().reshape(-1)
    valid = _mask(mask, dist) & (norm > 0)[:, None]
    d = dist / norm.clamp_min(torch.finfo(torch.float64).tiny)[:, None]
    thr = torch.tensor(list(thresholds), dtype=torch.float64, device=d.device)
    correct = (d[None] <= thr[:, None, None]) & valid[None]
    return correct.sum(1).double(), valid.sum(0).double()


def ratio_percent(num: Tensor, den: Tensor) -> Tensor:
    """100 * num / den, NaN where den == 0."""
    return torch.where(den > 0, 100.0 * num / den.clamp_min(1), torch.full_like(num, float("nan")))


def pooled_percent(correct: Tensor, total: Tensor, include: Sequence[int] | Tensor | None = None) -> Tensor:
    """Pool per-joint counts over the included joints: correct (...,J), total (J,) -> (...) percent."""
    if include is not None:
        idx = torch.as_tensor(include, dtype=torch.long, device=total.device)
        correct, total = correct[..., idx], total[idx]
    return ratio_percent(correct.sum(-1), total.sum(-1).expand(correct.shape[:-1]))


def included_joints(num_joints: int, excluded: Sequence[int] = ()) -> list[int]:
    """Joint indices 0..J-1 without the excluded ones."""
    ex = set(excluded)
    return [j for j in range(num_joints) if j not in ex]


def pck_per_joint(
    pred: Tensor, gt: Tensor, mask: Tensor | None, normalizer: Tensor, threshold: float = 0.5
) -> Tensor:
    """PCK of each joint in percent, (J,); NaN for joints never labelled."""
    c, t = pck_counts(pred, gt, mask, normalizer, [threshold])
    return ratio_percent(c[0], t)


def pck(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None,
    normalizer: Tensor,
    threshold: float = 0.2,
    excluded: Sequence[int] = (),
) -> Tensor:
    """PCK pooled over all labelled (frame, joint) pairs outside ``excluded``, percent (0-d)."""
    c, t = pck_counts(pred, gt, mask, normalizer, [threshold])
    return pooled_percent(c[0], t, included_joints(gt.shape[1], excluded))


def part_percent(correct: Tensor, total: Tensor, parts: Mapping[str, Sequence[int]]) -> dict[str, Tensor]:
    """Per-part columns from per-joint counts: correct (...,J), total (J,) -> {part: (...) percent}.

    A part's value is the mean of the per-joint PCK(h) ``100 * correct_j / labelled_j`` of its joints
    (e.g. the left/right pair), as the HRNet / official MPII tables; it is NaN when any joint of the
    part has no label in the evaluated set (the labelled side alone is *not* reported as the part).
    Counts summed over batches or processes give the same columns as one pass over the whole set.
    """
    per_joint = ratio_percent(correct, total.expand_as(correct))
    out: dict[str, Tensor] = {}
    for part, idx in parts.items():
        sel = torch.as_tensor(list(idx), dtype=torch.long, device=total.device)
        out[part] = per_joint[..., sel].mean(-1)  # a NaN joint makes the part NaN
    return out


def pckh_per_part(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None,
    head_size: Tensor,
    parts: Mapping[str, Sequence[int]],
    threshold: float = 0.5,
) -> dict[str, Tensor]:
    """PCKh per part in percent (0-d each): mean of the per-joint PCKh of the part's joints, NaN when one
    of them has no label in the set (see :func:`part_percent`); ``parts`` e.g. ``JointSet.parts``."""
    c, t = pck_counts(pred, gt, mask, head_size, [threshold])
    return part_percent(c[0], t, parts)


def pckh(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None,
    head_size: Tensor,
    threshold: float = 0.5,
    excluded: Sequence[int] = (6, 7),
) -> Tensor:
    """MPII PCKh (head-size normalizer, ``<=``), pooled without pelvis and thorax by default, percent."""
    return pck(pred, gt, mask, head_size, threshold, excluded)


def auc(curve: Tensor, thresholds: Sequence[float] | Tensor | None = None, method: str = "mean") -> Tensor:
    """Area under a PCK curve, normalized to the curve's unit.

    ``mean``: the average of the curve values (Integral paper / posereg default);
    ``trapezoid``: ``trapz(curve, thr) / (thr[-1] - thr[0])`` (official MPII MATLAB).
    """
    if method == "mean":
        return curve.double().mean(-1)
    if method == "trapezoid":
        if thresholds is None:
            raise ValueError("auc(method='trapezoid') needs the thresholds")
        thr = torch.as_tensor(thresholds, dtype=torch.float64, device=curve.device)
        return torch.trapezoid(curve.double(), thr, dim=-1) / (thr[-1] - thr[0])
    raise ValueError(f"auc method must be 'mean' or 'trapezoid', got {method!r}")


def pcp(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None,
    limbs: Sequence[tuple[int, int]],
    alpha: float = 0.5,
) -> Tensor:
    """Strict PCP in percent: a limb is correct iff both ends are within alpha x its GT length (<=).

    Limbs with an unlabelled end or zero length are excluded.
    """
    a = torch.tensor([p for p, _ in limbs], device=gt.device)
    b = torch.tensor([c for _, c in limbs], device=gt.device)
    err = joint_errors(pred, gt)
    length = joint_errors(gt[:, a], gt[:, b])
    m = _mask(mask, err)
    valid = m[:, a] & m[:, b] & (length > 0)
    ok = (err[:, a] <= alpha * length) & (err[:, b] <= alpha * length) & valid
    return ratio_percent(ok.sum().double(), valid.sum().double())


# ------------------------------------------------------------------------------------------- MPJPE family
def procrustes_align(pred: Tensor, gt: Tensor, mask: Tensor | None = None, scale: bool = True) -> Tensor:
    """Per-frame similarity (or rigid, ``scale=False``) Procrustes of pred onto gt, no reflections.

    Fitted on the masked joints with float64 SVD (Umeyama); masked-out joints do not enter the fit
    whatever they hold (NaN/inf included). Returns the aligned pred for all joints (a masked-out
    joint is transformed as is: a NaN there stays NaN, in that joint only).
    """
    p, g = pred.double(), gt.double()
    m = _mask(mask, p[..., 0])  # (B,J)
    n = m.sum(1).double().clamp_min(1)[:, None, None]
    mu_p, mu_g = _select(p, m).sum(1, keepdim=True) / n, _select(g, m).sum(1, keepdim=True) / n
    x, y = _select(p - mu_p, m), _select(g - mu_g, m)
    h = x.transpose(1, 2) @ y  # (B,3,3) = sum_j x_j y_j^T over the masked joints
    u, s, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    signs = torch.ones_like(s)
    signs[:, -1] = d
    r = vt.transpose(1, 2) @ torch.diag_embed(signs) @ u.transpose(1, 2)  # y ~ s R x
    if scale:
        var = (x * x).sum((1, 2))
        c = (s * signs).sum(-1) / var.clamp_min(torch.finfo(torch.float64).tiny)
    else:
        c = torch.ones_like(s[:, 0])
    return c[:, None, None] * ((p - mu_p) @ r.transpose(1, 2)) + mu_g


def n_scale(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-frame optimal scale s = sum<p,g> / sum<p,p> over masked joints (others ignored whatever they hold), (B,)."""
    m = _mask(mask, pred[..., 0])
    p, g = _select(pred.double(), m), _select(gt.double(), m)
    pp = (p * p).sum((1, 2))
    return (p * g).sum((1, 2)) / pp.clamp_min(torch.finfo(torch.float64).tiny)


def _masked_mean(err: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of err (B,J) over the masked pairs, by selection: NaN/inf at masked-out pairs are ignored."""
    m = _mask(mask, err)
    return torch.where(m, err, torch.zeros((), dtype=err.dtype, device=err.device)).sum() / m.sum().clamp_min(1)


def mpjpe(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean per-joint position error over the masked (frame, joint) pairs (no alignment).

    Masked-out joints are ignored whatever they hold (NaN, inf); 0 when no pair is masked in.
    """
    return _masked_mean(joint_errors(pred, gt), mask)


def pa_mpjpe(pred: Tensor, gt: Tensor, mask: Tensor | None = None, scale: bool = True) -> Tensor:
    """MPJPE after per-frame Procrustes (similarity by default, rigid with ``scale=False``; det R = +1)."""
    return _masked_mean(joint_errors(procrustes_align(pred, gt, mask, scale), gt), mask)


def n_mpjpe(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """MPJPE after the per-frame optimal scale of the (root-aligned) prediction."""
    s = n_scale(pred, gt, mask)
    return _masked_mean(joint_errors(s[:, None, None] * pred.double(), gt), mask)


# --------------------------------------------------------------------------------------------- 3D PCK/AUC
def pck3d_counts(
    pred: Tensor, gt: Tensor, mask: Tensor | None, thresholds: Sequence[float] = CURVE_THRESHOLDS_3D
) -> tuple[Tensor, Tensor]:
    """Correct counts per threshold (T,) with error < thr, and the labelled count (0-d), float64."""
    err = joint_errors(pred, gt)
    m = _mask(mask, err)
    thr = torch.tensor(list(thresholds), dtype=torch.float64, device=err.device)
    correct = ((err[None] < thr[:, None, None]) & m[None]).sum((1, 2)).double()
    return correct, m.sum().double()


def pck3d(pred: Tensor, gt: Tensor, mask: Tensor | None = None, threshold: float = 150.0) -> Tensor:
    """3D PCK in percent: joints with error < threshold (mm)."""
    c, t = pck3d_counts(pred, gt, mask, [threshold])
    return ratio_percent(c[0], t)


def auc3d(
    pred: Tensor, gt: Tensor, mask: Tensor | None = None, thresholds: Sequence[float] = CURVE_THRESHOLDS_3D
) -> Tensor:
    """Mean 3D PCK over the thresholds (default 0..150 mm step 5, 31 values), percent."""
    c, t = pck3d_counts(pred, gt, mask, thresholds)
    return ratio_percent(c, t.expand_as(c)).mean()
