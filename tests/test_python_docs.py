"""docs/python.md runs as written, and the Python API is the command line's: the page's blocks in order in an empty
folder (it trains its own tiny run), then checks on that run: what the page printed, API predictions equal to
posereg-predict's, the model cards (numbers of metrics.json, snippets that run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from posereg.cli.predict import main as predict_main
from posereg.console import format_value
from posereg.errors import ConfigError
from posereg.inference.result import PoseResult
from posereg.runs import RunDir
from posereg.skeletons import get_joint_set

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _blocks(text: str, fence: str = "python") -> list[str]:
    return re.findall(rf"```{fence}\n(.*?)```", text, re.S)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[dict, Path]:
    """The page's namespace after running every Python block of it, verbatim and in order, and its run."""
    folder = tmp_path_factory.mktemp("python_md")
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    mp.delenv("POSEREG_RUNS_DIR", raising=False)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    namespace: dict = {"__name__": "python_md"}
    try:
        for k, block in enumerate(_blocks(DOC.read_text())):
            exec(compile(block, f"docs/python.md, block {k + 1}", "exec"), namespace)  # noqa: S102 - the page
    finally:
        mp.undo()
    return namespace, folder / "runs" / "default" / "debug=tiny,seed=0"


def test_the_page_trains_loads_predicts_evaluates_and_exports(page):
    ns, run = page
    assert Path(ns["cfg"].paths.run_dir) == Path("runs/default/debug=tiny,seed=0")
    assert ns["metrics"] == json.loads((run / "metrics.json").read_text())
    assert RunDir(run).read_status()["status"] == "done"
    assert ns["result"].joints_2d.shape == (2, 16, 2) and len(ns["result"]) == 2  # the two boxes
    assert ns["result"].scores.tolist() == pytest.approx([1.0, 0.9])  # box scores x (no joint confidence)
    assert [len(r) for r in ns["results"]] == [1, 1] and ns["overlay"].shape == (240, 320, 3)
    assert ns["frame"].frame == 2 and ns["frame"].joints_2d.shape == (1, 16, 2)  # the video's last frame
    assert ns["scores"] == json.loads((run / "eval_test.json").read_text())
    assert ns["onnx_file"].name == "out.onnx" and (run / "export" / "out.onnx").is_file()


def test_api_predictions_are_posereg_predicts(page, tmp_path):
    ns, run = page
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    boxes = [[10.0, 5.0, 60.0, 80.0], [50.0, 20.0, 40.0, 50.0]]
    import cv2

    cv2.imwrite(str(tmp_path / "7.png"), image[..., ::-1])
    (tmp_path / "boxes.json").write_text(json.dumps([{"image_id": 7, "bbox": b, "score": 1.0} for b in boxes]))
    predict_main([f"run={run}", f"input={tmp_path / '7.png'}", f"out={tmp_path / 'out'}",
                  f"boxes={tmp_path / 'boxes.json'}", "overlays=false"])
    people = json.loads((tmp_path / "out" / "predictions.json").read_text())["images"][0]["people"]
    result = ns["model"].predict(image, boxes=boxes)
    np.testing.assert_allclose(result.joints_2d, [p["joints_2d"] for p in people], atol=1e-5)
    np.testing.assert_allclose(result.boxes, boxes)
    from_file = ns["model"].predict(tmp_path / "7.png", boxes=boxes)  # a path reads the same pixels
    np.testing.assert_allclose(from_file.joints_2d, result.joints_2d, atol=1e-5)


def test_bad_inputs_are_one_line_errors(page):
    model = page[0]["model"]
    with pytest.raises(ConfigError, match=r"^image: expected an RGB uint8 array \(H,W,3\), a PIL image or a file, "
                                          r"got an array of shape \(4, 4\) and dtype float32$"):
        model.predict(np.zeros((4, 4), np.float32))
    with pytest.raises(ConfigError, match=r"^boxes\[0\]: expected \[\[x, y, w, h\(, score\)\], ...\] with w, h > 0"):
        model.predict(np.zeros((4, 4, 3), np.uint8), boxes=[[0, 0, 0, 3]])
    with pytest.raises(ConfigError, match=r"^boxes: 1 box lists for 2 images; give one per image$"):
        model.predict([np.zeros((4, 4, 3), np.uint8)] * 2, boxes=[None])
    import posereg

    with pytest.raises(ConfigError, match=r"^run=.*nowhere: not a posereg run directory"):
        posereg.load("nowhere")
    with pytest.raises(ConfigError, match=r"^split=train: choose val or test$"):
        posereg.evaluate(page[1], split="train")
    with pytest.raises(ConfigError, match=r"^format=onxx: use one of onnx, torchscript$"):
        posereg.export(page[1], format="onxx")


def _card_sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.splitlines()[0]: p for p in parts[1:]}


def test_the_model_card_holds_the_metrics_and_a_snippet_that_runs(page, capsys):
    _, run = page
    card = (run / "checkpoints" / "MODEL.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    sections = _card_sections(card)
    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[3:-1]]
            for line in sections["Metrics"].splitlines() if line.startswith("| `")}
    for column, section in enumerate(("best", "final", "test")):
        for name, value in metrics[section].items():
            assert rows[name.split("/", 1)[1]][column] == format_value(name, value), (section, name)
    assert "flip test on" in sections["Metrics"] and "`test` evaluates the last weights" in sections["Metrics"]
    assert f"| budget | {metrics['setup']['steps']} steps, {metrics['setup']['epochs']} epochs, batch 4 |" in card
    assert f"{metrics['complexity']['params'] / 1e6:.2f} M / {metrics['complexity']['gmacs']:.3f} GMACs" in card
    assert "| network | resnet18; started from random weights |" in card
    names = get_joint_set("mpii16").names
    assert ", ".join(f"{i} `{n}`" for i, n in enumerate(names)) in card
    assert "commit `" in card and "`image`: float32 (batch, 3, 64, 64)" in card
    [snippet] = _blocks(sections["Load it in Python"])
    exec(snippet, {})  # noqa: S102 - the card's own snippet
    assert capsys.readouterr().out.strip().endswith("(1, 16, 2)")


def test_the_export_card_runs_with_onnxruntime(page, capsys):
    _, run = page
    card = (run / "export" / "MODEL.md").read_text()
    interface = json.loads((run / "export" / "out.onnx.json").read_text())
    assert "File: `out.onnx`" in card and interface["shapes"]["joints_crop_px"] == ["batch", 16, 2]
    [snippet] = _blocks(_card_sections(card)["Use it with onnxruntime"])
    exec(snippet, {})  # noqa: S102 - the card's own snippet
    assert capsys.readouterr().out.strip().endswith("(16, 2)")


def test_a_result_from_predictor_records():
    people = [{"joints_2d": np.full((16, 2), 3.0).tolist(), "score": 0.5, "bbox": [1, 2, 3, 4], "joint_conf": None,
               "joints_3d_rel_mm": np.ones((16, 3)).tolist(), "joints_3d_abs_mm": None}]
    r3 = PoseResult.from_people(people, "mpii16", dims=3, frame=4)
    assert r3.joints_3d.shape == (1, 16, 3) and r3.joints_3d_abs is None and r3.joint_conf is None and r3.frame == 4
    assert r3.joint("l_wrist").tolist() == [[3.0, 3.0]] and r3.bones == get_joint_set("mpii16").bones
    empty = PoseResult.from_people([], "coco17", dims=2)
    assert len(empty) == 0 and empty.joints_2d.shape == (0, 17, 2) and empty.joints_3d is None
    with pytest.raises(KeyError, match="mpii16 has no joint 'nose'"):
        r3.joint("nose")
