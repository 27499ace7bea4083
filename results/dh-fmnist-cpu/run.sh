#!/usr/bin/env bash
# Deep Hiding on Fashion-MNIST at CPU scale (issues 3 and 4): hiders, protected sets, victims, report.
# Resumable: rerun the same command after an interruption. Usage: bash results/dh-fmnist-cpu/run.sh
# The LFC ResNet-18 (cpu victim profile, 1,400 iterations, seed 0) is trained by the first hider
# and cached under $DEEPHIDE_CACHE (default ~/.cache/deephide).
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.venv/bin/deephide
R=runs/fmnist
G=results/dh-fmnist-cpu
mkdir -p $R
hider() {  # name secrets mode [--set ...]
  local name=$1 src=$2 mode=$3; shift 3
  echo "== hider $name ($(date +%T))"
  $D train-hider --data fashion-mnist --profile cpu --quiet --secrets "$src" --mode "$mode" --out $R/hider-$name "$@"
}
protect() {  # name mode
  [ -d $R/prot-$1 ] || { echo "== protect $1 ($(date +%T))"; $D protect --data fashion-mnist --hider $R/hider-$1 --mode $2 --out $R/prot-$1 --quiet; }
  [ -f $R/prot-$1.verify.json ] || $D verify --clean fashion-mnist --protected $R/prot-$1 --out $R/prot-$1.verify.json
}
hider nextclass-C next-class class;  protect nextclass-C class
hider sig-C sig class;               protect sig-C class
hider nextclass-S next-class sample; protect nextclass-S sample
hider sig-S sig sample;              protect sig-S sample
echo "== victims, main rows ($(date +%T))"
$D grid $G/grid-main.yaml --quiet
hider hideonly-C next-class class --set lfc=false --set w_reveal=0 --set w_freq=0; protect hideonly-C class
echo "== victims, all rows ($(date +%T))"
$D grid $G/grid.yaml --quiet
$D report $G/results.jsonl --out $G/report --stat final --force --samples fashion-mnist $R/prot-sig-C $R/hider-sig-C
echo "== done ($(date +%T))"
