#!/usr/bin/env bash
# One hider variant checked against the reference protocol's victim (fastcnn, victim profile fast, seeds 0-2):
# cpu hider profile + the given --set overrides, SIG secrets, class-wise, seed 0; protect the 60k
# Fashion-MNIST training set; train the victims on it under the listed countermeasures.
# Usage: bash experiments/reference-fmnist/hider-tuning/check.sh NAME COUNTERMEASURES [--set KEY=VALUE ...]
# (e.g. check.sh wf001 Vanilla --set w_freq=0.01). Writes runs/diag/{hider-,prot-}NAME and runs/diag/NAME.jsonl.
set -eu
cd "$(dirname "$0")/../../.."
N=$1; CMS=$2; shift 2
D=.venv/bin/deephide; R=runs/diag
[ -d $R/prot-$N ] || { $D train-hider --data fashion-mnist --profile cpu --quiet --secrets sig --mode class --out $R/hider-$N "$@";
  $D protect --data fashion-mnist --hider $R/hider-$N --mode class --out $R/prot-$N --quiet; }
cat > $R/$N.yaml <<EOC
name: diag-$N
out: $R/$N.jsonl
test: fashion-mnist
seeds: [0, 1, 2]
profile: fast
resources: {cpus: 1, gpus: 0}
models: [fastcnn]
train_sets:
  "$N": $R/prot-$N
countermeasures: [$CMS]
EOC
$D grid $R/$N.yaml --executor local --quiet
.venv/bin/python - <<EOP
import json, numpy as np
rs=[json.loads(l) for l in open("$R/$N.jsonl")]
by={}
for r in rs: by.setdefault(r["countermeasure"],[]).append(r["final_acc"]*100 if r["final_acc"]<=1 else r["final_acc"])
for k,v in by.items(): print("$N", k, f"{np.mean(v):.2f} +- {np.std(v, ddof=1) if len(v)>1 else 0:.2f}", [round(x,2) for x in v])
EOP
