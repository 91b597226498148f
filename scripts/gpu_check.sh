#!/usr/bin/env bash
# The prepared GPU check: one H100/H200, no network, over by its deadline whatever happens inside. From anywhere:
#
#   bash scripts/gpu_check.sh                 # on the GPU machine, with wheelhouse/ (`make wheelhouse`) in the checkout
#   bash scripts/gpu_check.sh --cpu-dry-run   # anywhere: the same steps on the CPU with tiny sizes
#   bash scripts/gpu_check.sh --setup-only    # only the setup: the virtualenv that scripts/gpu_grids.sh trains with
#
# Steps, in this order, each under `timeout` with its own limit, cut shorter where the deadline comes first
# (`timeout` signals the step's whole process group, and SIGKILLs it 10 s later if anything is left):
#   setup    a fresh virtualenv over the machine's own torch (`python -m venv --system-site-packages`; when that
#            python is itself a virtualenv, as the GPU image's /opt/torch/.venv, a .pth file chains its packages
#            in); posereg installed with `pip install --no-index` from wheelhouse/: only the distributions the
#            machine lacks come from there, its torch, torchvision, opencv, numpy ... are kept
#   probe    the GPU model, driver, torch, CUDA and cuDNN versions (machine.json)
#   tests    the `gpu` tests (tests/test_gpu.py), limit TESTS_S
#   measure  scripts/gpu_check.py measure: the measurements, most important first, each section skipped when what
#            is left before the deadline is below its estimate, measurements.json saved after each section
# The steps run together under one more `timeout` (the whole); then the summary is always written, whatever
# happened: gpu_check.md + gpu_check.json with the machine, each step's outcome (ok, failed, cut at its limit or
# at the deadline, not run), the test results, the goals of issue 29 and the measurements, in $OUT (docs/benchmarks/gpu/
# when OUT is unset), beside gpu_check_logs.tar.gz (the steps' logs). Exit status 0 when every step passed.
# Settings (environment): DEADLINE_S (seconds for everything, summary included: 480, which leaves 2 minutes of a
# 600 s device call), TESTS_S (the gpu tests' limit, 150), PYTHON (the interpreter with torch; python3), VENV
# (/tmp/posereg-gpu-venv), WHEELHOUSE (wheelhouse), WORKERS (loader workers; default: the machine's CPU cores),
# POSEREG_REAL_SLICES (the real data slices; default .real_slices/ in the checkout when there, else
# ../shared/data/real_slices beside it: without them the real-image rows are skipped).
set -uo pipefail
started=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
self=scripts/gpu_check.sh
mode=${1:-}
case "$mode" in
  --cpu-dry-run | --setup-only | "" | _setup | _steps) ;;
  *) echo "usage: bash scripts/gpu_check.sh [--cpu-dry-run | --setup-only]" >&2; exit 2 ;;
