#!/usr/bin/env bash
# The CPU reference run (issue 7): every table of results/reference-fmnist/README.md from nothing.
# Sets (hiders, protected sets, attack sets) go to runs/reference/, victims through the grids in
# experiments/reference-fmnist/configs/, then reports and the README tables. Resumable: rerun the same command
# after an interruption (finished sets and grid cells are kept; a hider resumes from its checkpoint).
# Usage: bash experiments/reference-fmnist/run.sh      (or `make reference`; EXECUTOR=local runs cells one at a time)
# Stage start/end times are appended to runs/reference/timeline.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=.venv/bin/deephide
R=runs/reference
G=results/reference-fmnist
E=experiments/reference-fmnist
C=experiments/reference-fmnist/configs
mkdir -p $R/attacks
# grid cells are keyed by set path, not content: results from sets that are gone (a fresh clone holds the last
# committed run's) must not be mixed with new ones, so a new run moves them aside (git keeps them too)
if ls $G/*.jsonl >/dev/null 2>&1 && [ ! -f $R/timeline.tsv ]; then
  mkdir -p $R/previous-results && mv $G/*.jsonl $R/previous-results/
  echo "run.sh: new run; the results of the previous run (their sets are gone) moved to $R/previous-results/"
fi
stamp() { printf '%s\t%s\t%s\n' "$(date +%s)" "$(date -Is)" "$1" >> $R/timeline.tsv; echo "== $1 ($(date +%T))"; }
trap 'stamp stopped; exit 143' TERM INT  # an interrupted stage still gets its end time
hider() {  # name secrets mode [--set ...]: one hider (cpu hider profile, seed 0), its set, its verify report
  local name=$1 src=$2 mode=$3; shift 3
  if [ ! -d $R/prot-$name ]; then
    stamp "hider $name"
    $D train-hider --data fashion-mnist --profile cpu --quiet --secrets "$src" --mode "$mode" --out $R/hider-$name "$@"
    $D protect --data fashion-mnist --hider $R/hider-$name --mode "$mode" --out $R/prot-$name --quiet
  fi
  [ -f $R/prot-$name.verify.json ] || $D verify --clean fashion-mnist --protected $R/prot-$name --out $R/prot-$name.verify.json
}
attack() {  # name: the attack's set with the cpu attack profile, seed 0, eps 8/255
  if [ ! -d $R/attacks/$1 ]; then
    stamp "attack $1"
    $D attack $1 --data fashion-mnist --profile cpu --seed 0 --out $R/attacks/$1 --quiet
  fi
  [ -f $R/attacks/$1.verify.json ] || $D verify --clean fashion-mnist --protected $R/attacks/$1 --out $R/attacks/$1.verify.json
}
grid() {  # config: its victims (two cells at a time, one torch thread each: faster on 2 cores than one cell with two)
  stamp "grid $1"
  $D grid $C/$1.yaml --executor "${EXECUTOR:-ray}" --quiet
}
stamp "start"
# main table
hider sig-C sig class
hider sig-S sig sample
for a in LSP AR OPS random-noise-C semantic-added-C REM EM; do attack $a; done
grid main
# ablations
hider nextclass-C next-class class
hider randprompt-C random-prompt class
# one weight x10 or x0.1 of the cpu hider profile (w_reveal 1, w_freq 0.01, w_lfc 0.01)
hider w1x10-C sig class --set w_reveal=10
hider w1x0.1-C sig class --set w_reveal=0.1
hider w2x10-C sig class --set w_freq=0.1
hider w2x0.1-C sig class --set w_freq=0.001
hider w3x10-C sig class --set w_lfc=0.1
hider w3x0.1-C sig class --set w_lfc=0.001
hider hideonly-C sig class --set lfc=false --set w_reveal=0 --set w_freq=0
attack ISGAN
for g in weights sources jpeg mixtures archs; do grid $g; done
# Table J (intra/inter-class statistic of the secret banks), reports, README tables
stamp "reports"
.venv/bin/python experiments/semantic-stats/run.py
for g in main weights sources jpeg mixtures archs; do
  $D report $G/$g.jsonl --out $G/report-$g --stat final --force
done
.venv/bin/python $E/summarise.py
stamp "done"
