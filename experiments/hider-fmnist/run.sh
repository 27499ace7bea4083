#!/usr/bin/env bash
# The paper-objective Fashion-MNIST hiders (issue 17): class-wise and sample-wise, `long` hider profile, trained into
# results/hider-fmnist/hiders/fmnist-{class,sample}-paper/ and continued from the committed checkpoint on every call until
# the profile's iterations (or --iterations) are done. One thread each, side by side on a 2-core machine.
#   bash experiments/hider-fmnist/run.sh [SECONDS]        # time limit per call (default 7200), resumable
#   ITERATIONS=16000 bash experiments/hider-fmnist/run.sh  # train further than the profile says
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${DEEPHIDE:-.venv/bin/deephide}
LIMIT=${1:-7200}
ITER=${ITERATIONS:+--iterations $ITERATIONS}
mkdir -p runs/hider-fmnist
for mode in class sample; do
  # the first run trains (and caches) the L_LFC feature network; the second waits for it
  OMP_NUM_THREADS=1 $D train-hider --data fashion-mnist --secrets sig --mode $mode --profile long $ITER \
    --time-limit "$LIMIT" --out results/hider-fmnist/hiders/fmnist-$mode-paper --quiet > runs/hider-fmnist/$mode.log 2>&1 &
  if [ $mode = class ]; then
    until ls "${DEEPHIDE_CACHE:-$HOME/.cache/deephide}"/lfc/*-fastcnn-cpu-*-s0/weights.safetensors >/dev/null 2>&1 \
          || ! kill -0 $! 2>/dev/null; do sleep 10; done
  fi
done
wait
tail -n 2 runs/hider-fmnist/*.log
