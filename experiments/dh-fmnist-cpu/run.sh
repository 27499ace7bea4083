#!/usr/bin/env bash
# Deep Hiding on Fashion-MNIST at CPU scale (issues 3 and 4): hiders, protected sets, victims, report.
# Resumable: rerun the same command after an interruption. Usage: bash experiments/dh-fmnist-cpu/run.sh [SET ...]
# The LFC ResNet-18 (cpu victim profile, 1,400 iterations, seed 0) is trained by the first hider
# and cached under $DEEPHIDE_CACHE (default ~/.cache/deephide).
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.venv/bin/deephide
R=runs/fmnist
G=results/dh-fmnist-cpu
E=experiments/dh-fmnist-cpu
mkdir -p $R
hider() {  # name secrets mode [--set ...]; the cpu profile's settings before 2026-12-02 (w_freq 1, w_lfc 1e-4, per-channel perturbation)
  local name=$1 src=$2 mode=$3; shift 3
  echo "== hider $name ($(date +%T))"
  $D train-hider --data fashion-mnist --profile cpu --set w_freq=1 --set w_lfc=1e-4 --set grey_covers=rgb --quiet --secrets "$src" --mode "$mode" --out $R/hider-$name "$@"
}
protect() {  # name mode
  [ -d $R/prot-$1 ] || { echo "== protect $1 ($(date +%T))"; $D protect --data fashion-mnist --hider $R/hider-$1 --mode $2 --out $R/prot-$1 --quiet; }
  [ -f $R/prot-$1.verify.json ] || $D verify --clean fashion-mnist --protected $R/prot-$1 --out $R/prot-$1.verify.json
}
set_() {  # name: the hider and protected set of one row (the same commands for a full run and a partial one)
  case $1 in
    nextclass-C) hider nextclass-C next-class class;  protect nextclass-C class ;;
    sig-C)       hider sig-C sig class;               protect sig-C class ;;
    nextclass-S) hider nextclass-S next-class sample; protect nextclass-S sample ;;
    sig-S)       hider sig-S sig sample;              protect sig-S sample ;;
    hideonly-C)  hider hideonly-C next-class class --set lfc=false --set w_reveal=0 --set w_freq=0; protect hideonly-C class ;;
    *) echo "unknown set $1" >&2; exit 2 ;;
  esac
}
# `run.sh NAME ...` (re)makes only those hiders and sets, e.g. to recover a hider's log
if [ $# -gt 0 ]; then for n in "$@"; do set_ "$n"; done; exit 0; fi
for n in nextclass-C sig-C nextclass-S sig-S; do set_ $n; done
echo "== victims, main rows ($(date +%T))"
$D grid $E/grid-main.yaml --quiet
set_ hideonly-C
echo "== victims, all rows ($(date +%T))"
$D grid $E/grid.yaml --quiet
$D report $G/results.jsonl --out $G/report --stat final --force --samples fashion-mnist $R/prot-nextclass-S $R/hider-nextclass-S
echo "== done ($(date +%T))"
