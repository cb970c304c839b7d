"""Config fuzzing: any override of any config key either runs or ends with one clear line.

Hypothesis draws overrides (a key of the schema or a config group, a value from edge cases and
random text, and the override forms Hydra accepts) and hands them to the real command line in
this process, on top of a tiny, capped run on the shipped data. The property: the run completes
(metrics.json says so), or it ends with exit 2 (bad input) or 3 (the run failed) after exactly one
``error:`` line, with no traceback and never a metrics.json that looks like a success.

The examples are derandomised (a fixed seed) and the budget is fixed, so CI sees the same cases on
every run; SYMTIME_FUZZ_EXAMPLES=<n> runs a longer search locally.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import typing
from pathlib import Path

import pytest
from hypothesis import assume, HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import DATA_ROOT, REPO, run_cli_in_process, TINY_MODEL
from symtime_repro.config import RunConfig

# Small and capped so one example is a fraction of a second; the fuzzed override comes after
# these on the command line, so it wins over them. The tiny model's sizes go in as keys, not as
# model=symtime_tiny: a fuzzed model=<preset> would replace that choice with a 6-layer encoder.
BASE = [
    *(f"model.{key}={TINY_MODEL[key]}" for key in ("n_layers", "d_model", "n_heads", "d_ff")),
    "model.forward_layers=1", "model.out_channels=4", "task.seq_len=48", "task.pred_len=12", "trainer.batch_size=8",
    "trainer.eval_batch_size=16", "trainer.epochs=1", "trainer.limit_train_batches=2",
    "trainer.limit_eval_batches=1", "trainer.progress=false", f"data.root={DATA_ROOT}",
]

def schema_keys(cls=RunConfig, prefix: str = "") -> dict[str, type]:
    """Every key of the typed schema, dotted (task.seq_len, trainer.lr, seed, …), with its type."""
    keys = {}
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            keys.update(schema_keys(hint, f"{prefix}{name}."))
        else:
            args = [a for a in typing.get_args(hint) if a is not type(None)]  # Optional[int] -> int
            keys[f"{prefix}{name}"] = args[0] if args else hint
    return keys


SCHEMA = schema_keys()
SCHEMA_KEYS = sorted(SCHEMA)
GROUPS = {group: sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))
          for group in ("task", "dataset", "model", "device", "trainer")}
GROUPS["experiment"] = sorted(str(p.relative_to(REPO / "conf" / "experiment").with_suffix(""))
                              for p in (REPO / "conf" / "experiment").glob("*/*.yaml"))

EDGE_VALUES = [
    "-1", "0", "1", "2", "3", "5", "16", "64", "2147483648", "9223372036854775808", "-9223372036854775809",
    "0.5", "-0.5", "1e-9", "1e308", "nan", "inf", "-inf", "true", "false", "null", "''", "' '", "abc",
    "[]", "[1,2]", "{}", "{a: 1}", "${oops}", "${trainer.lr}", "${now:%Y}", "\\", "'", "\"", "a,b", "M", "S", "MS",
    "cpu", "cuda", "npu", "auto", "test", "train", "type1", "cosine", "LayerNorm", "relu", "ETTh1", "Hourly",
    "holdout", "skip", "non_overlapping", "global", "/nonexistent/file.pt", "data", "OT",
]
values = st.one_of(
    st.sampled_from(EDGE_VALUES),
    st.integers(min_value=-3, max_value=100).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=10),
)

# Astronomic sizes must be refused or fail in one line (they cannot be allocated); a run's length is
# the exception: trainer.epochs=10**12 with patience=10**12 is a valid, endless run, not a fault.
HUGE = [2**31, 10**12, 2**63]
RUN_LENGTH_KEYS = {"trainer.epochs"}
SMALL_INTS = st.one_of(st.integers(min_value=-2, max_value=8), st.integers(min_value=9, max_value=130))
PLAUSIBLE = {
    int: st.one_of(SMALL_INTS, SMALL_INTS, SMALL_INTS, st.sampled_from(HUGE)).map(str),
    float: st.one_of(st.sampled_from(["0.0", "0.05", "0.5", "0.99", "1.0", "1e-6", "10.0", "50.0", "99.9"]),
                     st.floats(min_value=-1, max_value=2, allow_nan=False).map(repr)),
    bool: st.sampled_from(["true", "false"]),
    str: st.sampled_from(EDGE_VALUES[EDGE_VALUES.index("M"):]),
}


FORMS = ["{k}={v}", "{k}={v}", "{k}={v}", "+{k}={v}", "++{k}={v}", "~{k}", "{k}", "{k}="]


def override_of(draw, key: str) -> str:
    """``key`` overridden in one of Hydra's forms; half the time with a value of the key's own type
    (so runs get past validation and into training with unusual settings), otherwise anything."""
    form = draw(st.sampled_from(FORMS))
    plausible = SMALL_INTS.map(str) if key in RUN_LENGTH_KEYS else PLAUSIBLE.get(SCHEMA.get(key))
    value = draw(plausible if plausible is not None and (key in RUN_LENGTH_KEYS or draw(st.booleans())) else values)
    if key == "trainer.compile" and value.strip().lower() in ("true", "yes", "on", "1"):
        value = "false"  # compiling costs ~30 s on 2 CPUs; tests/test_bench.py runs it
    return form.format(k=key, v=value)


@st.composite
def overrides(draw) -> str:
    """One override as a user might type it, right or wrong."""
    if draw(st.integers(0, 4)) == 0:  # a config group: a real option or junk
        group = draw(st.sampled_from(sorted(GROUPS)))
        choice = draw(st.one_of(st.sampled_from(GROUPS[group] or ["x"]), values))
        return f"{group}={choice}"
    key = draw(st.one_of(st.sampled_from(SCHEMA_KEYS), st.sampled_from(["nosuchkey", "trainer.nosuchkey", "task"])))
    return override_of(draw, key)


examples = itertools.count()


@pytest.fixture(autouse=True)
def in_process(cli_in_process, monkeypatch, tmp_path_factory):
    """Every example runs the CLI in this process (conftest's cli_in_process); see there. A drawn
    logger.mlflow=true keeps its MLflow store in the test's temporary folder, not the repo's outputs/."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.getbasetemp() / 'fuzz-mlflow.db'}")


