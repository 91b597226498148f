"""A fuzz test of run directories: a seeded generator damages or rewrites one file of a finished tiny run per
case and runs every tool on it; each outcome is correct (exit 0) or one line with exit 2 / 74 / 75 — never a
traceback, never a marker file (the foreign `_target_`s and crafted checkpoints try to create one).

POSEREG_FUZZ_CASES=<n> (default 20, sized for make test) and POSEREG_FUZZ_SEED=<s> run more or other cases;
the summary of outcomes per tool is printed (pytest -s); POSEREG_FUZZ_DUMP=<file> writes every bad outcome
there in full.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import io
import json
import os
import random
import shutil
import subprocess
import sys
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import compose_config
from posereg.runs import RunDir

pytestmark = pytest.mark.slow
CASES = int(os.environ.get("POSEREG_FUZZ_CASES", "20"))  # make test's share; more: the env var
SEED = int(os.environ.get("POSEREG_FUZZ_SEED", "25"))
OVERRIDES = ["debug=tiny", "logger=none", "backbone.name=test_efficientnet", "method.head.width=16",
             "data.input_size=32", "data.batch_size=2", "data.eval_batch_size=2", "trainer.max_epochs=1",
             "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
             "callbacks.lr_monitor=null", "keep_checkpoints=full"]  # full: debug=tiny keeps weights only
FILES = ("status.json", "metrics.json", ".hydra/config.yaml", ".hydra/overrides.yaml", "csv/metrics.csv",
         "checkpoints/last.ckpt", "checkpoints/best.ckpt", ".lock")
TOOLS = ("eval", "predict", "export", "report", "clean", "train")
ONE_LINE_CODES = (2, 74, 75)
SRC = Path(__file__).resolve().parents[1] / "src"


class Payload:
    """Runs a shell command when unpickled with full pickle (what a planted checkpoint carries)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


# ------------------------------------------------------------------------------------------- damage
def _leaves(node, path=()):
    """(path, value) of every leaf of a JSON/YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list) and node:
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path, node


def _nodes(node, path=()):
    """(path, mapping) of every mapping of a document."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _nodes(v, (*path, i))


def _set(doc, path, value):
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _wrong_value(rng: random.Random, marker: Path):
    return rng.choice([[1, 2, 3], {"a": 1}, "a string", None, 1e308, 10**100, -1, True, "", [], {},
                       "x" * 200_000, f"${{oc.env:HOME}}/{marker.name}"])


def _payloads(marker: Path, evil: Path) -> list[dict]:
    """Config nodes that would run code or unpickle the crafted checkpoint if they were ever instantiated."""
    touch = f"touch {marker}"
    return [
        {"_target_": "os.system", "_args_": [touch]},
        {"_target_": "builtins.eval", "_args_": [f"open({str(marker)!r}, 'w')"]},
        {"_target_": "builtins.exec", "_args_": [f"open({str(marker)!r}, 'w')"]},
        {"_target_": "subprocess.call", "args": ["touch", str(marker)]},
        {"_target_": "torch.load", "f": str(evil), "weights_only": False},
        {"_target_": "posereg.weights.load_checkpoint", "path": str(evil), "trust": True},
        {"_target_": "torch.optim.Adam", "_partial_": True, "lr": {"_target_": "os.system", "_args_": [touch]}},
        {"_target_": "posereg.nets.Backbone", "_recursive_": False, "name": {"_target_": "os.system",
                                                                              "_args_": [touch]}},
        {"_target_": "functools.partial", "_args_": [{"_target_": "hydra.utils.get_method", "path": "os.system"},
                                                     touch]},
    ]


