"""Bad inputs get one line, never a traceback: images over the pixel limit are listed and skipped before they
are decoded (memory stays bounded), undecodable JSON is set aside like other damage, a command refused for
bad input leaves no directory behind."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posereg.jsonio import DamagedFileError, read_json
from posereg.report.collect import load_run
from posereg.runs import RunDir

ROOT = Path(__file__).resolve().parents[1]
FINISHED = (ROOT / "tests/fixtures/runs_269186e/default"
            / "backbone.name=test_efficientnet,debug=tiny,method.head.width=16,seed=0")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: Path, width: int, height: int, rows: int) -> Path:
    """A grayscale PNG whose header says width x height, with `rows` rows of black pixels compressed in it (a file
    of a few hundred KB for a 13000² image, written row by row: the test never holds the pixels)."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0, then the row
    idat = b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_images_over_the_pixel_limit_are_listed_and_skipped_and_memory_stays_bounded(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FINISHED, run)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(folder / "a.png")
    write_png(folder / "claims.png", 60000, 60000, rows=1)  # the header lies: one row of data
    real = write_png(folder / "huge.png", 13000, 13000, rows=13000)  # a real 13000² image
    assert real.stat().st_size < 400_000
    with Image.open(real) as im:
        assert im.size == (13000, 13000)
    code = ("import resource, sys\nfrom posereg.cli.predict import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)\n")

    def predict(images: Path, out: str) -> tuple[subprocess.CompletedProcess, float]:
        """posereg-predict on `images` in a process of its own, and that process's peak RSS in MB."""
        args = [f"run={run}", f"input={images}", f"out={tmp_path / out}", "device=cpu", "overlays=false"]
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=500,
                              env=_env())
        assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
        peak = next(line for line in done.stdout.splitlines() if line.startswith("MAXRSS_KB")).split()[1]
        return done, int(peak) / 1024

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(folder / "a.png", alone)
    _, baseline_mb = predict(alone, "baseline")  # torch and the model alone take most of a GB
    result, peak_mb = predict(folder, "out")
    assert "Traceback" not in result.stdout + result.stderr
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "2 input(s) skipped" in out and "13000x13000 = 169.0 M pixels, more than max_pixels=50000000" in out
    assert "claims.png" in out
    assert peak_mb - baseline_mb < 100  # decoding the 13000² image would take 169 MB as gray, 507 MB as RGB
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [Path(i["file"]).name for i in predictions["images"]] == ["a.png"]
    assert sorted(Path(f["file"]).name for f in predictions["failures"]) == ["claims.png", "huge.png"]
    # the limit is a setting: below the small image's 6300 pixels nothing is read (exit 2, one line)
    small = subprocess.run([sys.executable, "-m", "posereg.cli.predict", f"run={run}", f"input={folder}",
                            f"out={tmp_path / 'o2'}",
                            "device=cpu", "max_pixels=6000"], capture_output=True, text=True, timeout=500, env=_env())
    assert small.returncode == 2 and "no input could be read (3 failed)" in " ".join(small.stdout.split())


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b'{"status": "done", "attempts": "many"}', b"[1, 2]",
                                     b'{"status": "done", "started_at": "yesterday"}', b"9" * 5000])
def test_undecodable_or_mistyped_status_json_is_set_aside_and_inferred(tmp_path, content):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.status_file.write_bytes(content)
    with pytest.raises(DamagedFileError, match="status.json is damaged"):
        run.read_status()
    assert load_run(run.path).status == "pending"  # the report reads it as absent
    status = run.read_status(repair=True)
    assert status["status"] == "pending" and "inferred" in status["error"]
    assert [p.name.split(".damaged-")[0] for p in run.path.glob("status.json.damaged-*")] == ["status.json"]


@pytest.mark.parametrize("content", [b"\x80\x81 not utf-8", b'{"final": [1, 2]}', b'{"global_step": "7"}'])
def test_undecodable_or_mistyped_metrics_json_is_damage(tmp_path, content):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.metrics_file.write_bytes(content)
    with pytest.raises(DamagedFileError):
        run.metrics()
    assert load_run(run.path).metrics == {}
    assert run.infer_status()["status"] == "pending"


def test_read_json_names_the_file_for_any_undecodable_content(tmp_path):
    path = tmp_path / "x.json"
    for content in (b"\xff", b"{", b"[" * 100_000, b"1" * 10_000):
        path.write_bytes(content)
        with pytest.raises(DamagedFileError, match=r"x\.json is damaged"):
            read_json(path)
    path.write_bytes(b"{}")
    with pytest.raises(DamagedFileError, match="larger than any JSON"):
        read_json(path, max_bytes=1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_command_refused_for_bad_input_leaves_no_directory(tmp_path):
    runs = tmp_path / "runs"
    result = subprocess.run([sys.executable, "-m", "posereg.train", "data=mpii", "data.root=/nonexistent",
                             f"paths.runs_dir={runs}", "logger=none"], capture_output=True, text=True, timeout=300,
                            env=_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "data.root=/nonexistent" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert not runs.exists()  # neither the run directory nor the experiment folder nor the runs folder
    (runs / "default" / "other").mkdir(parents=True)  # folders that hold something else stay
    subprocess.run([sys.executable, "-m", "posereg.train", "data=mpii", "data.root=/nonexistent",
                    f"paths.runs_dir={runs}", "logger=none"], capture_output=True, timeout=300, env=_env())
    assert [p.name for p in (runs / "default").iterdir()] == ["other"]
