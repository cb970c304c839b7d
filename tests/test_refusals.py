"""Refused commands: a name that does not exist (a preset, a group option, a key) is refused with the
name meant, and a refused run leaves no run dir behind (issue 14)."""

from __future__ import annotations

import pytest

from conftest import assert_user_error, DATA_ROOT, run_cli, TINY

# A run is short if it happens: a name that is wrongly accepted then costs seconds, not an epoch of ETTh1.
SHORT = [*TINY, "trainer.epochs=1", "trainer.limit_train_batches=1", "trainer.limit_eval_batches=1"]


def refused_in_process(cli, args: list[str], expected: str, capfd) -> str:
    """Run the command line in this process; it must end as a user error with one line holding
    ``expected``. The line."""
    capfd.readouterr()
    code = cli(args)
    out, err = capfd.readouterr()
    assert code == 2, err[-2000:]
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], err[-2000:]
    return errors[0]


def leftovers(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- names that do not exist ----------------------------------------------------------------------

UNKNOWN_NAMES = {
    # An optional default: Hydra skipped these without a word and ran the default ETTh1 job.
    "preset typo": (["experiment=long_term/ETTh1_97"],
                    "experiment=long_term/ETTh1_97 is not available; did you mean long_term/ETTh1_96? "
                    "Choose one of: long_term/ECL_192,"),
    "preset plural": (["experiment=classification/JapaneseVowel"], "did you mean classification/JapaneseVowels?"),
    "preset folder": (["experiment=long_term"], "experiment=long_term is not available; choose one of: long_term/ECL_192"),
    "preset empty": (["experiment="], "experiment= is not available; choose one of: anomaly/MSL"),
    "preset case": (["experiment=long_term/etth1_96"], "did you mean long_term/ETTh1_96?"),
    "preset added": (["+experiment=long_term/ETTh1_97"], "did you mean long_term/ETTh1_96?"),
    "preset force-added": (["++experiment=long_term/ETTh1_97"], "did you mean long_term/ETTh1_96?"),
    "preset as subgroup": (["experiment/long_term=ETTh1_97"], "did you mean long_term/ETTh1_96?"),
    "preset in a sweep": (["-m", "experiment=long_term/ETTh1_96,long_term/ETTh1_97"], "did you mean long_term/ETTh1_96?"),
    "preset in choice()": (["-m", "experiment=choice(long_term/ETTh1_96,long_term/ETTh1_97)"],
                           "experiment=long_term/ETTh1_97 is not available"),
    "dataset typo": (["dataset=ETTh3"], "dataset=ETTh3 is not available; did you mean ETTh"),
    "dataset added": (["+dataset=ETTh3"], "dataset=ETTh3 is not available; did you mean ETTh"),
    "dataset force-added": (["++dataset=ETTh3"], "dataset=ETTh3 is not available; did you mean ETTh"),
    "dataset in a sweep": (["-m", "dataset=ETTh1,ETTm3"], "dataset=ETTm3 is not available; did you mean ETTm"),
    "task typo": (["task=longterm"], "task=longterm is not available; did you mean long_term? Choose one of: "
                  "anomaly, classification, imputation, long_term, pretrain, short_term"),
    "model typo": (["model=symtime_base"], "model=symtime_base is not available; did you mean symtime"),
    "model preset typo": (["model=symtime_tni"], "model=symtime_tni is not available; did you mean symtime_tiny?"),
    "device alias": (["device=gpu"], "device=gpu is not available: gpu is called cuda here; use device=cuda"),
    "trainer": (["trainer=fast"], "trainer=fast is not available; choose one of: default"),
    # Other names of the data sets, and another case.
    "Electricity": (["dataset=Electricity"], "Electricity is called ECL here; use dataset=ECL"),
    "electricity": (["dataset=electricity"], "electricity is called ECL here; use dataset=ECL"),
    "exchange_rate": (["dataset=exchange_rate"], "exchange_rate is called Exchange here; use dataset=Exchange"),
    "national_illness": (["dataset=national_illness"], "national_illness is called ILI here; use dataset=ILI"),
    "illness": (["dataset=illness"], "illness is called ILI here; use dataset=ILI"),
    "ETTH1": (["dataset=ETTH1"], "dataset=ETTH1 is not available; did you mean ETTh1?"),
    "traffic": (["dataset=traffic"], "dataset=traffic is not available; did you mean Traffic?"),
    "weather": (["dataset=weather"], "did you mean Weather?"),
    # Not a name: a list selects no option (Hydra's multi-select), and the schema's defaults ran.
    "empty list": (["dataset=[]"], "dataset=[]: a config group takes the name of one of its options; choose one of: ECL"),
    "list": (["dataset=[ETTh1,ETTh2]"], "a config group takes the name of one of its options"),
    "number in a sweep": (["-m", "dataset=1,ETTh1"], "a config group takes the name of one of its options"),
    # A key the schema lacks, without ++ (Hydra's own line named no key).
    "key typo": (["trainer.lrr=0.001"], "trainer.lrr is not a configuration key; did you mean trainer.lr?"),
    "key added": (["+trainer.lrr=0.001"], "trainer.lrr is not a configuration key; did you mean trainer.lr?"),
    "key deleted": (["~trainer.lrr"], "trainer.lrr is not a configuration key; did you mean trainer.lr?"),
    "top-level key": (["sed=1"], "sed is not a configuration key; did you mean seed?"),
    "group key": (["datset=ETTh1"], "datset is not a configuration key; did you mean dataset?"),
    # Every key is read: ~mode failed inside the run (after Hydra made the run dir).
    "deleted key": (["~mode"], "~mode: a configuration key cannot be deleted; set it (mode=…) instead"),
    "key in a sweep": (["-m", "trainer.lrr=0.1,0.2"], "trainer.lrr is not a configuration key; did you mean trainer.lr?"),
}


@pytest.mark.parametrize("case", UNKNOWN_NAMES, ids=list(UNKNOWN_NAMES))
def test_a_name_that_does_not_exist_is_refused_with_the_name_meant(case, cli_in_process, tmp_path, capfd):
    args, expected = UNKNOWN_NAMES[case]
    refused_in_process(cli_in_process, [*SHORT, *args, f"hydra.run.dir={tmp_path}/run",
                                        f"hydra.sweep.dir={tmp_path}/sweep"], expected, capfd)
    assert leftovers(tmp_path) == []  # refused before Hydra made a folder


def test_a_misspelled_preset_runs_nothing(tmp_path):
    """The report of issue 14, as typed: it ran the default ETTh1 job and recorded experiment null."""
    result = run_cli([*SHORT, "experiment=long_term/ETTh1_97"], cwd=tmp_path)
    assert_user_error(result, "experiment=long_term/ETTh1_97 is not available; did you mean long_term/ETTh1_96?",
                      tmp_path)
    assert leftovers(tmp_path) == []


def test_an_existing_name_is_still_accepted(cli_in_process, capfd):
    capfd.readouterr()
    assert cli_in_process(["experiment=long_term/ETTh1_96", "dataset=ETTh2", "~experiment", "-c", "job"]) == 0
    assert cli_in_process(["dataset=ECL", "device=auto", "model=symtime_small", "task=imputation", "-c", "job"]) == 0
    assert "error:" not in capfd.readouterr().err


# --- a refused run leaves no run dir ---------------------------------------------------------------

REFUSED = [f"data.root={DATA_ROOT}", "trainer.epochs=0"]  # refused by validation, after Hydra made the run dir
REFUSAL = "trainer.epochs must be >= 1, got 0"


def test_a_refused_run_leaves_nothing_in_outputs(tmp_path):
    result = run_cli(REFUSED, cwd=tmp_path)
    assert_user_error(result, REFUSAL, tmp_path)
    assert leftovers(tmp_path) == []  # outputs/ came with this command and went with it
    # Folders that were there before stay, even empty ones.
    (tmp_path / "outputs" / "long_term").mkdir(parents=True)
    (tmp_path / "outputs" / "imputation" / "ETTh1" / "earlier").mkdir(parents=True)
    (tmp_path / "outputs" / "imputation" / "ETTh1" / "earlier" / "metrics.json").write_text("{}")
    before = leftovers(tmp_path)
    assert_user_error(run_cli(REFUSED, cwd=tmp_path), REFUSAL, tmp_path)
    assert_user_error(run_cli([*REFUSED, "task=imputation"], cwd=tmp_path), REFUSAL, tmp_path)
    assert leftovers(tmp_path) == before


def test_a_refused_run_keeps_a_run_dir_that_existed(cli_in_process, tmp_path, capfd):
    """resume=true on an existing run: the refusal must not touch the run's folder or files."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"state")
    refused_in_process(cli_in_process, [*REFUSED, "resume=true", f"hydra.run.dir={run_dir}"], REFUSAL, capfd)
    assert (run_dir / "last.pt").read_bytes() == b"state" and (run_dir / "run.log").is_file()
    empty = tmp_path / "made_by_hand"
    empty.mkdir()
    refused_in_process(cli_in_process, [*REFUSED, f"hydra.run.dir={empty}"], REFUSAL, capfd)
    assert empty.is_dir()


def test_a_refused_run_removes_the_folders_it_created(cli_in_process, tmp_path, capfd):
    refused_in_process(cli_in_process, [*REFUSED, f"hydra.run.dir={tmp_path}/a/b/run"], REFUSAL, capfd)
    assert leftovers(tmp_path) == []
    refused_in_process(cli_in_process, [*REFUSED, f"hydra.run.dir={tmp_path}/runs/${{now:%H-%M-%S}}"], REFUSAL, capfd)
    assert leftovers(tmp_path) == []


def test_a_refused_sweep_job_leaves_no_job_dir(cli_in_process, tmp_path, capfd):
    sweep = tmp_path / "sweep"
    refused_in_process(cli_in_process, ["-m", *REFUSED, f"hydra.sweep.dir={sweep}"], REFUSAL, capfd)
    assert leftovers(tmp_path) == []  # the sweep's only job was refused: its multirun.yaml goes too
    # Run again in a sweep dir that holds the job from before (resume=true re-runs): kept as it was.
    (sweep / "0_long_term_ETTh1").mkdir(parents=True)
    (sweep / "0_long_term_ETTh1" / "last.pt").write_bytes(b"state")
    refused_in_process(cli_in_process, ["-m", *REFUSED, "resume=true", f"hydra.sweep.dir={sweep}"], REFUSAL, capfd)
    assert (sweep / "0_long_term_ETTh1" / "last.pt").read_bytes() == b"state"
