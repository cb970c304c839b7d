#!/usr/bin/env bash
# Anomaly detection (SMD, MSL, SMAP, PSM, SWaT): every official preset (conf/experiment/anomaly/) as one Hydra multirun, then the sweep's report.
#
#   scripts/anomaly_detection.sh [--quick] [--datasets A,B] [device=cuda] [model.pretrained=…/finetuning.pth] [overrides…]
#
# --quick     smoke test: tiny model, 1 epoch, 2 batches, only presets whose data is in data.root
# --datasets  only these datasets' presets (see python -m symtime_repro.sweep presets --task anomaly)
# SWEEP_DIR=… where the sweep goes; running again with the same SWEEP_DIR skips finished jobs.
# Results: one run dir per preset under the sweep folder, then report.md, results.csv and plots/.
source "$(dirname "$0")/_sweep.sh"
run_sweep anomaly "$@"
report
