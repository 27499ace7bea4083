#!/usr/bin/env bash
# Deep Hiding on Fashion-MNIST at CPU scale (issues 3 and 4): hiders, protected sets, victims, report.
# Resumable: rerun the same command after an interruption. Usage: bash results/dh-fmnist-cpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.venv/bin/deephide
R=runs/fmnist
H="--data fashion-mnist --profile cpu --quiet"
mkdir -p $R
hider() {  # name secrets mode [--set ...]
  local name=$1 src=$2 mode=$3; shift 3
  echo "== hider $name ($(date +%T))"
  /usr/bin/time -f "%e s wall" $D train-hider $H --secrets "$src" --mode "$mode" --out $R/hider-$name "$@"
}
protect() {  # name mode
  [ -d $R/prot-$1 ] && return 0
  echo "== protect $1 ($(date +%T))"
  $D protect --data fashion-mnist --hider $R/hider-$1 --mode $2 --out $R/prot-$1 --quiet
}
hider nextclass-C next-class class
protect nextclass-C class
hider nextclass-S next-class sample
protect nextclass-S sample
hider hideonly-C next-class class --set lfc=false --set w_reveal=0 --set w_freq=0
protect hideonly-C class
hider sig-C sig class
protect sig-C class
hider sig-S sig sample
protect sig-S sample
for p in nextclass-C nextclass-S hideonly-C sig-C sig-S; do
  [ -f $R/prot-$p.verify.json ] || $D verify --clean fashion-mnist --protected $R/prot-$p --out $R/prot-$p.verify.json
done
echo "== victims ($(date +%T))"
$D grid results/dh-fmnist-cpu/grid.yaml --quiet
$D report results/dh-fmnist-cpu/results.jsonl --out results/dh-fmnist-cpu/report --stat final --force \
  --samples fashion-mnist $R/prot-sig-C $R/hider-sig-C
echo "== done ($(date +%T))"
