#!/usr/bin/env bash
# Baseline attacks on Fashion-MNIST at CPU scale (issue 6): each attack's protected set (cpu attack
# profile, seed 0, eps 8/255), its verify report, then ResNet-20 victims (vanilla, 3 seeds) through the
# grid. Resumable: sets that exist are kept, finished grid cells are skipped.
# Usage: bash experiments/attacks-fmnist-cpu/run.sh        (EXECUTOR=local to run cells one at a time)
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.venv/bin/deephide
R=runs/attacks
G=results/attacks-fmnist-cpu
E=experiments/attacks-fmnist-cpu
mkdir -p $R
for a in LSP PIL AR OPS random-noise-C semantic-added-C semantic-added-S EM-C REM EM ISGAN; do
  if [ ! -d $R/$a ]; then
    echo "== attack $a ($(date +%T))"
    $D attack $a --data fashion-mnist --profile cpu --seed 0 --out $R/$a --quiet
  fi
  [ -f $R/$a.verify.json ] || $D verify --clean fashion-mnist --protected $R/$a --out $R/$a.verify.json
done
.venv/bin/python $E/costs.py $R > $G/generation.md
echo "== victims ($(date +%T))"
# two cells at a time, one torch thread each: faster on 2 cores than one cell with two threads
$D grid $E/grid.yaml --executor "${EXECUTOR:-ray}" --quiet
$D report $G/results.jsonl --out $G/report --stat final --force
echo "== done ($(date +%T))"
