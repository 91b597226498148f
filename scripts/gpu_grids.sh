#!/usr/bin/env bash
# Run (or resume) paper-claim grids on one GPU machine inside a deadline, many cells at once, then pack their
# run directories (without checkpoints) for posereg-report. The cells keep their template's budget (the CPU
# budget unless the overrides say --real): only the hardware changes, so a table run here reads like one run
# by scripts/paper_grids.sh.
#
#   OUT=gpu_out POSEREG_GIT_COMMIT=$(git rev-parse HEAD) bash scripts/gpu_grids.sh integral_table2 integral_table7
#   bash scripts/gpu_grids.sh integral_table2 -- seed=0 method=h1     # overrides after -- go to every sweep
#   tar xzf $OUT/runs.tar.gz -C "$POSEREG_RUNS_DIR" && posereg-sweep integral_table2 --report-only \
#     paths.runs_dir="$POSEREG_RUNS_DIR"                               # back home: the report
#
# Settings (environment): JOBS (cells at once, 8), WORKERS (SynthPose loader workers per cell, 2), BUDGET_S
# (seconds for everything, setup included, 470), RUNS (/tmp/posereg-gpu-runs), TRAINER (gpu; cpu for a dry run
# anywhere), VENV (/tmp/posereg-gpu-venv: made by `scripts/gpu_check.sh --setup-only` when it has no
# posereg-sweep), POSEREG_GIT_COMMIT (the commit each run's status.json records: a copied .git can be missing or
# older than the files beside it).
# A cell cut off by the deadline is left interrupted; the next call (with the run directories unpacked into RUNS
# first) resumes the grid.
set -uo pipefail
started=$(date +%s)
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
templates=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do templates+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#templates[@]} -gt 0 ] || { echo "usage: bash scripts/gpu_grids.sh TEMPLATE... [-- OVERRIDE...]" >&2; exit 2; }
out=${OUT:-docs/benchmarks/gpu}
runs=${RUNS:-/tmp/posereg-gpu-runs}
venv=${VENV:-/tmp/posereg-gpu-venv}
trainer=${TRAINER:-gpu}
deadline=$((started + ${BUDGET_S:-470}))
say() { echo "[gpu_grids $(($(date +%s) - started)) s] $*"; }
mkdir -p "$out" "$runs"

if [ ! -x "$venv/bin/posereg-sweep" ]; then
  say "setting up $venv"
  VENV=$venv bash scripts/gpu_check.sh --setup-only || exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" 2>/dev/null

# short cells: compiling the network would cost more than it saves; the speed callback exists only under gpu
speed=()
[ "$trainer" = gpu ] && speed=(callbacks.speed.compile=false)
rc=0
for t in "${templates[@]}"; do
  left=$((deadline - $(date +%s) - 20))  # 20 s kept for packing
  [ "$left" -gt 30 ] || { say "no time left for $t"; rc=1; break; }
  say "$t: ${JOBS:-8} cells at once, ${left} s left"
  # timeout signals the whole process group: the joblib workers stop with the sweep
  WANDB_MODE=offline timeout "$left" "$venv/bin/posereg-sweep" "$t" --no-report "paths.runs_dir=$runs" \
    "trainer=$trainer" "${speed[@]}" "data.num_workers=${WORKERS:-2}" num_threads=1 \
    hydra/launcher=joblib "hydra.launcher.n_jobs=${JOBS:-8}" "$@" > "$out/$t.log" 2>&1
  code=$?
  say "$t: exit $code, $(grep -l '"status": "done"' "$runs/$t"/*/status.json 2>/dev/null | wc -l) cells done"
  [ "$code" -eq 0 ] || rc=1
done

tar czf "$out/runs.tar.gz" --exclude='*.ckpt' --exclude='*.ckpt.*' --exclude=wandb -C "$runs" .
say "packed $(du -h "$out/runs.tar.gz" | cut -f1) of run directories into $out/runs.tar.gz"
exit $rc
