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