def damage(run: Path, rng: random.Random, marker: Path, evil: Path) -> tuple[str, str]:
    """Damage or rewrite one file of `run`; returns (file, what was done)."""
    name = rng.choice(FILES)
    path = run / name
    data = path.read_bytes() if path.exists() else b""
    generic = ["truncate", "garbage", "empty", "not utf-8"]
    kind = rng.choice(generic + {
        "status.json": ["json type", "json field", "json huge", "json deep", "interrupted"],
        "metrics.json": ["json type", "json field", "json huge", "json deep", "json nan"],
        ".hydra/config.yaml": ["foreign target"] * 4 + ["yaml tag", "oc.decode", "trust", "yaml field",
                                                        "yaml huge", "yaml drop", "yaml alias"],
        ".hydra/overrides.yaml": ["yaml tag", "overrides type", "overrides unknown", "overrides huge"],
        "csv/metrics.csv": ["csv columns", "csv huge"],
        "checkpoints/last.ckpt": ["pickle payload", "ckpt structure", "ckpt shapes"] * 2,
        "checkpoints/best.ckpt": ["pickle payload", "ckpt structure", "ckpt shapes"] * 2,
        ".lock": ["lock other host", "lock held"],
    }[name])
    if kind == "truncate":
        path.write_bytes(data[: rng.randrange(len(data) + 1)])
    elif kind == "garbage":
        path.write_bytes(rng.randbytes(rng.choice([1, 17, 1000, 100_000])))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not utf-8":
        path.write_bytes(b"\xff\xfe\x80" + data)
    elif kind == "json type":
        path.write_text(json.dumps(rng.choice([[1, 2], "status", 3.5, None, True])))
    elif kind in ("json field", "json huge", "json nan"):
        doc = json.loads(data)
        leaf, _ = rng.choice(list(_leaves(doc)))
        value = {"json field": _wrong_value(rng, marker), "json huge": "x" * rng.choice([10**6, 4 * 10**6]),
                 "json nan": float("nan")}[kind]
        path.write_text(json.dumps(_set(doc, leaf, value)))
    elif kind == "json deep":
        path.write_text("[" * 50_000 + "]" * 50_000)
    elif kind == "interrupted":  # a valid rewrite: the run needs resuming (its checkpoints are read)
        doc = json.loads(data)
        doc.update(status="interrupted", exit_code=143)
        path.write_text(json.dumps(doc))
    elif name == ".hydra/config.yaml" and kind.startswith(("foreign", "oc.", "trust", "yaml")):
        doc = yaml.safe_load(data)
        if kind == "foreign target":
            payload = rng.choice(_payloads(marker, evil))
            targets = [p for p, n in _nodes(doc) if "_target_" in n]
            if rng.random() < 0.5 and targets:
                doc = _set(doc, rng.choice(targets), payload)  # replace a node posereg builds
            else:  # or add one where posereg builds every entry
                section = rng.choice([("data", "metrics"), ("callbacks",), ("method", "loss"), ("logger",)])
                _set(doc, (*section, "evil"), payload)
            path.write_text(yaml.safe_dump(doc))
        elif kind == "yaml tag":
            leaf, _ = rng.choice([lf for lf in _leaves(doc) if lf[0]])
            text = yaml.safe_dump(_set(doc, leaf, "TAGGED"))
            path.write_text(text.replace("TAGGED", f"!!python/object/apply:os.system ['touch {marker}']", 1))
        elif kind == "oc.decode":
            leaf, _ = rng.choice([lf for lf in _leaves(doc) if lf[0]])
            decoded = f"${{oc.decode:'{{_target_: os.system, _args_: [touch {marker}]}}'}}"
            path.write_text(yaml.safe_dump(_set(doc, leaf, decoded)))
        elif kind == "trust":  # a stored trust setting and a crafted best.ckpt that needs it
            doc["trust_checkpoints"] = True
            doc.setdefault("method", {}).setdefault("module", {})["trust_checkpoints"] = True
            path.write_text(yaml.safe_dump(doc))
            shutil.copy(evil, run / "checkpoints" / "best.ckpt")
        elif kind == "yaml field":
            leaf, _ = rng.choice([lf for lf in _leaves(doc) if lf[0]])
            path.write_text(yaml.safe_dump(_set(doc, leaf, _wrong_value(rng, marker))))
        elif kind == "yaml huge":
            leaf, _ = rng.choice([lf for lf in _leaves(doc) if lf[0]])
            path.write_text(yaml.safe_dump(_set(doc, leaf, "y" * rng.choice([300_000, 2 * 10**6]))))
        elif kind == "yaml drop":
            parent, node = rng.choice([(p, n) for p, n in _nodes(doc) if n])
            del node[rng.choice(list(node))]
            path.write_text(yaml.safe_dump(doc))
        elif kind == "yaml alias":
            path.write_text("base: &b [" + ", ".join(["x"] * 10) + "]\n"
                            + "".join(f"l{i}: &l{i} [*{'b' if i == 0 else f'l{i - 1}'}]\n" for i in range(30)))
    elif kind == "overrides type":
        path.write_text(yaml.safe_dump(rng.choice([{"a": 1}, "a string", [{"x": 1}], [None, 3]])))
    elif kind == "overrides unknown":
        path.write_text(yaml.safe_dump(["method.no_such_key=1", "trust_checkpoints=true", "+evil._target_=os.system"]))
    elif kind == "overrides huge":
        path.write_text(yaml.safe_dump(["seed=" + "9" * 100_000]))
    elif name == ".hydra/overrides.yaml":  # yaml tag
        path.write_text(f"- !!python/object/apply:os.system ['touch {marker}']\n")
    elif kind == "csv columns":
        path.write_text("step,epoch,\x00weird\n1,nan,inf\n" + "a,b,c,d,e\n" * 3)
    elif kind == "csv huge":
        path.write_text("step,val/loss\n" + f"{10**100},{1e308}\n" + "1," + "9" * 100_000 + "\n")
    elif kind == "pickle payload":
        torch.save({"state_dict": {}, "evil": Payload(f"touch {marker}")}, path)
        if rng.random() < 0.5:
            _interrupted(run)
    elif kind == "ckpt structure":
        torch.save(rng.choice([[1, 2], {"state_dict": [1, 2]}, {"state_dict": {"net.x": "not a tensor"}},
                               {"epoch": "x"}, {"state_dict": None}]), path)
        if rng.random() < 0.5:
            _interrupted(run)
    elif kind == "ckpt shapes":
        ckpt = torch.load(path, weights_only=True) if data else {"state_dict": {}}
        key = rng.choice(sorted(ckpt["state_dict"]))
        ckpt["state_dict"][key] = torch.zeros(3, 5, 7)
        torch.save(ckpt, path)
        if rng.random() < 0.5:
            _interrupted(run)
    elif kind == "lock other host":
        path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "job": None, "since": "then"}))
    elif kind == "lock held":
        path.write_text(json.dumps({"host": "here", "pid": os.getpid(), "job": None, "since": "now"}))
    return name, kind


