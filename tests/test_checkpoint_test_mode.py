"""``mode=test ckpt=<our checkpoint.pt>``: the checkpoint decides what is evaluated and where the run
is filed; the user may only change evaluation settings, or name another dataset (a transfer)."""

from __future__ import annotations

import shutil

import pytest

from conftest import assert_user_error, DATA_ROOT, read_metrics, run_cli, TINY

SMALL = ["model=symtime_tiny", "model.forward_layers=1", "trainer.epochs=1", "trainer.limit_train_batches=3",
         "trainer.progress=false"]


def evaluate_from(cwd, ckpt, *overrides, root=DATA_ROOT):
    """``mode=test ckpt=…`` run from ``cwd`` with Hydra's default run dir; the result and where the
    run was filed, as (result, task, dataset, run dir) from ``outputs/<task>/<dataset>/<time>``."""
    cwd.mkdir(exist_ok=True)
    result = run_cli(["mode=test", f"ckpt={ckpt}", *overrides, f"data.root={root}", "trainer.progress=false"],
                     cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    found = [p for p in (cwd / "outputs").glob("*/*/*") if p.is_dir()]
    assert len(found) == 1, found
    return result, found[0].parent.parent.name, found[0].parent.name, found[0]


@pytest.fixture(scope="module")
def m4_hourly_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("m4") / "run"
    result = run_cli([*SMALL, "task=short_term", "dataset=M4", "dataset.seasonal_pattern=Hourly",
                      f"data.root={DATA_ROOT}"], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def test_an_m4_checkpoint_is_tested_on_m4_and_filed_under_short_term(m4_hourly_run, tmp_path):
    # Only the checkpoint and the data root: no task=, dataset= or pattern on the command line.
    result, task, dataset, run_dir = evaluate_from(tmp_path, m4_hourly_run / "checkpoint.pt")
    assert (task, dataset) == ("short_term", "M4")
    trained, tested = read_metrics(m4_hourly_run), read_metrics(run_dir)
    assert tested["task"] == "short_term" and tested["seasonal_pattern"] == "Hourly"
    assert tested["smape"] == pytest.approx(trained["smape"], rel=1e-6)
    assert tested["trained_on"] == "M4" and tested["transfer_evaluation"] is False
    assert "evaluating on what the checkpoint was trained for" in result.stderr


def test_a_typed_task_that_contradicts_the_checkpoint_is_refused(m4_hourly_run, tmp_path):
    result = run_cli(["mode=test", f"ckpt={m4_hourly_run / 'checkpoint.pt'}", "task=long_term",
                      f"data.root={DATA_ROOT}"], tmp_path / "run")
    assert_user_error(result, "holds a short_term model, which task=long_term cannot evaluate", tmp_path / "run")
    result = run_cli(["mode=test", f"ckpt={m4_hourly_run / 'checkpoint.pt'}", "dataset.seasonal_pattern=Daily",
                      f"data.root={DATA_ROOT}"], tmp_path / "run2")
    assert_user_error(result, "dataset.seasonal_pattern=Daily contradicts ckpt=", tmp_path / "run2")


@pytest.fixture(scope="module")
def etth2_root(tmp_path_factory):
    """A data root whose ETTh2.csv is a real ETT file (ETTh1's rows), so a long-term model can be
    trained on a dataset other than the default."""
    root = tmp_path_factory.mktemp("root")
    (root / "ETT-small").mkdir()
    shutil.copy(DATA_ROOT / "ETT-small" / "ETTh1.csv", root / "ETT-small" / "ETTh2.csv")
    shutil.copy(DATA_ROOT / "ETT-small" / "ETTh1.csv", root / "ETT-small" / "ETTh1.csv")
    return root


def test_another_datasets_checkpoint_is_tested_on_its_own_dataset_unless_one_is_named(etth2_root, tmp_path):
    trained_dir = tmp_path / "trained"
    result = run_cli([*TINY, "trainer.epochs=1", "dataset=ETTh2", f"data.root={etth2_root}", "seed=7"], trained_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = trained_dir / "checkpoint.pt"

    # No dataset= typed: ETTh2 (and the checkpoint's seed), filed under long_term/ETTh2.
    result, task, dataset, run_dir = evaluate_from(tmp_path / "plain", ckpt, root=etth2_root)
    assert (task, dataset) == ("long_term", "ETTh2")
    tested = read_metrics(run_dir)
    assert tested["dataset"] == "ETTh2" and tested["seed"] == 7 and tested["transfer_evaluation"] is False
    assert tested["mse"] == pytest.approx(read_metrics(trained_dir)["mse"], rel=1e-6)

    # dataset=ETTh1 typed: a transfer evaluation, said in the log and in metrics.json.
    result, task, dataset, run_dir = evaluate_from(tmp_path / "transfer", ckpt, "dataset=ETTh1", root=etth2_root)
    assert (task, dataset) == ("long_term", "ETTh1")
    tested = read_metrics(run_dir)
    assert tested["dataset"] == "ETTh1" and tested["trained_on"] == "ETTh2" and tested["transfer_evaluation"] is True
    assert "transfer evaluation: the checkpoint was trained on ETTh2 and is evaluated on ETTh1" in result.stderr


def test_an_imputation_checkpoint_keeps_its_mask_ratio_and_is_filed_under_imputation(tmp_path):
    trained_dir = tmp_path / "trained"
    result = run_cli([*TINY, "trainer.epochs=1", "task=imputation", "task.mask_ratio=0.25"], trained_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    result, task, dataset, run_dir = evaluate_from(tmp_path, trained_dir / "checkpoint.pt")
    assert (task, dataset) == ("imputation", "ETTh1")
    trained, tested = read_metrics(trained_dir), read_metrics(run_dir)
    # Same task, mask ratio and seed as trained: the same test masks, so the same metrics.
    assert tested["task"] == "imputation" and tested["mse"] == pytest.approx(trained["mse"], rel=1e-6)
