#!/usr/bin/env bash
# DeepPose's cascade end to end (the multirun template deeppose_cascade), stage by stage:
#   1. stage 1 per seed: R1 at the Integral CPU budget (experiment=integral_synth2d method=r1);
#   2. stage s = 2..STAGES per seed: experiment=deeppose_synth, trained on the finished stage s-1 run of its seed;
#   3. posereg-report over the last stage's runs (each evaluates every stage: val/pckh@0.5@stage1, ...).
# Re-running continues where it stopped (finished runs are skipped, interrupted ones resume).
#   scripts/deeppose_grid.sh                              # 3 stages x seeds 1 2 3 on SynthPose 2D, CPU budget
#   STAGES=2 SEEDS="0" POSEREG_RUNS_DIR=/data/runs scripts/deeppose_grid.sh
# Extra arguments are passed to every training run (e.g. trainer=gpu, data.num_workers=4).
set -eu
cd "$(dirname "$0")/.."
runs=${POSEREG_RUNS_DIR:-runs}
# seeds 1-3: seed 0 was the pilot on which method.cascade.sigma and trunk_init were chosen (held out of the table)
seeds=${SEEDS:-1 2 3}
stages=${STAGES:-3}
threads=${THREADS:-1}
bin=.venv/bin
out="$runs/deeppose_synth"
# every run gets an explicit directory (hydra.run.dir): a stage's key would otherwise hold the previous run's path
train() { local dir=$1; shift
          nice -n 10 "$bin/posereg-train" "paths.runs_dir=$runs" "hydra.run.dir='$dir'" "num_threads=$threads" \
            data.num_workers=0 callbacks.progress_bar=null "$@"; }
for seed in $seeds; do
  train "$out/stage1,seed=$seed" experiment=integral_synth2d method=r1 "seed=$seed" "$@"
  for s in $(seq 2 "$stages"); do
    train "$out/stage$s,seed=$seed" experiment=deeppose_synth "method.cascade.stages=$s" \
          "method.cascade.previous_run='$out/stage$((s - 1)),seed=$seed'" "seed=$seed" "$@"
  done
done
"$bin/posereg-report" "$out/stage$stages,*" --template deeppose_cascade --out "$out/report"
