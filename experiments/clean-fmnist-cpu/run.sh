#!/usr/bin/env bash
# Issue 5: Clean row (13 countermeasures + Mean) on Fashion-MNIST, cpu victim profile, then the report.
# Resumable. Usage: bash experiments/clean-fmnist-cpu/run.sh        (EXECUTOR=local for one cell at a time)
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.venv/bin/deephide
G=results/clean-fmnist-cpu
E=experiments/clean-fmnist-cpu
# two cells at a time, one torch thread each (Ray local cluster on this machine)
for cfg in grid-seed0 grid; do
  echo "== $cfg ($(date +%T))"
  /usr/bin/time -f "%e s wall" $D grid $E/$cfg.yaml --executor "${EXECUTOR:-ray}" --quiet
done
$D report $G/results.jsonl --out $G/report --stat final --force
echo "== done ($(date +%T))"
