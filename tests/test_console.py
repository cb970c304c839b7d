"""What a user reads: the result table on stdout (and in run.log), the scripts' --help, the data line."""

from __future__ import annotations

import subprocess

import pytest

from conftest import DATA_ROOT, REPO, run_cli, TINY


def test_the_result_table_goes_to_stdout_and_run_log_but_not_stderr(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli([*TINY, "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.limit_eval_batches=1",
                      "task=anomaly", "dataset=MSL", "task.seq_len=100", "trainer.batch_size=32"], run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    table = result.stdout.strip().splitlines()
    assert table[0] == "result" and any(line.startswith("f1 ") for line in table)
    assert any(line.startswith("run dir") and str(run_dir) in line for line in table)
    assert "result\n---" not in result.stderr and "run dir " not in result.stderr  # the log stays on stderr, alone
    log = (run_dir / "run.log").read_text()
    assert "result\n----" in log
    # The data line names the folder the data came from (it was empty for the anomaly family).
    assert f"data: MSL ({DATA_ROOT / 'MSL'})" in result.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("[a-z]*.sh")))
def test_a_scripts_help_is_its_header_not_its_code(script):
    result = subprocess.run(["bash", str(REPO / "scripts" / script), "--help"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and "--quick" in result.stdout and f"scripts/{script}" in result.stdout
    assert not any(word in result.stdout for word in ("source ", "run_sweep", "report\n", "#!/"))
    assert not any(line.startswith("#") for line in lines)
