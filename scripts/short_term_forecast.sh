#!/usr/bin/env bash
# M4 short-term forecasting, the official way: one model per seasonal pattern (a Hydra multirun),
# then all patterns' forecasts scored together (per pattern, "Others" and the weighted average).
#
#   scripts/short_term_forecast.sh [data.root=DIR] [device=cuda] [model.pretrained=…] [overrides…]
#   PATTERNS=Hourly,Weekly scripts/short_term_forecast.sh data.root=…   # a subset
#
# Writes outputs/multirun/short_term_<time>/ with one run dir per pattern, forecast.csv (all
# patterns, M4 submission format), scores.json and the printed table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
PATTERNS=${PATTERNS:-Yearly,Quarterly,Monthly,Weekly,Daily,Hourly}
ROOT=data
for arg in "$@"; do [[ $arg == data.root=* ]] && ROOT=${arg#data.root=}; done
SWEEP=${SWEEP_DIR:-outputs/multirun/short_term_$(date +%Y-%m-%d_%H-%M-%S)}

"$PY" -m symtime_repro -m task=short_term dataset=M4 "dataset.seasonal_pattern=$PATTERNS" \
    "hydra.sweep.dir=$SWEEP" "$@"

# One submission file from the per-pattern forecasts (header once), then the official summary.
first=1
for f in "$SWEEP"/*/forecast.csv; do
    if ((first)); then cat "$f"; first=0; else tail -n +2 "$f"; fi
done > "$SWEEP/forecast.csv"
"$PY" -m symtime_repro.m4 score "$SWEEP/forecast.csv" --root "$ROOT" --json "$SWEEP/scores.json"
