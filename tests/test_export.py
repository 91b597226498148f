"""posereg-export: ONNX (onnxruntime) and TorchScript equal PyTorch, outputs are the module's prediction path."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import compose_config
from posereg.cli.export import main
from posereg.inference.export import ExportedPose, export_onnx, export_torchscript
from posereg.methods import build_module

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

SMALL = ["backbone.name=resnet10t", "method.head.width=32", "data.input_size=64"]
SSP = ["method=sspnet", "data=synth3d", "data.input_size=64", "method.net.growth=8", "method.net.num_pyramids=2",
       "method.net.num_levels=2", "method.net.stem_channels=8", "cut=p1l2"]
CPN = ["method=i1", "method/net=cpn", "backbone.name=resnet10t", "method.net.width=32", "data.input_size=64"]
DEEPPOSE = ["method=deeppose_cascade", "method.cascade.stages=3", "backbone.name=resnet10t", "data.input_size=64"]
CASES = {"i1": ["method=i1", *SMALL], "r1": ["method=r1", *SMALL], "sspnet_p1l2": SSP, "cpn_i1": CPN,
         "cpn_i1_global_c3": [*CPN, "cut=global_c3"], "deeppose_stage3": DEEPPOSE}


@pytest.fixture(autouse=True)
def _one_thread():
    """Small convolutions: one thread avoids contention on the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _module(overrides: list[str]):
    torch.manual_seed(0)
    cfg = compose_config(["logger=none", *overrides])
    three_d = cfg.data.dims == 3
    info = SimpleNamespace(joint_set=cfg.data.joint_set, input_size=64, has_2d=True, has_3d=three_d,
                           depth_range=2000.0, dataset_names=("synth",))
    return build_module(cfg, info).eval()


def _reference(module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """What the module's own evaluation path predicts: unit coords of the cut output, crop pixels, z."""
    with torch.no_grad():
        outputs, coords = module.predict_coords(x)
    unit = coords[module.cut_index]
    ref = {"joints_crop_px": module.codec.to_crop_pixels(unit), "coords_unit": unit}
    if unit.shape[-1] == 3:
        ref["z_rel_mm"] = (unit[..., 2] - 0.5) * module.codec.depth_range
    if "conf_logits" in outputs[module.cut_index]:
        ref["joint_conf"] = torch.sigmoid(outputs[module.cut_index]["conf_logits"])
    return {k: v.numpy() for k, v in ref.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_onnxruntime_equals_pytorch(name, tmp_path):
    module = _module(CASES[name])
    wrapper = ExportedPose(module)
    path = export_onnx(wrapper, tmp_path / f"{name}.onnx", opset=17)
    graph = onnx.load(str(path))
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic (dynamic) batch axis
    assert [o.name for o in graph.graph.output] == wrapper.output_names
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        x = torch.randn(batch, 3, 64, 64, generator=g)
        ref = _reference(module, x)
        got = dict(zip(wrapper.output_names, session.run(None, {"image": x.numpy()}), strict=True))
        assert set(got) == set(ref)
        np.testing.assert_allclose(got["coords_unit"], ref["coords_unit"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(got["joints_crop_px"], ref["joints_crop_px"], atol=1e-4, rtol=0)
        if "z_rel_mm" in ref:  # 1e-4 of the depth range (the unit coordinate's tolerance, in mm)
            np.testing.assert_allclose(got["z_rel_mm"] / 2000.0, ref["z_rel_mm"] / 2000.0, atol=1e-4, rtol=0)
        if "joint_conf" in ref:
            np.testing.assert_allclose(got["joint_conf"], ref["joint_conf"], atol=1e-4, rtol=0)
    if name.startswith("sspnet"):
        assert wrapper.output_names == ["joints_crop_px", "z_rel_mm", "coords_unit", "joint_conf"]
        assert module.output_names[module.cut_index] == "p1l2" and module.cut_index < len(module.output_names) - 1


def test_torchscript_trace_keeps_the_batch_axis_and_flip_averaging(tmp_path):
    module = _module(["method=i1", *SMALL, "flip_test=true"])
    wrapper = ExportedPose(module, flip_test=True)
    path = export_torchscript(wrapper, tmp_path / "i1.pt")
    traced = torch.jit.load(str(path))
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = traced(x)
    ref = _reference(module, x)  # module.flip_test is on: the reference averages with the flipped input
    np.testing.assert_allclose(got[0].numpy(), ref["joints_crop_px"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[1].numpy(), ref["coords_unit"], atol=1e-5, rtol=0)


def test_cli_exports_a_trained_run(tmp_path, make_cfg, capsys):
    from posereg.recipes.train import train_task

    cfg = make_cfg("trainer.max_epochs=1", "test_after_fit=false", "backbone.name=resnet10t", "method.head.width=32")
    run = tmp_path / "run"
    train_task(cfg, run_path=run, overrides=[], multirun=False)
    main([f"run={run}", "format=onnx"])
    path = run / "export" / "out.onnx"
    assert path.is_file()
    meta = json.loads(Path(str(path) + ".json").read_text())
    assert meta["outputs"] == ["joints_crop_px", "coords_unit"] and meta["joint_set"] == "mpii16"
    assert meta["input"]["shape"] == ["batch", 3, 64, 64]
    assert max(meta["max_abs_diff"].values()) < 1e-4
    assert "wrote" in capsys.readouterr().out

    out = tmp_path / "model.pt"
    main([f"run={run}", "format=torchscript", f"out={out}", "ckpt=last"])
    assert out.is_file()
    with pytest.raises(SystemExit) as err:
        main([f"run={run}", "format=tflite"])
    assert err.value.code == 2
    assert "format=tflite" in capsys.readouterr().out