def check_run_or_one_clear_line(extra: list[str], run_dir: Path, capfd) -> None:
    capfd.readouterr()
    code = run_cli_in_process([*BASE, *extra, f"hydra.run.dir={run_dir}"])  # an exception here fails the test
    out, err = capfd.readouterr()
    context = f"overrides {extra}: exit {code}\n{err[-3000:]}"
    if os.environ.get("SYMTIME_FUZZ_LOG"):  # a local search writes each case's outcome here
        first_error = next((line for line in err.splitlines() if "error:" in line), "")
        with open(os.environ["SYMTIME_FUZZ_LOG"], "a") as handle:
            handle.write(f"{code} {extra} {first_error}\n")
    event(f"exit {code}")  # pytest --hypothesis-show-statistics: how many examples ran, were refused, failed
    assert "Traceback" not in out + err, context
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else None
    if code == 0:
        assert metrics is not None and metrics["status"] == "completed", context
        return
    assert code in (2, 3), context
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, context
    assert metrics is None or metrics["status"] == "failed", context
    if code == 2:  # refused before it began: nothing left behind (exit 3 keeps its failed metrics.json)
        assert not run_dir.exists(), context + f"\nleft behind: {sorted(p.name for p in run_dir.iterdir())}"


FUZZ_SETTINGS = dict(derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
BUDGET = int(os.environ.get("SYMTIME_FUZZ_EXAMPLES", "40"))  # CI; every key also gets its own draw below


@settings(max_examples=BUDGET, **FUZZ_SETTINGS)
@given(extra=st.lists(overrides(), min_size=1, max_size=2))
def test_any_override_runs_or_ends_with_one_clear_line(extra, tmp_path, capfd):
    check_run_or_one_clear_line(extra, tmp_path / f"example{next(examples)}", capfd)


@st.composite
def well_typed_overrides(draw) -> str:
    """key=value with a value of the key's type: these mostly pass parsing and reach the run."""
    if draw(st.integers(0, 5)) == 0:
        group = draw(st.sampled_from(["task", "dataset", "model", "experiment"]))
        return f"{group}={draw(st.sampled_from(GROUPS[group]))}"
    key = draw(st.sampled_from([k for k in SCHEMA_KEYS if SCHEMA[k] in PLAUSIBLE and not k.startswith("bench.")]))
    value = draw(SMALL_INTS.map(str) if key in RUN_LENGTH_KEYS else PLAUSIBLE[SCHEMA[key]])
    return f"{key}={value}"


@settings(max_examples=BUDGET // 2, **FUZZ_SETTINGS)
@given(extra=st.lists(well_typed_overrides(), min_size=1, max_size=3))
def test_well_typed_settings_run_or_end_with_one_clear_line(extra, tmp_path, capfd):
    """Unusual but well-typed settings (patch_len=1, batch_size=130, task=classification with
    features=S, …) get past the parser, so this is where training and testing are fuzzed."""
    check_run_or_one_clear_line(extra, tmp_path / f"example{next(examples)}", capfd)


# Each key of the schema, however the draws above fall, gets random values of its own (one in CI;
# SYMTIME_FUZZ_PER_KEY=<n> for more).
PER_KEY = int(os.environ.get("SYMTIME_FUZZ_PER_KEY", "1"))


@pytest.mark.parametrize("key", SCHEMA_KEYS)
@settings(max_examples=PER_KEY, **FUZZ_SETTINGS)
@given(data=st.data())
def test_every_key_with_random_values_runs_or_ends_with_one_clear_line(key, data, tmp_path, capfd):
    extra = [data.draw(st.composite(lambda draw: override_of(draw, key))(), label=key)]
    check_run_or_one_clear_line(extra, tmp_path / f"example{next(examples)}", capfd)


@st.composite
def misspelt(draw, name: str) -> str:
    """``name`` as a hand slips: a letter dropped, doubled or replaced, two swapped, or another case."""
    i = draw(st.integers(0, max(len(name) - 1, 0)))
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/."))
    return draw(st.sampled_from([name[:i] + name[i + 1:], name[:i] + letter + name[i:], name[:i] + letter + name[i + 1:],
                                 name[:i] + name[i + 1:i + 2] + name[i:i + 1] + name[i + 2:], name.lower(), name.upper()]))


OTHER_NAMES = ["Electricity", "electricity", "exchange_rate", "national_illness", "illness", "traffic", "weather",
               "ETTH1", "gpu", "long_term", "long_term/", "classification/JapaneseVowel", "", "base", "tiny"]


def refused_as_given(group: str, value: str) -> bool:
    """Whether Hydra reads ``group=value`` as something other than one of the group's options (a
    quoted or space-padded real name is that name, and runs)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(f"{group}={value}").value()
    except Exception:
        return True
    return not (isinstance(parsed, str) and parsed in GROUPS[group])


@st.composite
def unknown_group_values(draw) -> str:
    """``group=value`` in a form Hydra accepts, where the value names no option of the group."""
    group = draw(st.sampled_from(sorted(GROUPS)))
    value = draw(st.one_of(st.sampled_from(GROUPS[group]).flatmap(misspelt), st.sampled_from(OTHER_NAMES), values))
    assume(refused_as_given(group, value))
    return draw(st.sampled_from(["{g}={v}", "+{g}={v}", "++{g}={v}"])).format(g=group, v=value)


@settings(max_examples=BUDGET, **FUZZ_SETTINGS)
@given(unknown=unknown_group_values(), extra=st.lists(well_typed_overrides(), max_size=1))
def test_a_group_value_that_does_not_exist_is_refused(unknown, extra, tmp_path, capfd):
    """task=, dataset=, model=, device=, trainer= or experiment= with a name that is no option: never a
    run of something else (an unknown experiment= used to run the default job), always exit 2 with one
    line and no run dir."""
    run_dir = tmp_path / f"example{next(examples)}"
    check_run_or_one_clear_line([*extra, unknown], run_dir, capfd)
    assert not run_dir.exists(), f"{unknown} was not refused"
