#!/usr/bin/env bash
# `make demo`'s job measured (what the README says about it): the demo itself (its summary.json: minutes,
# clean and protected accuracy of victim seed 0), then the same victim protocol on its clean and protected
# sets with victim seeds 0-2, so its accuracy is stated as mean +- std, not one seed.
# Resumable. Usage: bash experiments/demo-fmnist/run.sh   (from a fresh clone: make setup first)
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.venv/bin/deephide
G=results/demo-fmnist
E=experiments/demo-fmnist
[ -f runs/demo/summary.json ] || $D demo --out runs/demo --quiet
cp runs/demo/summary.json $G/summary.json
$D grid $E/victims.yaml --executor ray --quiet
.venv/bin/python $E/summarise.py
