#!/usr/bin/env bash
# The prepared GPU check: one H100/H200, at most 8 minutes, no network. Run from anywhere:
#
#   bash scripts/gpu_check.sh                 # on the GPU machine (after `make wheelhouse` where an index is reachable)
#   bash scripts/gpu_check.sh --cpu-dry-run   # anywhere: the same steps on the CPU with tiny sizes
#   bash scripts/gpu_check.sh --setup-only    # only (a): the virtualenv that scripts/gpu_grids.sh trains with
#
# (a) makes a fresh virtualenv over the machine's own torch (`python -m venv --system-site-packages`; when that
#     python is itself a virtualenv, as the GPU image's /opt/torch/.venv, a .pth file chains its packages in) and
#     installs posereg with `pip install --no-index --find-links wheelhouse -e .[fastjpeg]`: torch, torchvision and
#     the rest already there are kept (TORCH_SPEC= semantics), only what the image lacks comes from wheelhouse/;
# (b) runs the `gpu` tests (tests/test_gpu.py);
# (c) measures (scripts/gpu_check.py) end-to-end img/s of quickstart and of the ResNet-50 256² I1 preset on SynthPose
#     and on real images, the model-only / loader-only / end-to-end triple, SSP-Net FPS (full and p4l1, batch 1 and
#     32), fp32 vs bf16 and eager vs compiled, and writes gpu_check.json + gpu_check.md (+ logs) under $OUT, or
#     docs/benchmarks/gpu/ when OUT is unset.
# Settings (environment): PYTHON (the interpreter with torch; python3), VENV (/tmp/posereg-gpu-venv), WHEELHOUSE
# (wheelhouse), WORKERS (loader workers, 12), BUDGET_S (seconds for everything, 470), POSEREG_REAL_SLICES (the real
# data slices; default ../shared/data/real_slices beside the checkout: without them the real-image rows are skipped).
set -uo pipefail
started=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
dry=""
case "${1:-}" in
  --cpu-dry-run) dry="--cpu-dry-run" ;;
  --setup-only) dry="setup-only" ;;
  "") ;;
  *) echo "usage: bash scripts/gpu_check.sh [--cpu-dry-run | --setup-only]" >&2; exit 2 ;;
esac
out=${OUT:-docs/benchmarks/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
venv=${VENV:-/tmp/posereg-gpu-venv}
wheels=${WHEELHOUSE:-wheelhouse}
budget=${BUDGET_S:-470}
say() { echo "[gpu_check $(($(date +%s) - started)) s] $*"; }

# (a) a fresh virtualenv over the machine's torch, posereg installed from the wheelhouse only
say "virtualenv $venv over $("$py" -c 'import sys; print(sys.executable)')"
rm -rf "$venv"
pip=("$venv/bin/python" -m pip)
if ! "$py" -m venv --system-site-packages "$venv" 2>"$out/venv.log"; then
  # no ensurepip (a Debian/Ubuntu python without python3-venv): the machine's pip installs into the new venv
  rm -rf "$venv"
  "$py" -m venv --system-site-packages --without-pip "$venv" || exit 2
  pip=("$py" -m pip --python "$venv/bin/python")
fi
site_dir=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$py" -c 'import site, sys; print("\n".join(site.getsitepackages()) if sys.prefix != sys.base_prefix else "")' \
  > "$site_dir/_machine_site.pth"
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  echo "error: $py has no torch visible to the new virtualenv: set PYTHON to the interpreter that has torch" >&2
  exit 2
fi
[ -d "$wheels" ] || { echo "error: no $wheels/: run 'make wheelhouse' where a package index is reachable" >&2; exit 2; }
# Only the wheels whose distribution the machine lacks, without dependency resolution: the machine's own
# packages (torch, opencv under whichever distribution name, numpy, ...) are never replaced, and a dependency
# spelled differently there (opencv-python vs opencv-python-headless) cannot fail the install.
missing=$("$venv/bin/python" - "$wheels" <<'PY'
import importlib.metadata as md, pathlib, re, sys
for whl in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", whl.name.split("-")[0]).lower()
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(whl)
PY
)
say "pip install --no-index --no-deps: $(echo "$missing" | wc -w) wheels the machine lacks, then posereg itself"
# shellcheck disable=SC2086
if ! { [ -z "$missing" ] || "${pip[@]}" install -q --no-index --no-deps $missing; } >"$out/install.log" 2>&1 \
   || ! "${pip[@]}" install -q --no-index --find-links "$wheels" --no-deps -e . >>"$out/install.log" 2>&1; then
  tail -20 "$out/install.log" >&2
  echo "error: installing from $wheels failed (log: $out/install.log)" >&2
  exit 2
fi
"${pip[@]}" check >>"$out/install.log" 2>&1 || echo "(pip check found unmet metadata requirements: $out/install.log)"
if ! "$venv/bin/python" -c 'import posereg.cli.train, posereg.data.decode, hydra, omegaconf, albumentations, cv2
import pycocotools.coco, wandb, submitit, torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tee -a "$out/install.log"; then
  echo "error: posereg does not import in $venv (log: $out/install.log)" >&2
  exit 2
fi
[ "$dry" = "setup-only" ] && exit 0

# (b) the gpu tests (skipped, not failed, without a CUDA device: the dry run shows that)
say "pytest -m gpu"
tests_limit=$((budget / 2))
timeout "$tests_limit" "$venv/bin/python" -m pytest -m gpu -p no:cacheprovider tests/test_gpu.py \
  --junitxml="$out/gpu_tests.xml" >"$out/gpu_tests.log" 2>&1
tests_exit=$?
tail -3 "$out/gpu_tests.log"

# (c) the measurements, inside what is left of the budget
say "scripts/gpu_check.py"
WANDB_MODE=offline "$venv/bin/python" scripts/gpu_check.py --out "$out" --started "$started" \
  --deadline "$((started + budget))" --workers "${WORKERS:-12}" --tests-xml "$out/gpu_tests.xml" \
  --tests-exit "$tests_exit" $dry 2>"$out/gpu_check.log"
bench_exit=$?
say "done: $out/gpu_check.md, $out/gpu_check.json (tests exit $tests_exit, bench exit $bench_exit)"
[ "$tests_exit" -eq 0 ] && [ "$bench_exit" -eq 0 ]
