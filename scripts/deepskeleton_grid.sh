#!/usr/bin/env bash
# DeepSkeleton end to end (the multirun template deepskeleton_table), in the order the stages need:
#   1. stage 1: one skeleton-map run per hypothesis (stick width) and seed;
#   2. stage 2: per width and seed, regression from GT maps and from that width's predicted maps;
#      per seed one direct-RGB regression (the width does not matter to it);
#   3. posereg-hypotheses per input source and seed (the first width is the "single" hypothesis);
#   4. posereg-report with the deepskeleton_table template.
# Re-running continues where it stopped (finished runs are skipped, interrupted ones resume).
#   scripts/deepskeleton_grid.sh                          # SynthPose on the CPU (deepskeleton_synth_*)
#   SEEDS="0 1 2" WIDTHS="1 2 3" POSEREG_RUNS_DIR=/data/runs scripts/deepskeleton_grid.sh
#   PRESET=h36m WIDTHS="3 1 5" SOURCE=<2D run dir> scripts/deepskeleton_grid.sh data.root=/data/h36m
# Extra arguments are passed to every training run (e.g. data.root=..., trainer.max_epochs=...).
set -eu
cd "$(dirname "$0")/.."
runs=${POSEREG_RUNS_DIR:-runs}
preset=${PRESET:-synth}
seeds=${SEEDS:-0 1 2}
widths=${WIDTHS:-1 2}  # stick widths in pixels of the finest map (16² on SynthPose, 56² on Human3.6M)
source2d=${SOURCE:-gt}
threads=${THREADS:-1}
bin=.venv/bin
# every run gets an explicit directory (hydra.run.dir): the key of a predicted-map run would hold the
# stage-1 path, and extra arguments would change the keys
train() { local dir=$1; shift
          nice -n 10 "$bin/posereg-train" "paths.runs_dir=$runs" "hydra.run.dir='$dir'" "num_threads=$threads" \
            data.num_workers=0 callbacks.progress_bar=null "$@"; }
maps="$runs/deepskeleton_${preset}_maps"
regress="$runs/deepskeleton_${preset}_regress"
hyp="$runs/deepskeleton_${preset}_hypotheses"
for seed in $seeds; do
  for w in $widths; do
    train "$maps/width=$w,seed=$seed" "experiment=deepskeleton_${preset}_maps" "method.skeleton.width=$w" \
          "seed=$seed" "$@"
  done
done
for seed in $seeds; do
  train "$regress/rgb,seed=$seed" "experiment=deepskeleton_${preset}_regress" method.input.source=rgb "seed=$seed" "$@"
  for w in $widths; do
    train "$regress/gt,width=$w,seed=$seed" "experiment=deepskeleton_${preset}_regress" method.input.source=gt \
          "method.skeleton.width=$w" "seed=$seed" "$@"
    train "$regress/predicted,width=$w,seed=$seed" "experiment=deepskeleton_${preset}_regress" \
          method.input.source=predicted "method.input.stage1_run='$maps/width=$w,seed=$seed'" \
          "method.skeleton.width=$w" "seed=$seed" "$@"
  done
done
for seed in $seeds; do
  for name in gt predicted rgb; do
    list=""
    if [ "$name" = rgb ]; then list="$regress/rgb,seed=$seed"
    else for w in $widths; do list="$list${list:+,}$regress/$name,width=$w,seed=$seed"; done
    fi
    nice -n 10 "$bin/posereg-hypotheses" "runs=$list" "source=$source2d" "num_threads=$threads" \
         "out=$hyp/method.input.source=$name,seed=$seed"
  done
done
"$bin/posereg-report" "$hyp" --template deepskeleton_table --out "$hyp/report"