def _interrupted(run: Path) -> None:
    """Mark the run interrupted, so posereg-train resumes it from its (damaged) checkpoints."""
    status = json.loads((run / "status.json").read_text())
    status.update(status="interrupted", exit_code=143)
    (run / "status.json").write_text(json.dumps(status))


# -------------------------------------------------------------------------------------------- tools
def _call(fn) -> tuple[int | str, str]:
    """Run a tool in this process: (exit code, or 'crash' with the traceback; its printed output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = fn()
            code = 0 if code is None or isinstance(code, dict) else code
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else 1
        except BaseException:  # noqa: BLE001 - what the fuzz looks for
            return "crash", out.getvalue() + traceback.format_exc()
    return code, out.getvalue()


def run_tools(run: Path, grid: Path, work: Path, image: Path, cfg, monkeypatch) -> dict[str, tuple]:
    """Every tool on `run`: tool -> (exit code, output)."""
    from posereg.cli import export as export_cli
    from posereg.cli.clean import main as clean_main
    from posereg.cli.eval import main as eval_main
    from posereg.cli.predict import main as predict_main
    from posereg.cli.report import main as report_main
    from posereg.recipes import export as export_recipe
    from posereg.recipes.train import train_task

    # the network's serialisation (a trace: seconds) does not read the run directory; everything before it does
    monkeypatch.setattr(export_recipe.E, "export_torchscript", lambda wrapper, out: Path(out).write_bytes(b"ts"))
    monkeypatch.setattr(export_recipe.E, "max_difference", lambda wrapper, out, fmt: {"joints_crop_px": 0.0})
    cfg = copy.deepcopy(cfg)
    cfg.paths.runs_dir = str(grid.parent)
    # the tools that write (clean, train) last, clean on a copy: each tool meets the damage as it was made
    clean_grid = work / "clean" / grid.name
    shutil.copytree(grid, clean_grid)
    return {
        "eval": _call(lambda: eval_main([f"run={run}"])),
        "predict": _call(lambda: predict_main([f"run={run}", f"input={image}", f"out={work / 'pred'}", "device=cpu",
                                               "overlays=false"])),
        "export": _call(lambda: export_cli.main([f"run={run}", "format=torchscript", f"out={work / 'net.pt'}"])),
        "report": _call(lambda: report_main([str(grid), "--no-plots", "--out", str(work / "report")])),
        "clean": _call(lambda: clean_main([str(clean_grid), "--apply"])),
        "train": _call(lambda: train_task(cfg, run_path=run, overrides=OVERRIDES, multirun=False)),
    }


def judge(code, output: str) -> str | None:
    """Why an outcome is not allowed (None: correct, or one line with an allowed exit code)."""
    if code == "crash":
        return "a traceback"
    if "Traceback" in output:
        return "a traceback in the output"
    if code == 0:
        return None
    if code not in ONE_LINE_CODES:
        return f"exit code {code}"
    lines = [line for line in output.splitlines() if line.startswith(("error", "busy"))]
    return None if len(lines) == 1 else f"{len(lines)} error lines"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A finished tiny run (full checkpoints), an input image and a crafted checkpoint."""
    from posereg.recipes.train import train_task

    root = tmp_path_factory.mktemp("fuzz")
    cfg = compose_config([*OVERRIDES, f"paths.runs_dir={root / 'runs'}"])
    run = root / "runs" / "fuzz" / "run"
    train_task(copy.deepcopy(cfg), run_path=run, overrides=OVERRIDES, multirun=False)
    assert RunDir(run).read_status()["status"] == "done" and RunDir(run).last_ckpt.is_file()
    image = root / "person.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 36, 3), dtype=np.uint8)).save(image)
    return run, image, cfg


