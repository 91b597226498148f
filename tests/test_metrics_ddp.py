"""Metrics under DDP: 2 CPU processes (gloo), each with half the data, equal the single-process values."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from posereg.metrics import MPJPE, CocoKeypointAP, PCKh
from posereg.paths import real_slices_dir

ANN = real_slices_dir() / "coco" / "test_coco.json"


def _data() -> dict:
    """Deterministic inputs for all three metrics."""
    g = torch.Generator().manual_seed(0)
    gt2 = torch.rand(9, 16, 2, generator=g, dtype=torch.float64) * 100
    pred2 = gt2 + torch.randn(9, 16, 2, generator=g, dtype=torch.float64) * 4
    mask2 = torch.rand(9, 16, generator=g) > 0.2
    head = 10 + 10 * torch.rand(9, generator=g, dtype=torch.float64)
    gt3 = torch.randn(6, 17, 3, generator=g, dtype=torch.float64) * 300
    pred3 = gt3 + torch.randn(6, 17, 3, generator=g, dtype=torch.float64) * 40
    actions = ["Walking", "Eating", "Walking", "Sitting", "Eating", "Walking"]
    data = {"pckh": (pred2, gt2, mask2, head), "mpjpe": (pred3, gt3, actions)}
    if ANN.is_file():
        import json

        anns = [a for a in json.loads(ANN.read_text())["annotations"] if a["num_keypoints"] > 0]
        rng = np.random.default_rng(0)
        kp = np.array([np.reshape(a["keypoints"], (17, 3))[:, :2] for a in anns]) + 0.5
        kp = kp + rng.normal(0, 1, kp.shape) * 0.06 * np.sqrt([a["area"] for a in anns])[:, None, None]
        conf = rng.uniform(0.2, 1.0, kp.shape[:2])
        data["coco"] = (torch.from_numpy(kp), [a["image_id"] for a in anns], torch.from_numpy(conf))
    return data


def _run(shares: list[list[int]], shares3: list[list[int]], coco_shares: list[list[int]]) -> dict:
    """Update fresh metrics with the given index shares (one per update call) and compute."""
    d = _data()
    pckh, mpjpe = PCKh(), MPJPE()
    for idx in shares:
        p, g, m, h = (t[idx] for t in d["pckh"])
        pckh.update(p, g, m, h)
    for idx in shares3:
        p, g, acts = d["mpjpe"]
        mpjpe.update(p[idx], g[idx], None, [acts[i] for i in idx])
    out = {f"pckh/{k}": v for k, v in pckh.compute().items()} | {f"mpjpe/{k}": v for k, v in mpjpe.compute().items()}
    if "coco" in d:
        coco = CocoKeypointAP(ann_file=str(ANN))
        kp, img, conf = d["coco"]
        for idx in coco_shares:
            coco.update(kp[idx], [img[i] for i in idx], conf[idx], sample_ids=idx)
        out |= {f"coco/{k}": v for k, v in coco.compute().items()}
    return out


def _worker(rank: int, port: int, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        # uneven shares; rank 1 repeats COCO sample 0 as DistributedSampler padding would
        shares = [[[0, 1, 2, 3, 4]], [[5, 6], [7, 8]]][rank]
        shares3 = [[[0, 1]], [[2, 3, 4, 5]]][rank]
        coco = [[[0, 1, 2, 3, 4, 5, 6]], [[7, 8, 9, 10, 11, 0]]][rank]
        out = _run(shares, shares3, coco)
        if rank == 0:
            torch.save(out, out_file)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_ddp_two_processes_equal_single_process(tmp_path):
    out_file = str(tmp_path / "ddp.pt")
    # fork: the children inherit the imported torch/torchmetrics (spawn re-imports them, ~10 s each on 2 cores)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(_free_port(), out_file), nprocs=2, join=True, start_method=method)
    ddp = torch.load(out_file)
    n_coco = 12 if ANN.is_file() else 0
    single = _run([list(range(9))], [list(range(6))], [list(range(n_coco))])
    assert set(ddp) == set(single)
    assert "mpjpe/mpjpe/Sitting" in single and "pckh/pckh@0.5" in single
    if ANN.is_file():
        assert 0.05 < single["coco/coco_ap"] < 0.99
    for k, v in single.items():
        np.testing.assert_allclose(np.asarray(ddp[k], dtype=np.float64), np.asarray(v, dtype=np.float64),
                                   rtol=1e-12, atol=1e-12, err_msg=k)
