"""Generic crop transform, source-ratio batch sampler and the data module (configs from conf/data)."""

from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from posereg.data import AugmentConfig, build_datamodule
from posereg.data.samplers import MixedSourceBatchSampler, batch_counts
from posereg.data.transforms import Photometric, augment_preset, crop_sample, map_labels, sample_crop_params
from posereg.errors import ConfigError
from posereg.geometry import project
from posereg.skeletons import get_joint_set

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"


def make_cfg(name: str, **data_overrides):
    """{seed, data} config from conf/data/<name>.yaml, shrunk for tests."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):  # the data group alone, defaults applied
        data = compose(config_name=name)
    OmegaConf.set_struct(data, False)
    small = {"input_size": 64, "batch_size": 8, "eval_batch_size": 8, "num_workers": 0, "epoch_length": 32}
    data = OmegaConf.merge(data, small, data_overrides)
    return OmegaConf.create({"seed": 0, "data": data})


def _dot_centroid(img: np.ndarray) -> np.ndarray:
    w = img.astype(np.float64)
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(w * (xs + 0.5)).sum(), (w * (ys + 0.5)).sum()]) / w.sum()


@pytest.mark.parametrize("rot,flip", [(0.0, False), (25.0, True), (-70.0, False)])
def test_crop_sample_moves_pixels_and_labels_together(rot, flip):
    img = np.zeros((300, 400, 3), np.uint8)
    # cv2 draws in pixel-index coordinates: index 150 is our continuous 150.5
    cv2.circle(img, (150 * 16, 120 * 16), 6 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    j2 = np.array([[150.5, 120.5], [10.0, 10.0]])
    cam = np.array([500.0, 500.0, 200.0, 150.0])
    j3 = np.zeros((2, 3))
    j3[:, 2] = 4000.0
    j3[:, :2] = (j2 - cam[2:]) * j3[:, 2:] / 500  # back-projection of j2
    crop = crop_sample(img, j2, (160.0, 130.0), 80.0, 64, rot, flip, flip_index=[0, 1], joints_3d=j3, camera=cam)
    assert crop.image.shape == (64, 64, 3)
    assert np.allclose(_dot_centroid(crop.image[..., 0]), crop.joints_2d[0], atol=0.05)
    assert crop.weights[0, 0] == 1 and crop.weights[1, 0] == 0  # second point falls outside the crop
    assert np.abs(project(crop.joints_3d, crop.camera) - crop.joints_2d).max() < 1e-6
    assert crop.scale == pytest.approx(64 / 80)


def test_flip_twice_is_identity():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    j2 = rng.uniform(5, 59, (16, 2))
    fi = get_joint_set("mpii16").flip_index
    once = crop_sample(img, j2, (32.0, 32.0), 64.0, 64, 0.0, True, fi)
    twice = crop_sample(once.image, once.joints_2d, (32.0, 32.0), 64.0, 64, 0.0, True, fi)
    assert np.array_equal(twice.image, img)
    assert np.allclose(twice.joints_2d, j2, atol=1e-9)
    assert np.allclose(once.joints_2d[0], [64 - j2[5, 0], j2[5, 1]])  # r_ankle <- mirrored l_ankle


def test_photometric_is_seeded_and_params_sampled_in_range():
    aug = augment_preset("synth", occlusion_prob=1.0, noise_prob=1.0, blur_prob=1.0)
    img = np.full((32, 32, 3), 128, np.uint8)
    ph = Photometric(aug)
    a = ph(img, np.random.default_rng(1))
    b = ph(img, np.random.default_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, img)
    p = [sample_crop_params(aug, np.random.default_rng(i)) for i in range(200)]
    assert all(0.75 <= q.scale <= 1.25 and abs(q.rotation) <= 30 for q in p)
    assert 0.4 < np.mean([q.flip for q in p]) < 0.6
    assert 0.45 < np.mean([q.rotation != 0 for q in p]) < 0.75
    with pytest.raises(ConfigError, match="data.augment: unknown keys"):
        AugmentConfig.from_cfg({**asdict(aug), "rotaton": 3})
    with pytest.raises(ConfigError, match=r"data.augment.flip_prob=2 must be a probability"):
        AugmentConfig.from_cfg({**asdict(aug), "flip_prob": 2})
    # no Python defaults: a key the config lacks is one line naming it (conf/data/augment/ states them all)
    with pytest.raises(ConfigError, match=r"^data.augment.occlusion_size is missing: every key of "):
        AugmentConfig.from_cfg({k: v for k, v in asdict(aug).items() if k != "occlusion_size"})
    assert AugmentConfig.from_cfg({"enabled": False}) is None


def test_map_labels_derives_the_thorax_exactly():
    cam = np.array([1000.0, 1000.0, 32.0, 32.0])
    j3 = np.random.default_rng(0).normal(size=(17, 3)) * 200 + [0, 0, 4000]
    j2 = project(j3, cam)
    w = np.ones((17, 3))
    j2m, wm, j3m = map_labels(j2, w, "h36m17", "h36m18", j3, cam)
    assert np.allclose(j3m[17], (j3[11] + j3[14]) / 2)
    assert np.allclose(j2m[17], project(j3m[17], cam))
    j2m, wm, _ = map_labels(j2[:16] * 0 + 1, np.ones((16, 3)), "mpii16", "h36m18")
    assert wm[7].sum() == 0 and wm[9].sum() == 0 and wm[17].sum() == 3


def test_batch_counts_are_exact():
    assert batch_counts([0.5, 0.5], 32) == [16, 16]
    assert batch_counts([0.3, 0.7], 10) == [3, 7]
    assert batch_counts([1 / 3] * 3, 32) == [11, 11, 10]
    assert batch_counts([1.0, 0.0], 7) == [7, 0]


def test_sampler_deterministic_per_epoch_and_ddp_split():
    s = MixedSourceBatchSampler([100, 10], [3, 1], num_batches=20, seed=1, procedural=[True, False])
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(0)
    assert list(s) == e0
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0
    for batch in e0:
        assert sorted(src for src, _ in batch) == [0, 0, 0, 1]
    proc0 = {i for b in e0 for src, i in b if src == 0}
    proc1 = {i for b in e1 for src, i in b if src == 0}
    assert len(proc0) == 60 and not proc0 & proc1  # procedural sources give fresh samples each epoch
    real = [i for b in e0 for src, i in b if src == 1]
    assert sorted(real) == sorted(list(range(10)) * 2)  # finite sources: whole permutations
    s.set_epoch(0)
    s.skip_batches(3)
    assert list(s) == e0[3:]  # mid-epoch resume: the remaining batches, identical
    s.set_epoch(0)
    assert list(s) == e0  # the skip applies to one iteration only
    ranks = [MixedSourceBatchSampler([100, 10], [3, 1], 20, 1, [True, False], r, 2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(0)
    parts = [list(r) for r in ranks]
    assert len(parts[0]) == len(parts[1]) == 10
    assert sorted(map(sorted, parts[0] + parts[1])) == sorted(map(sorted, e0))


def test_mixed_loader_exact_counts_and_z_weights():
    dm = build_datamodule(make_cfg("synth_mixed"))
    assert dm.info.joint_set == "h36m18" and dm.info.has_3d and dm.info.has_2d
    assert dm.info.dataset_names == ("synth3d", "synth2d")
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    for b in batches:
        src = np.array(b["meta"]["source"])
        assert (src == "synth3d").sum() == 4 and (src == "synth2d").sum() == 4
        wz = b["weights"][:, :, 2]
        assert (wz[torch.from_numpy(src == "synth2d")] == 0).all()
        assert (wz[torch.from_numpy(src == "synth3d")] == 1).all()
        w2d = b["weights"][torch.from_numpy(src == "synth2d")]
        assert (w2d[:, [7, 9]] == 0).all()  # spine and nose have no MPII counterpart
        assert b["image"].shape == (8, 3, 64, 64) and b["joints_2d"].shape == (8, 18, 2)
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape[0] == 8


def test_synth2d_module_info_and_loaders():
    dm = build_datamodule(make_cfg("synth2d"))
    assert dm.info.has_3d is False and dm.info.joint_set == "mpii16" and dm.info.input_size == 64
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b["joints_2d"].shape == (8, 16, 2) and (b["weights"][..., 2] == 0).all()
    assert len(dm.dataset("val")) == 512


@pytest.mark.parametrize("override,match", [
    ({"input_size": 0}, "data.input_size"),  # divisibility is each network's own rule
    ({"input_size": [64, 96]}, "square"),
    ({"ratios": {"synth": 1.5}}, "data.ratios.synth"),
    ({"joint_set": "mpii17"}, "unknown joint set"),
    ({"sources": {}}, "data.sources"),
])
def test_config_errors(override, match):
    cfg = make_cfg("synth2d")
    cfg.data = OmegaConf.merge(cfg.data, override) if "sources" not in override else cfg.data
    if "sources" in override:
        cfg.data.sources = {}
    with pytest.raises(ConfigError, match=match):
        build_datamodule(cfg)


def test_ratios_must_sum_to_one():
    cfg = make_cfg("synth_mixed", ratios={"synth3d": 0.5, "synth2d": 0.4})
    with pytest.raises(ConfigError, match="sum to 0.9"):
        build_datamodule(cfg)
    cfg = make_cfg("synth_mixed", ratios={"synth3d": 0.5, "synth2d": 0.5, "mpii": 0.0})
    with pytest.raises(ConfigError, match="unknown sources"):
        build_datamodule(cfg)


def test_show_writes_a_grid_with_left_and_right_colours(tmp_path):
    from posereg.cli.show import LEFT, RIGHT, main

    out = tmp_path / "grid.png"
    assert main(["data=synth2d", "n=4", f"out={out}", "data.input_size=64", "data.num_workers=0", "split=val"]) == 0
    img = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert img.shape == (2 * 192, 2 * 192, 3)
    for colour in (LEFT, RIGHT):
        assert (np.abs(img.astype(int) - colour).sum(-1) < 10).sum() > 50


def test_show_help_and_bad_settings_exit_cleanly(capsys):
    import subprocess
    import sys

    from posereg.cli.show import main

    assert main(["--help"]) == 0 and "usage: posereg-show" in capsys.readouterr().out
    assert main(["data=no_such_data"]) == 2 and "no_such_data" in capsys.readouterr().err
    ok = subprocess.run([sys.executable, "-m", "posereg.cli.show", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0


def test_collate_keeps_only_shared_meta_keys():
    import torch

    from posereg.data.collate import collate_samples

    a = {"image": torch.zeros(3, 2, 2), "meta": {"dataset": "synth", "index": 1, "family": "walk"}}
    b = {"image": torch.ones(3, 2, 2), "meta": {"dataset": "mpii", "index": 7, "image": "x.jpg"}}
    batch = collate_samples([a, b])
    assert set(batch["meta"]) == {"dataset", "index"}
    assert batch["meta"]["dataset"] == ["synth", "mpii"] and batch["meta"]["index"].tolist() == [1, 7]
    assert batch["image"].shape == (2, 3, 2, 2) and float(batch["image"][1].sum()) == 12.0
