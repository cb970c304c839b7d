#!/usr/bin/env bash
# Short-term forecasting on M4, the official way: one model per seasonal pattern (every preset in
# conf/experiment/short_term/, one Hydra multirun), then all patterns' forecasts scored together
# (per pattern, "Others" and the weighted average), then the sweep's report.
#
#   scripts/short_term_forecast.sh [--quick] [--datasets M4] [data.root=DIR] [device=cuda] [overrides…]
#
# --quick     smoke test: tiny model, 1 epoch, 2 batches, only the patterns whose data is in data.root
# SWEEP_DIR=… where the sweep goes; running again with the same SWEEP_DIR skips finished jobs.
# Writes one run dir per pattern, forecast.csv (all patterns, M4 submission format), scores.json,
# report.md, results.csv and plots/ into the sweep folder.
source "$(dirname "$0")/_sweep.sh"
run_sweep short_term "$@"

ROOT=data
for arg in "$@"; do [[ $arg == data.root=* ]] && ROOT=${arg#data.root=}; done
shopt -s nullglob
partial=("$SWEEP"/*/forecast_subset.csv)
if ((${#partial[@]})); then
    # A run capped by trainer.limit_eval_batches scored some series only: its forecasts are no
    # submission, and a summary of them would pass for the official one.
    echo "note: ${#partial[@]} run(s) scored a subset of their series (trainer.limit_eval_batches): no combined" \
         "forecast.csv or scores.json" >&2
else
    # One submission file from the per-pattern forecasts (header once), then the official summary.
    first=1
    for f in "$SWEEP"/*/forecast.csv; do
        if ((first)); then cat "$f"; first=0; else tail -n +2 "$f"; fi
    done > "$SWEEP/forecast.csv"
    "$PY" -m symtime_repro.metrics.m4 score "$SWEEP/forecast.csv" --root "$ROOT" --json "$SWEEP/scores.json"
fi
report