def test_every_tool_on_damaged_run_directories_is_correct_or_one_line(pristine, tmp_path, monkeypatch):
    run0, image, cfg = pristine
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "evil": Payload(f"touch {marker}")}, evil)
    outcomes: Counter = Counter()
    per_file: Counter = Counter()
    failures = []
    for i in range(CASES):
        rng = random.Random(SEED * 100_003 + i)
        case = tmp_path / f"case{i}"
        grid = case / "runs" / "fuzz"
        run = grid / "run"
        shutil.copytree(run0, run)
        name, kind = damage(run, rng, marker, evil)
        held = None
        if kind == "lock held":  # another process trains it: the lock's flock is taken
            held = os.open(run / ".lock", os.O_RDWR)
            fcntl.flock(held, fcntl.LOCK_EX)
        try:
            results = run_tools(run, grid, case / "work", image, cfg, monkeypatch)
        finally:
            if held is not None:
                os.close(held)
        for tool, (code, output) in results.items():
            outcomes[(tool, code)] += 1
            per_file[(name, tool, "ok" if code == 0 else str(code))] += 1
            why = judge(code, output)
            if why or marker.exists():
                failures.append(f"case {i} ({name}: {kind}) {tool}: {why or 'the marker file exists'}\n"
                                f"{output[-2500:]}")
        assert not marker.exists(), failures[-1]
        shutil.rmtree(case)
    summary = ", ".join(f"{tool} {code}: {n}" for (tool, code), n in sorted(outcomes.items(), key=str))
    print(f"\nfuzz: {CASES} cases (seed {SEED}), {CASES * len(TOOLS)} tool runs: {summary}")
    for (name, tool, code), n in sorted(per_file.items()):
        print(f"  {name:24s} {tool:8s} {code:5s} {n}")
    if failures and os.environ.get("POSEREG_FUZZ_DUMP"):  # every bad outcome in full, for debugging
        Path(os.environ["POSEREG_FUZZ_DUMP"]).write_text("\n\n".join(failures))
    assert not failures, f"{len(failures)} bad outcomes:\n" + "\n".join(f.splitlines()[0] for f in failures) \
        + "\n\nthe first:\n" + failures[0]
    assert sum(n for (tool, code), n in outcomes.items() if code == 0) > 0  # the damage is not always fatal
    assert sum(n for (tool, code), n in outcomes.items() if code == 2) > 0


def test_a_planted_run_in_a_subprocess_is_one_line_and_exit_2(pristine, tmp_path):
    """The same door at the process level: posereg-eval and posereg-train on a foreign target."""
    run0, _, _ = pristine
    marker = tmp_path / "MARKER"
    run = tmp_path / "runs" / "fuzz" / "run"
    shutil.copytree(run0, run)
    doc = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    doc["method"]["optimizer"] = {"_target_": "os.system", "_args_": [f"touch {marker}"]}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(doc))
    _interrupted(run)
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    for command in (["posereg.cli.eval", f"run={run}"],
                    ["posereg.train", *OVERRIDES, f"paths.runs_dir={tmp_path / 'runs'}", "experiment_name=fuzz",
                     f"hydra.run.dir={run}"]):
        result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=300,
                                env=env)
        errors = [line for line in result.stdout.splitlines() if line.startswith("error")]
        assert result.returncode == 2 and len(errors) == 1, result.stdout[-2000:] + result.stderr[-2000:]
        assert "method.optimizer._target_=os.system is not a class posereg builds" in errors[0]
        assert "Traceback" not in result.stderr
    assert not marker.exists()
