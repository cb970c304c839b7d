# Shared by the per-task scripts: run a task's official presets as one Hydra multirun, then report.
#
#   run_sweep <task> [--quick] [--datasets A,B] [device=cuda] [other overrides…]
#
# --quick     shrink every run to a smoke test (tiny model, 1 epoch, 2 batches) and keep only the
#             presets whose data is present in data.root (the shipped slices by default)
# --datasets  only these datasets' presets
# SWEEP_DIR   where the sweep goes (default outputs/multirun/<task>_<time>); running a script again
#             with the same SWEEP_DIR skips the jobs that finished (every job runs with resume=true)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3

# Sets SWEEP to the sweep folder; runs the multirun and the report.
run_sweep() {
    local task=$1
    shift
    local quick=0 datasets="" root=data
    local overrides=()
    while (($#)); do
        case $1 in
            --quick) quick=1 ;;
            --datasets) datasets=$2; shift ;;
            --datasets=*) datasets=${1#--datasets=} ;;
            # The calling script's comment header (its second line to its first line of code).
            -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
            *) overrides+=("$1"); [[ $1 == data.root=* ]] && root=${1#data.root=} ;;
        esac
        shift
    done
    local select=(--task "$task" --root "$root")
    [[ -n $datasets ]] && select+=(--datasets "$datasets")
    ((quick)) && select+=(--present-only)
    local experiments
    experiments=$("$PY" -m symtime_repro.sweep presets "${select[@]}")
    local quick_overrides=()
    if ((quick)); then
        read -r -a quick_overrides <<< "$("$PY" -m symtime_repro.sweep quick-overrides)"
    fi
    SWEEP=${SWEEP_DIR:-outputs/multirun/${task}_$(date +%Y-%m-%d_%H-%M-%S)}
    echo "sweep: ${experiments//,/ } -> $SWEEP" >&2
    # The script reports once itself, after its own steps (M4 scores first): the sweep's own report
    # at its end (hydra.callbacks.sweep_report) is turned off so it is not written twice.
    "$PY" -m symtime_repro -m "experiment=$experiments" "hydra.sweep.dir=$SWEEP" \
        resume=true '~hydra.callbacks.sweep_report' \
        ${quick_overrides[@]+"${quick_overrides[@]}"} ${overrides[@]+"${overrides[@]}"}
}

report() {
    "$PY" -m symtime_repro.report "$SWEEP"
}
