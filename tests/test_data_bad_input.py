"""Every bad input raises a clear error naming the setting, file and record (or is skipped on request)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from posereg.data import coco, h36m, mpii
from posereg.errors import ConfigError, DataError
from posereg.paths import real_slices_dir

SLICES = real_slices_dir()
H36M_KW = {"ann_files": ["test_h36m_body3d.npz"], "camera_file": "cameras.pkl", "image_dir": ".",
           "subjects": ["S1", "S5", "S7", "S8"], "eval_step": 1}


@pytest.fixture
def mpii_root(tmp_path: Path) -> Path:
    shutil.copytree(SLICES / "mpii", tmp_path / "mpii")
    return tmp_path / "mpii"


@pytest.fixture
def h36m_root(tmp_path: Path) -> Path:
    shutil.copytree(SLICES / "h36m", tmp_path / "h36m")
    return tmp_path / "h36m"


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def edit_npz(path: Path, key: str, fn) -> None:
    z = dict(np.load(path))
    z[key] = fn(z[key])
    np.savez(path, **z)


@pytest.mark.parametrize("root", [None, "???", "/nonexistent/dataset"])
def test_missing_root(root):
    with pytest.raises(ConfigError, match=r"data\.root"):
        mpii.MPIIDataset(root, split="train")


@pytest.mark.parametrize("name", ["mpii", "coco", "h36m", "mpi_inf_3dhp", "lsp"])
def test_configs_without_root_fail_at_build_naming_data_root(make_cfg, name):
    from posereg.data import build_datamodule

    with pytest.raises(ConfigError, match=r"data\.root is not set"):
        build_datamodule(make_cfg(f"data={name}"))


def test_mixed_config_names_the_missing_per_source_root(make_cfg, tmp_path):
    from posereg.data import build_datamodule

    with pytest.raises(ConfigError, match=r"data\.mpii_root"):
        build_datamodule(make_cfg("data=h36m_mpii", f"data.h36m_root={tmp_path}"))


def test_missing_annotation_file(mpii_root):
    with pytest.raises(ConfigError, match="nope.json"):
        mpii.MPIIDataset(mpii_root, split="train", ann_file="nope.json")


def test_missing_image_raises_or_is_skipped_with_one_warning(mpii_root):
    edit_json(mpii_root / "test_mpii.json", lambda d: d[1].update(image="missing.jpg"))
    with pytest.raises(DataError, match=r"test_mpii.json record 1 \(missing.jpg\).*missing.jpg does not exist"):
        mpii.MPIIDataset(mpii_root, split="train", ann_file="test_mpii.json", image_dir=".")
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        ds = mpii.MPIIDataset(mpii_root, split="train", ann_file="test_mpii.json", image_dir=".",
                              skip_bad_records=True)
    assert len(ds) == 4


def test_wrong_joint_count(mpii_root, h36m_root):
    edit_json(mpii_root / "test_mpii.json", lambda d: d[3].update(joints=d[3]["joints"][:15]))
    with pytest.raises(DataError, match=r"record 3 .*shape \(15, 2\), expected \(16, 2\)"):
        mpii.load_records(mpii_root, split="train", ann_file="test_mpii.json", image_dir=".")
    edit_npz(h36m_root / "test_h36m_body3d.npz", "S", lambda s: s[:, :16])
    with pytest.raises(DataError, match=r"record 0 .*S has shape \(16, 4\)"):
        h36m.load_records(h36m_root, split="test", **H36M_KW)


def test_coco_wrong_keypoint_count(tmp_path):
    shutil.copytree(SLICES / "coco", tmp_path / "coco")
    edit_json(tmp_path / "coco" / "test_coco.json", lambda d: d["annotations"][0].update(keypoints=[1, 2, 2] * 16))
    with pytest.raises(DataError, match=r"annotation id \d+: keypoints has 48 values"):
        coco.load_records(tmp_path / "coco", split="val", ann_file="test_coco.json", image_dir=".")


def test_nan_coordinates(mpii_root, h36m_root):
    def poison(d):
        d[2]["joints"][4] = [float("nan"), 3.0]

    edit_json(mpii_root / "test_mpii.json", poison)
    with pytest.raises(DataError, match=r"record 2 .*NaN/inf coordinates at joints \[4\]"):
        mpii.load_records(mpii_root, split="train", ann_file="test_mpii.json", image_dir=".")

    def nan_s(s):
        s = s.copy()
        s[1, 5, 0] = np.nan
        return s

    edit_npz(h36m_root / "test_h36m_body3d.npz", "S", nan_s)
    with pytest.raises(DataError, match=r"record 1 .*S has NaN/inf coordinates at joints \[5\]"):
        h36m.load_records(h36m_root, split="test", **H36M_KW)
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        assert len(h36m.load_records(h36m_root, split="test", skip_bad_records=True, **H36M_KW)) == 3


def test_truncated_image(mpii_root):
    img = mpii_root / "005808361.jpg"
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 3])
    ds = mpii.MPIIDataset(mpii_root, split="train", ann_file="test_mpii.json", image_dir=".", input_size=32)
    with pytest.raises(DataError, match=r"005808361.jpg cannot be decoded"):
        ds[0]
    ds[1]  # the other records still load


def test_camera_key_missing(h36m_root):
    path = h36m_root / "cameras.pkl"
    cams = pickle.loads(path.read_bytes())
    del cams[("S7", "55011271")]
    path.write_bytes(pickle.dumps(cams))
    with pytest.raises(DataError, match=r"record 2 .*camera key \('S7', '55011271'\) is not in the camera file"):
        h36m.load_records(h36m_root, split="test", **H36M_KW)


def test_pickles_only_from_inside_the_root(h36m_root, tmp_path):
    shutil.copy(h36m_root / "cameras.pkl", tmp_path / "outside.pkl")
    for path in ("../outside.pkl", str(tmp_path / "outside.pkl")):
        with pytest.raises(ConfigError, match="outside the dataset root"):
            h36m.load_records(h36m_root, split="test", **{**H36M_KW, "camera_file": path})


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(h36m_root):
    (h36m_root / "cameras.pkl").write_bytes(pickle.dumps({("S1", "54138969"): _Evil()}))
    with pytest.raises(DataError, match="not allowed in a camera file"):
        h36m.load_records(h36m_root, split="test", **H36M_KW)
