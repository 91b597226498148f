"""scripts/gpu_check.py's summary: written from whatever the check's steps left, goals and ratios computed from the
measurements of one run, without importing torch (it must be written whatever happened to the other steps)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

GPU_CHECK = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
SRC = GPU_CHECK.parents[1] / "src"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _triple(data: str, compiled: bool, model: float, e2e: float) -> dict:
    setup = {"backbone": "resnet50", "input_size": 256, "batch_size": 128, "precision": "bf16-mixed",
             "channels_last": True, "compile": compiled}
    return {"preset": "integral_r50_256", "data": data, "compiled": compiled, "setup": setup, "workers": 16,
            "model_img_per_s": model, "loader_img_per_s": 4000.0, "e2e_img_per_s": e2e, "ratio": e2e / model}


def _sspnet(full_fps: float, p4l1_speedup: float) -> dict:
    config = {"input_size": 256, "growth": 128, "num_pyramids": 8, "amp": True, "channels_last": True}
    return {"device": "NVIDIA H100 80GB HBM3", "config": config, "full_cut": "p8l0",
            "cuts": {"p8l0": {"1": {"fps": full_fps, "latency_ms": 1000 / full_fps, "speedup": 1.0}},
                     "p4l1": {"1": {"fps": full_fps * p4l1_speedup, "latency_ms": 1000 / full_fps / p4l1_speedup,
                                    "speedup": p4l1_speedup}}}}


def test_the_summary_of_a_full_run_computes_goals_and_ratios(tmp_path):
    (tmp_path / "machine.json").write_text(json.dumps({"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.11.0+cu130",
                                                       "cuda": "13.0", "cuda_available": True}))
    (tmp_path / "steps.tsv").write_text("setup\tok\t0\t31\t180\ntests\tcut at its limit\t124\t150\t150\n")
    (tmp_path / "gpu_tests.log").write_text(  # cut before pytest wrote its JUnit XML: the -v lines count
        "tests/test_gpu.py::test_a PASSED [ 10%]\ntests/test_gpu.py::test_b[x] FAILED [ 20%]\n"
        "tests/test_gpu.py::test_c PASSED [ 30%]\n")
    variant = {"backbone": "resnet50", "input_size": 256, "batch_size": 128}
    measurements = {
        "dry_run": False, "workers": 16,
        "throughput": [_triple("synth", False, 2000.0, 1600.0), _triple("synth", True, 3000.0, 2400.0),
                       _triple("real", False, 2000.0, 1800.0)],
        "speed_variants": [{**variant, "variant": "fp32, eager", "model_img_per_s": 500.0},
                           {**variant, "variant": "bf16, eager", "model_img_per_s": 1000.0},
                           {**variant, "variant": "bf16, channels_last, eager", "model_img_per_s": 1250.0}],
        "sspnet": {"eager": _sspnet(800.0, 1.5), "cuda_graphs": _sspnet(1200.0, 1.8)},
        "lightning": [{"preset": "integral_r50_256", "steps": 60, "ratio": 0.97, "plain_ms": 70.0,
                       "lightning_ms": 72.2}],
        "sections": [], "skipped": [], "errors": []}
    (tmp_path / "measurements.json").write_text(json.dumps(measurements))
    result = _gpu_check().summarize(tmp_path)

    goals = {g["what"]: (g["value"], g["met"]) for g in result["goals"]}
    assert list(goals.values()) == [(1600.0, True), (2400.0, True), (0.9, False), (1200.0, True), (1.8, True),
                                    (0.97, False)]
    assert result["ratios"] == {"bf16 / fp32 (model-only, eager, NCHW)": 2.0,
                                "channels_last on / off (model-only, bf16, eager)": 1.25,
                                "compiled / eager (model-only, bf16, channels_last)": 1.5,
                                "compiled / eager (end-to-end)": 1.5,
                                "CUDA graphs / eager (SSP-Net full, batch 1)": 1.5}
    assert {k: result["tests"][k] for k in ("tests", "passed", "failures")} == {"tests": 3, "passed": 2,
                                                                              "failures": 1}
    assert result["tests"]["failed"] == ["tests/test_gpu.py::test_b[x]"]
    assert [s["status"] for s in result["steps"]] == ["ok", "cut at its limit"]
    md = (tmp_path / "gpu_check.md").read_text()
    assert md.startswith("# GPU check: NVIDIA H100 80GB HBM3\n") and "torch 2.11.0+cu130, CUDA 13.0" in md
    assert "| the same, compiled | 2400 | ≥ 1500 | yes |" in md and "| 0.900 | ≥ 0.95 | **no** |" in md
    assert json.loads((tmp_path / "gpu_check.json").read_text())["goals"] == result["goals"]


def test_the_summary_of_a_check_cut_before_it_measured_anything_imports_no_torch(tmp_path):
    code = ("import importlib.util, sys; from pathlib import Path; "
            f"spec = importlib.util.spec_from_file_location('gpu_check', {str(GPU_CHECK)!r}); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            f"r = m.summarize(Path({str(tmp_path)!r})); print('torch' in sys.modules, r['tests']['source'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[:1] == ["False"] and "did not run" in proc.stdout
    assert (tmp_path / "gpu_check.md").read_text().count("| not measured |") == 6
    assert "the probe step did not finish" in (tmp_path / "gpu_check.json").read_text()
