#!/usr/bin/env bash
# Pre-training (task=pretrain): SymTime's own objective on synthetic series-symbol (S2) pairs, one run.
#
#   scripts/pretrain.sh [--quick] [--samples N] [--workers K] [device=cuda] [overrides…]
#
# (default)   the official preset (experiment=pretrain/official: base model, DistilBERT, batch 128,
#             256 epochs) on the S2 cache in data/S2; make it first:
#             python -m symtime_repro.data generate s2 --samples N --root data/S2
# --quick     smoke size (experiment=pretrain/quick: tiny encoders, a few hundred steps on a CPU);
#             generates its own small cache (data/S2_quick, --samples pairs, default 1000) when missing
# --samples   pairs the quick cache holds (generation resumes and extends an existing cache)
# --workers   processes generating the quick cache (default: the usable CPUs)
# The run dir holds encoder.pth (the time encoder, official finetuning.pth layout); the run ends by
# printing the fine-tuning command that loads it (model.pretrained=…).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3

quick=0 samples=1000 workers="" root=data
overrides=()
while (($#)); do
    case $1 in
        --quick) quick=1 ;;
        --samples) samples=$2; shift ;;
        --samples=*) samples=${1#--samples=} ;;
        --workers) workers=$2; shift ;;
        --workers=*) workers=${1#--workers=} ;;
        -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
        *) overrides+=("$1"); [[ $1 == data.root=* ]] && root=${1#data.root=} ;;
    esac
    shift
done

if ((quick)); then
    # Short series of at most two inputs and outputs: ~0.1 s per generator call (dims up to 6: ~2.6 s).
    "$PY" -m symtime_repro.data generate s2 --samples "$samples" --root "$root" --path S2_quick --length 128 \
        --max-input-dim 2 --max-output-dim 2 ${workers:+--workers "$workers"}
    exec "$PY" -m symtime_repro task=pretrain experiment=pretrain/quick dataset.path=S2_quick \
        "data.root=$root" ${overrides[@]+"${overrides[@]}"}
fi
exec "$PY" -m symtime_repro task=pretrain experiment=pretrain/official ${overrides[@]+"${overrides[@]}"}
