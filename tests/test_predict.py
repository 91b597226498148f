"""posereg-predict: joints equal the evaluation path's for the same crops, COCO results, failures, video, 3D."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, compose_config
from posereg.cli.predict import main
from posereg.data import build_datamodule
from posereg.data.decode import read_image
from posereg.data.records import PoseRecord, make_sample
from posereg.errors import ConfigError
from posereg.geometry import project
from posereg.inference.boxes import read_boxes
from posereg.inference.inputs import Frame
from posereg.inference.writer import PredictionWriter
from posereg.methods import build_module
from posereg.paths import real_slices_dir
from posereg.skeletons import get_joint_set
from posereg.weights import load_checkpoint

SMALL = ["backbone.name=resnet10t", "method.head.width=32"]


def _images() -> list[Path]:
    files = sorted((real_slices_dir() / "mpii").glob("*.jpg")) + sorted((real_slices_dir() / "coco").glob("*.jpg"))
    if len(files) < 3:
        pytest.skip(f"needs the real-data slices (mpii/coco jpgs) under {real_slices_dir()}")
    return files[:4]


@pytest.fixture(scope="module")
def run2d(tmp_path_factory) -> Path:
    """A tiny 2D run trained for one epoch of three steps."""
    from posereg.recipes.train import train_task

    torch.set_num_threads(min(2, torch.get_num_threads()))
    root = tmp_path_factory.mktemp("predict")
    cfg = compose_config([*TINY, f"paths.runs_dir={root / 'runs'}", "trainer.max_epochs=1", "test_after_fit=false",
                          *SMALL])
    train_task(cfg, run_path=root / "run", overrides=[], multirun=False)
    assert (root / "run" / "checkpoints" / "last.ckpt").is_file()  # debug=tiny keeps no best.ckpt
    return root / "run"


def _trained_module(run: Path):
    """The run's module built from its config and data module, with the best checkpoint's weights."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    module = build_module(cfg, build_datamodule(cfg).info).eval()
    module.load_state_dict(load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"])
    return module


def _eval_path_joints(module, image: Path, center: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """(joints in image pixels, crop_to_image) of one crop through the dataset sample + module.predict_step path."""
    n = get_joint_set("mpii16").num_joints
    rec = PoseRecord(image=image, joints_2d=np.zeros((n, 2)), visible=np.zeros(n), center=center,
                     box_size=np.array([side, side]), meta={"image": str(image)})
    sample = make_sample(rec, read_image(image, "test"), "mpii16", "mpii16", module.codec.width, None,
                         np.random.default_rng(0))
    batch = {"image": sample["image"][None], "crop_to_image": sample["crop_to_image"][None]}
    return module.predict_step(batch, 0)["joints_2d_image"][0].numpy(), sample["crop_to_image"].numpy()


def test_joints_equal_the_evaluation_path_for_the_same_crops(run2d, tmp_path, capsys):
    images = _images()
    # two boxes on the first image (by file name), one on the others (COCO by image_id, MPII by file name)
    boxes = [{"file_name": images[0].name, "bbox": [100.0, 40.0, 200.0, 300.0], "score": 0.9},
             {"file_name": images[0].name, "bbox": [10.0, 20.0, 120.0, 80.0], "score": 0.6},
             {"file_name": images[0].name, "bbox": [10.0, 20.0, 120.0, 80.0], "score": 0.1}]  # under box_score_thr
    for f in images[1:]:
        key = {"image_id": int(f.stem)} if f.parent.name == "coco" else {"file_name": f.name}
        boxes.append({**key, "bbox": [50.0, 60.0, 150.0, 250.0], "score": 1.0, "category_id": 1})
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    folder = tmp_path / "in"
    folder.mkdir()
    for f in images:
        shutil.copy(f, folder / f.name)
    out = tmp_path / "out"
    main([f"run={run2d}", f"input={folder}", f"out={out}", f"boxes={tmp_path / 'boxes.json'}", "box_score_thr=0.5",
          "batch_size=2", "device=cpu"])

    pred = json.loads((out / "predictions.json").read_text())
    assert pred["joint_set"] == "mpii16" and pred["dims"] == 2 and pred["failures"] == []
    assert [Path(r["file"]).name for r in pred["images"]] == [f.name for f in images]
    assert [len(r["people"]) for r in pred["images"]] == [2] + [1] * (len(images) - 1)
    module, worst = _trained_module(run2d), 0.0
    for record in pred["images"]:
        assert (out / record["overlay"]).is_file()
        assert cv2.imread(str(out / record["overlay"])).shape[:2] == (record["height"], record["width"])
        for person in record["people"]:
            x, y, w, h = person["bbox"]
            side = max(w, h) * 1.25  # the run's padding (SynthPose: 1.25 default), square input
            center = np.array([x + w / 2, y + h / 2])
            expected, crop_to_image = _eval_path_joints(module, folder / Path(record["file"]).name, center, side)
            np.testing.assert_allclose(person["crop_to_image"], crop_to_image, atol=1e-4)
            got = np.asarray(person["joints_2d"])
            worst = max(worst, float(np.abs(got - expected).max()))
            assert got.shape == (16, 2)
    assert worst < 1e-3, worst

    # MPII-16 has no nose, eyes or ears: no COCO results, one line saying so; predictions.json names the joints
    assert not (out / "coco_results.json").exists()
    assert pred["joint_names"] == list(get_joint_set("mpii16").names)
    assert "no coco_results.json: mpii16 has no nose, l_eye, r_eye, l_ear, r_ear of COCO-17" in capsys.readouterr().out
    assert pred["images"][0]["people"][0]["score"] == pytest.approx(0.9)  # box score x mean confidence (1)


def _person(joints: np.ndarray, conf: np.ndarray | None = None) -> dict:
    return {"bbox": [0.0, 0.0, 10.0, 10.0], "box_score": 0.8, "crop_to_image": np.eye(2, 3).tolist(), "score": 0.8,
            "joints_2d": joints.tolist(), "joint_conf": None if conf is None else conf.tolist()}


def test_coco_results_are_written_in_coco_order_only(tmp_path):
    frame = Frame(Path("000000000042.jpg"), np.zeros((8, 8, 3), np.uint8), 42)
    header = {"joint_set": "coco17", "dims": 2}
    joints = np.arange(34, dtype=np.float64).reshape(17, 2)
    conf = np.linspace(0.1, 0.9, 17)
    writer = PredictionWriter(tmp_path / "coco", header, overlays=False)
    writer.add(frame, [_person(joints, conf)])
    assert writer.close()["coco_skipped"] is None
    [result] = json.loads((tmp_path / "coco" / "coco_results.json").read_text())
    kp = np.asarray(result["keypoints"]).reshape(17, 3)
    assert result["image_id"] == 42 and result["category_id"] == 1 and result["score"] == pytest.approx(0.8)
    np.testing.assert_allclose(kp[:, :2], joints - 0.5)  # COCO's 0-based pixel centres, in COCO's order
    np.testing.assert_allclose(kp[:, 2], conf)
    for joint_set in ("mpii16", "h36m17", "lsp14"):
        n = get_joint_set(joint_set).num_joints
        writer = PredictionWriter(tmp_path / joint_set, {"joint_set": joint_set, "dims": 2}, overlays=False)
        writer.add(frame, [_person(np.zeros((n, 2)))])
        note = writer.close()["coco_skipped"]
        assert note.startswith(f"no coco_results.json: {joint_set} has no ") and "l_eye" in note
        assert not (tmp_path / joint_set / "coco_results.json").exists()
        assert json.loads((tmp_path / joint_set / "predictions.json").read_text())["images"][0]["image_id"] == 42


def test_a_bad_file_is_listed_and_the_rest_finish(run2d, tmp_path, capsys):
    images = _images()[:2]
    folder = tmp_path / "in"
    folder.mkdir()
    for f in images:
        shutil.copy(f, folder / f.name)
    (folder / "garbage.jpg").write_bytes(b"not an image")
    (folder / "truncated.jpg").write_bytes(images[0].read_bytes()[:2000])
    (folder / "notes.txt").write_text("ignored: not an image or video extension")
    out = tmp_path / "out"
    main([f"run={run2d}", f"input={folder}", f"out={out}", "box=center"])
    pred = json.loads((out / "predictions.json").read_text())
    assert sorted(Path(f["file"]).name for f in pred["failures"]) == ["garbage.jpg", "truncated.jpg"]
    assert sorted(Path(r["file"]).name for r in pred["images"]) == sorted(f.name for f in images)
    assert len(list((out / "overlays").glob("*.jpg"))) == 2
    assert "2 input(s) skipped (unreadable, or over max_pixels)" in capsys.readouterr().out
    # the largest centred square of each image
    for r in pred["images"]:
        s = min(r["width"], r["height"])
        assert r["people"][0]["bbox"] == [(r["width"] - s) / 2, (r["height"] - s) / 2, s, s]

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "garbage.png").write_bytes(b"nope")
    with pytest.raises(SystemExit) as err:
        main([f"run={run2d}", f"input={only_bad}", f"out={tmp_path / 'out2'}"])
    assert err.value.code == 2


def test_without_out_predictions_go_beside_the_run(run2d, tmp_path, monkeypatch):
    image = tmp_path / "my photo.jpg"
    shutil.copy(_images()[0], image)
    monkeypatch.chdir(tmp_path)
    main([f"run={run2d}", f"input={image}", "overlays=false"])
    out = run2d / "predictions" / "my_photo"
    try:
        assert json.loads((out / "predictions.json").read_text())["images"][0]["file"] == str(image)
        assert not (tmp_path / "predictions").exists()  # never into the current directory
    finally:
        shutil.rmtree(run2d / "predictions")


def test_video_round_trip(run2d, tmp_path):
    frame = cv2.resize(cv2.imread(str(_images()[0])), (96, 64))
    src = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for k in range(5):
        writer.write(np.roll(frame, 7 * k, axis=1))
    writer.release()
    out = tmp_path / "out"
    main([f"run={run2d}", f"input={src}", f"out={out}", "batch_size=2"])
    cap = cv2.VideoCapture(str(out / "overlays" / "clip.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 5
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 64)
    cap.release()
    per_frame = json.loads((out / "videos" / "clip.json").read_text())
    assert [f["frame"] for f in per_frame["frames"]] == [0, 1, 2, 3, 4]
    assert all(len(f["people"]) == 1 and len(f["people"][0]["joints_2d"]) == 16 for f in per_frame["frames"])
    assert json.loads((out / "predictions.json").read_text())["videos"][0]["num_frames"] == 5


def _run3d(root: Path) -> Path:
    """A 3D run directory with an untrained root-depth model (config + checkpoint, no training)."""
    cfg = compose_config([*TINY, "data=synth3d", *SMALL, "method.head.depth_bins=8", "method.root_depth.enabled=true"])
    module = build_module(cfg, build_datamodule(cfg).info)
    run = root / "run3d"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    torch.save({"state_dict": module.state_dict()}, run / "checkpoints" / "best.ckpt")
    return run


def test_3d_outputs_are_consistent_camera_frame_millimetres(tmp_path):
    run = _run3d(tmp_path)
    image = _images()[0]
    h, w = read_image(image, "test").shape[:2]
    cam = np.array([1000.0, 1010.0, w / 2 + 3, h / 2 - 2])
    out = tmp_path / "out"
    main([f"run={run}", f"input={image}", f"out={out}", "camera=" + ",".join(map(str, cam))])
    person = json.loads((out / "predictions.json").read_text())["images"][0]["people"][0]
    root = get_joint_set("h36m17").root
    absolute = np.asarray(person["joints_3d_abs_mm"])
    assert person["root_depth_source"] == "estimated" and not person["camera_assumed"]
    np.testing.assert_allclose(project(absolute, cam), person["joints_2d"], atol=1e-3)  # same pixels, in mm
    np.testing.assert_allclose(absolute[root, 2], person["root_depth_mm"] + person["z_rel_mm"][root], atol=1e-2)
    np.testing.assert_allclose(person["joints_3d_rel_mm"], absolute - absolute[root], atol=1e-3)
    overlay = cv2.imread(str(out / "overlays" / f"{image.stem}.jpg"))
    assert overlay.shape[0] == h and overlay.shape[1] == w + h  # the 3D panel beside the image

    # without a camera: root-relative only, at the prior depth (the crop spans depth_range mm)
    main([f"run={run}", f"input={image}", f"out={tmp_path / 'out2'}", "box=center"])
    p2 = json.loads((tmp_path / "out2" / "predictions.json").read_text())["images"][0]["people"][0]
    assert p2["joints_3d_abs_mm"] is None and p2["camera_assumed"] and p2["root_depth_source"] == "prior"
    side = min(w, h)
    assert p2["root_depth_mm"] == pytest.approx(max(w, h) / side * 2000.0, rel=1e-5)  # f = the longer side


def test_setting_errors_name_the_setting(run2d, tmp_path, capsys):
    bad = tmp_path / "boxes.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(ConfigError, match="boxes="):
        read_boxes(bad)
    bad.write_text('[{"image_id": 1, "bbox": [0, 0, -5, 10]}]')
    with pytest.raises(ConfigError, match="entry 0"):
        read_boxes(bad)
    image = _images()[0]
    for args, needle in (([f"input={tmp_path / 'missing.jpg'}"], "no such file or folder"),
                         ([f"input={image}", "camera=1,2,3"], "camera="),
                         ([f"input={image}", "box=left"], "box=left"),
                         ([f"input={image}", "batch_size=0"], "batch_size")):
        with pytest.raises(SystemExit) as err:
            main([f"run={run2d}", f"out={tmp_path / 'o'}", *args])
        assert err.value.code == 2
        assert needle in capsys.readouterr().out
