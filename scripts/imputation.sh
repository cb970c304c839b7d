#!/usr/bin/env bash
# Imputation (ETT, ECL, Weather; mask ratios 0.125-0.5): every official preset (conf/experiment/imputation/) as one Hydra multirun, then the sweep's report.
#
#   scripts/imputation.sh [--quick] [--datasets A,B] [device=cuda] [model.pretrained=…/finetuning.pth] [overrides…]
#
# --quick     smoke test: tiny model, 1 epoch, 2 batches, only presets whose data is in data.root
# --datasets  only these datasets' presets (see python -m symtime_repro.sweep presets --task imputation)
# SWEEP_DIR=… where the sweep goes; running again with the same SWEEP_DIR skips finished jobs.
# Results: one run dir per preset under the sweep folder, then report.md, results.csv and plots/.
source "$(dirname "$0")/_sweep.sh"
run_sweep imputation "$@"
report
