#!/usr/bin/env bash
# Long-term forecasting over the four official horizons, one Hydra multirun.
#
#   scripts/long_term_forecast.sh [dataset=ETTh1] [device=cuda] [model.pretrained=…/finetuning.pth] [overrides…]
#
# Defaults follow the official scripts' input length (336); per-dataset learning rates and batch
# sizes become `experiment=` presets (conf/experiment/long_term/). Results: one run dir per horizon
# under outputs/multirun/<time>/, each with metrics.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
exec "$PY" -m symtime_repro -m task=long_term task.seq_len=336 task.pred_len=96,192,336,720 "$@"
