#!/usr/bin/env bash
# The reference campaign on a lent GPU machine (issue 18, item 6): exactly what a CUDA session of it ran.
#
#   bash experiments/reference-fmnist/gpu-session.sh MINUTES [check]
#
# The machine: one GPU, many cores, no network, a python3 that has torch with CUDA but not all of deephide's
# dependencies and no deephide install. Carried beside the repository (git-ignored, made on a networked machine):
#   .gpu/whl/            kornia, kornia_rs and emoji wheels for that python (pip download --only-binary ...)
#   .gpu/fashion-mnist/  the four Fashion-MNIST idx files, xz-compressed
# What it runs, side by side for MINUTES of wall time (results ready for the summary at the end):
#   check       first, benchmarks/gpu_check.py --quick (the CUDA path of every loop, with timings)
#   main        campaign.py run --part main: the main rows' sets on CUDA, then their grid cells, 12 at once in
#               worker processes sharing the GPU (--executor pool)
#   ablations   campaign.py run --part ablations: the ablation hiders trained on CUDA one after another, then
#               their sets and grid cells, 3 at once
# Writes to $OUT (default runs/gpu-out): gpu.txt, check.log, main.log, ablations.log, results.tgz
# (results/reference-fmnist without the hiders) and hiders-N.tar (the trained ablation hiders, a few per file).
# ROWS=R1,R2 limits the main part to those rows; ABLATIONS=0 leaves the ablation part out.
# Learnt on the H200 of 2026-12-04 (results/reference-fmnist/gpu-sessions/): the machine's image has no emoji font,
# so the rows whose secrets are rendered from emoji (semantic-added-C/S, and every ablation hider's SIG bank) fail
# there unless /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf (11 MB) is carried too, and the whole transfer must
# stay under 64 MiB (the repository without optimizer states and snapshots ~26 MB, wheels 8 MB, data 27 MB). EM,
# EM-C and REM were left out (not tried): their sets come from training a model, so a GPU's would likely differ from
# the canonical CPU-made ones beyond the tolerance.
# Cells shared the GPU by time slices: 14 fastcnn cells at once took 15-30 s each (UEraser ~70 s).
# A second call on the same (still warm) machine continues from runs/keep/ (the first call's results files).
set -u -o pipefail
MINUTES=${1:?usage: gpu-session.sh MINUTES [check]}
OUT=${OUT:-runs/gpu-out}
PY=${PY:-python3}          # PY=.venv/bin/python DEVICE=cpu: the same script rehearsed on a CPU machine
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" runs
t0=$(date +%s)
$PY -c "import kornia, emoji" 2>/dev/null \
  || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
  || { echo "gpu-session: installing the carried wheels failed" >&2; exit 1; }
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
D=/usr/share/datasets/fashion-mnist
if [ ! -e "$D/train-images-idx3-ubyte" ]; then
  mkdir -p "$D"
  $PY -c 'import lzma, pathlib, sys
for f in pathlib.Path(".gpu/fashion-mnist").glob("*.xz"):
    (pathlib.Path(sys.argv[1]) / f.stem).write_bytes(lzma.decompress(f.read_bytes()))' "$D" || exit 1
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nproc; lscpu | grep -E "Model name|Flags" | cut -c1-400;
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } > "$OUT/gpu.txt" 2>&1
if [ -d runs/keep ]; then cp runs/keep/*.jsonl results/reference-fmnist/ && cp -r runs/keep/hiders results/reference-fmnist/ 2>/dev/null; fi
if [ "${2:-}" = check ]; then
  timeout 240 $PY benchmarks/gpu_check.py --quick --out "$OUT" > "$OUT/check.log" 2>&1; echo "gpu_check exit $?" >> "$OUT/check.log"
fi
left_h=$($PY -c "print(max(0.01, ($MINUTES * 60 - ($(date +%s) - $t0) - 45) / 3600))")
C=experiments/reference-fmnist/campaign.py
$PY $C run --hours "$left_h" --margin-s 20 --device $DEVICE --executor pool --workers ${WORKERS_MAIN:-12} --part main \
  ${ROWS:+--rows "$ROWS"} > "$OUT/main.log" 2>&1 &
[ "${ABLATIONS:-1}" = 1 ] && $PY $C run --hours "$left_h" --margin-s 20 --device $DEVICE --executor pool --workers ${WORKERS_ABL:-3} --part ablations > "$OUT/ablations.log" 2>&1 &
wait
mkdir -p runs/keep && cp results/reference-fmnist/*.jsonl runs/keep/ && cp -r results/reference-fmnist/hiders runs/keep/ 2>/dev/null
tar czf "$OUT/results.tgz" --exclude=results/reference-fmnist/hiders results/reference-fmnist
ls results/reference-fmnist/hiders 2>/dev/null | xargs -r -n 3 | nl | while read -r i names; do
  tar cf "$OUT/hiders-$i.tar" $(for n in $names; do echo "results/reference-fmnist/hiders/$n"; done)
done
for f in main ablations; do tr '\r' '\n' < "$OUT/$f.log" | grep -a -v -E "^\s*$|it/s\]|s/it\]" > "$OUT/$f.tmp"; mv "$OUT/$f.tmp" "$OUT/$f.log"; done
tail -n 5 "$OUT"/main.log "$OUT"/ablations.log
echo "gpu-session: done in $(( $(date +%s) - t0 )) s"
