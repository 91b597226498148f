#!/usr/bin/env bash
# Run (or resume) the paper-claim grids at their CPU budgets, one after the other, at low priority, JOBS cells
# at a time (default 2).
# Re-running continues where it stopped (done cells are skipped, interrupted ones resume from last.ckpt).
#   POSEREG_RUNS_DIR=/data/runs scripts/paper_grids.sh            # all of them
#   scripts/paper_grids.sh integral_table1 integral_table7         # some of them
# Reports are written to <runs>/<template>/report/; docs/results/ holds the committed ones.
set -u
cd "$(dirname "$0")/.."
runs=${POSEREG_RUNS_DIR:-runs}
templates=("$@")
# every claim template but the chained ones (DeepSkeleton: scripts/deepskeleton_grid.sh, DeepPose's cascade:
# scripts/deeppose_grid.sh), in order of priority: T1 and T4 first (each at both of its budgets), the ResNet-50/101
# cells of Table 3 last (the longest on a CPU)
[ ${#templates[@]} -gt 0 ] || templates=(integral_table4 integral_table1 luvizon_ablation sspnet_table4 sspnet_table5
                                         integral_table8 cpn_vs_simple_baselines integral_table9 integral_table2
                                         integral_table7 integral_table3)
for t in "${templates[@]}"; do
  echo "== $t ($(date -u +%FT%TZ))"
  # two cells side by side with one torch thread each: on 2 cores that trains about twice as many steps per
  # hour as one cell with two threads (SSP-Net small: ~50 steps/min per cell either way, measured)
  nice -n 10 .venv/bin/posereg-sweep "$t" "paths.runs_dir=$runs" data.num_workers=0 num_threads=1 \
    hydra/launcher=joblib "hydra.launcher.n_jobs=${JOBS:-2}" || true
done
