"""posereg-bench dispatches to the benchmark functions and writes their JSON results."""

from __future__ import annotations

import json

import pytest

from posereg.cli import bench


def test_quantization_bench_writes_json(tmp_path):
    bench.main(["quantization", "--quick", "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "quantization.json").read_text())
    assert payload["bench"] == "quantization"
    rows = payload["result"]
    assert [r["size"] for r in rows] == [4, 8, 16, 32]
    for r in rows:  # argmax decoding is quantization-bound, soft-argmax of the same targets is not
        assert 0.85 * r["analytic_mm"] < r["argmax_mm"] < 1.25 * r["analytic_mm"]
        assert r["soft_argmax_mm"] < 0.15 * r["argmax_mm"]


def test_unknown_bench_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["nope", "--out", str(tmp_path)])
    assert "unknown benchmark" in capsys.readouterr().err


def test_every_registered_bench_resolves():
    for name in bench.BENCHES:
        assert callable(bench._load(name))


def test_complexity_prints_and_stores_every_network(tmp_path, capsys):
    bench.main(["complexity", "--quick", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "complexity.json").read_text())["result"]
    printed = capsys.readouterr().out
    assert [r["model"] for r in rows] == [
        "i1 / resnet18", "r1 / resnet18", "sspnet", "deepskeleton_maps (stage-1 FCN) / resnet18",
        "deepskeleton_regress (stage 2 on maps) / resnet18", "deepskeleton_regress (stage 2 on rgb) / resnet18",
        "cpn, h1 / resnet18", "deeppose cascade (3 stages) / resnet18"]
    for r in rows:
        assert f"{r['model']:52s} {r['input']:4d}²  {r['params_m']:7.2f} M  {r['gmacs']:7.2f} GMACs" in printed
    # stage 2 on 6 map channels vs the 3 of the crop: ResNet-18's 7x7 stem has 64 x 3 x 49 more weights
    maps, rgb = rows[-4:-2]
    assert maps["params_m"] - rgb["params_m"] == pytest.approx(64 * 3 * 49 / 1e6, abs=0.006)


def test_the_full_complexity_listing_names_every_network(monkeypatch):
    from posereg.bench import complexity

    asked: list[str] = []
    monkeypatch.setattr(complexity, "_row", lambda label, overrides, with_backbone=False: asked.append(label) or {})
    complexity.run_complexity_bench()
    assert len(asked) == 10 * len(complexity.BACKBONES) + 2 + len(complexity.EXTRA)
    assert {"hourglass (2 stacks), i1", "deepskeleton_maps (stage-1 FCN)", "deepskeleton_regress (stage 2 on maps)",
            "deepskeleton_regress (stage 2 on rgb)", "luvizon17", "sspnet"} <= set(asked)