esac
out=${OUT:-docs/benchmarks/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
venv=${VENV:-/tmp/posereg-gpu-venv}
wheels=${WHEELHOUSE:-wheelhouse}
deadline=$((started + ${DEADLINE_S:-480}))  # unix time
summary_s=25  # kept for the summary: a cut step's SIGKILL grace, then writing two files
if [ -z "${POSEREG_REAL_SLICES:-}" ] && [ -d .real_slices ]; then export POSEREG_REAL_SLICES=$PWD/.real_slices; fi
say() { echo "[gpu_check $(($(date +%s) - started)) s] $*"; }

setup() {  # the virtualenv over the machine's torch, posereg installed from the wheelhouse only
  say "virtualenv $venv over $("$py" -c 'import sys; print(sys.executable)')"
  rm -rf "$venv"
  local pip=("$venv/bin/python" -m pip)
  if ! "$py" -m venv --system-site-packages "$venv" 2>"$out/venv.log"; then
    # no ensurepip (a Debian/Ubuntu python without python3-venv): the machine's pip installs into the new venv
    rm -rf "$venv"
    "$py" -m venv --system-site-packages --without-pip "$venv" || return 2
    pip=("$py" -m pip --python "$venv/bin/python")
  fi
  local site_dir missing
  site_dir=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$py" -c 'import site, sys; print("\n".join(site.getsitepackages()) if sys.prefix != sys.base_prefix else "")' \
    > "$site_dir/_machine_site.pth"
  if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
    echo "error: $py has no torch visible to the new virtualenv: set PYTHON to the interpreter that has torch" >&2
    return 2
  fi
  [ -d "$wheels" ] || { echo "error: no $wheels/: run 'make wheelhouse' where a package index is reachable" >&2; return 2; }
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
    return 2
  fi
  "${pip[@]}" check >>"$out/install.log" 2>&1 || echo "(pip check found unmet metadata requirements: $out/install.log)"
  if ! "$venv/bin/python" -c 'import posereg.recipes.train, posereg.data.decode, hydra, omegaconf, albumentations, cv2
import pycocotools.coco, wandb, submitit, torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tee -a "$out/install.log"; then
    echo "error: posereg does not import in $venv (log: $out/install.log)" >&2
    return 2
  fi
}

child="" name="" limit=0 t0=0  # the step under way (globals: the TERM trap reads them)
record() {  # record NAME STATUS EXIT_CODE SECONDS LIMIT_S: one row of steps.tsv
  printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$out/steps.tsv"
}
step() {  # step NAME LIMIT_S COMMAND...: COMMAND under `timeout`, cut at LIMIT_S or at the deadline; recorded
  local code status
  name=$1 limit=$2
  shift 2
  local left=$((deadline - summary_s - $(date +%s)))
  if [ "$left" -lt 5 ]; then
    record "$name" "not run: deadline" - 0 "$limit"
    return 124
  fi
  [ "$limit" -le "$left" ] || limit=$left
  say "$name (limit $limit s)" >&3
  t0=$(date +%s)
  # in the background, so that the trap below can pass the whole's SIGTERM on to this step's process group
  timeout -k 10 "$limit" "$@" 3>&- &
  child=$!
  wait "$child"
  code=$?
  child=""
  if [ "$code" -eq 0 ]; then status=ok
  elif [ $(($(date +%s) - t0)) -ge "$limit" ]; then status="cut at its limit"
  else status=failed
  fi
  record "$name" "$status" "$code" $(($(date +%s) - t0)) "$limit"
  return "$code"
}

case "$mode" in
  _setup | --setup-only) setup; exit $? ;;
  _steps)
    # each step's `timeout` leads a process group of its own: the whole's SIGTERM reaches this shell, not the step
    on_term() {
      [ -z "$child" ] || { kill -TERM "$child"; record "$name" "cut at the deadline" 143 $(($(date +%s) - t0)) "$limit"; }
      exit 143
    }
    trap on_term TERM
    deadline=$GPU_CHECK_DEADLINE
    dry=${2:-}
    exec 3>&1  # the console, for progress lines from inside steps whose output goes to their logs
    step setup 180 bash "$self" _setup >"$out/setup.log" 2>&1 || { tail -20 "$out/setup.log"; exit 2; }
    tail -1 "$out/setup.log"
    rc=0
    step probe 60 "$venv/bin/python" scripts/gpu_check.py probe --out "$out" >"$out/probe.log" 2>&1 || rc=1
    step tests "${TESTS_S:-150}" "$venv/bin/python" -m pytest -v -m gpu -p no:cacheprovider tests/test_gpu.py \
      --junitxml="$out/gpu_tests.xml" >"$out/gpu_tests.log" 2>&1 || rc=1
    tail -1 "$out/gpu_tests.log"
    # the measurements stop starting sections 15 s before the step's end
    # shellcheck disable=SC2086
    step measure $((deadline - summary_s - $(date +%s))) env WANDB_MODE=offline "$venv/bin/python" \
      scripts/gpu_check.py measure --out "$out" --deadline $((deadline - summary_s - 15)) \
      ${WORKERS:+--workers "$WORKERS"} $dry >"$out/measure.log" 2>&1 || rc=1
    exit $rc ;;
esac

# the driver: the steps under the whole's deadline, then the summary, always
work=(steps.tsv machine.json measurements.json gpu_tests.xml gpu_tests.log venv.log install.log setup.log probe.log
      measure.log summary.log)  # packed into gpu_check_logs.tar.gz at the end
say "deadline in $((deadline - started)) s; summary and logs in $out"
(cd "$out" && rm -f "${work[@]}" gpu_check.json gpu_check.md gpu_check_logs.tar.gz)
: > "$out/steps.tsv"
whole=$((deadline - summary_s - $(date +%s)))
GPU_CHECK_DEADLINE=$deadline timeout -k 12 "$whole" bash "$self" _steps "$mode"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then  # timeout's own exit codes: the whole was cut
  record whole "cut at the deadline" "$rc" $(($(date +%s) - started)) "$whole"
fi
for interpreter in "$venv/bin/python" "$py" python3; do
  PYTHONPATH=src timeout -k 2 15 "$interpreter" scripts/gpu_check.py summary --out "$out" >"$out/summary.log" 2>&1 \
    && break
done
cat "$out/gpu_check.md" 2>/dev/null || { cat "$out/summary.log" >&2; echo "error: no summary" >&2; rc=2; }
# a device call returns at most 8 files: the summary's two, and the logs packed beside them
(cd "$out" && mapfile -t present < <(ls "${work[@]}" 2>/dev/null) \
  && tar czf gpu_check_logs.tar.gz "${present[@]}" && rm -f "${present[@]}")
say "done, exit $rc: $out/gpu_check.md, $out/gpu_check.json, logs in $out/gpu_check_logs.tar.gz"
exit "$rc"
