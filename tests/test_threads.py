"""device.threads: torch's CPU threads chosen from the CPUs this process may really use, divided
among the processes started together, less those other programs keep busy; recorded in metrics.json."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from conftest import read_metrics, run_cli, TINY
from symtime_repro import cpus

# The automatic thread choice is what these tests are about: TINY's pinned count is left out.
QUICK = [*(a for a in TINY if not a.startswith("device.threads=")), "trainer.epochs=1", "trainer.limit_train_batches=2",
         "trainer.limit_eval_batches=1"]


@pytest.fixture
def fresh_choice(monkeypatch):
    """No cached choice, no inherited thread settings."""
    monkeypatch.setattr(cpus, "_chosen", {})
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpus, "busy_cpus", lambda cpus_, seconds=0.1: 0.0)


def test_cgroup_quota_and_slurm_lower_the_usable_cpus(tmp_path, monkeypatch, fresh_choice):
    monkeypatch.setattr(cpus, "affinity", lambda: set(range(16)))
    v2 = tmp_path / "cpu.max"
    monkeypatch.setattr(cpus, "CGROUP_CPU_LIMITS", (str(v2), str(tmp_path / "none")))
    v2.write_text("max 100000\n")
    assert cpus.usable_cpus() == 16
    v2.write_text("250000 100000\n")  # a container given 2.5 CPUs: 3 threads, not the host's 16
    assert cpus.usable_cpus() == 3
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert cpus.usable_cpus() == 2
    # cgroup v1
    v1 = tmp_path / "cpu.cfs_quota_us"
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    v1.write_text("400000\n")
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.setattr(cpus, "CGROUP_CPU_LIMITS", (str(tmp_path / "none"), str(v1)))
    assert cpus.usable_cpus() == 4


def test_processes_started_together_divide_the_cpus(monkeypatch, fresh_choice):
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 8)
    assert cpus.choose_threads(None)[0] == 8
    monkeypatch.setattr(cpus, "_chosen", {})
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun --nproc_per_node=4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's own default, not the user's choice
    threads, why = cpus.choose_threads(None)
    assert threads == 2 and "shared by 4 processes" in why


def test_a_users_choice_wins(monkeypatch, fresh_choice):
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpus.choose_threads(None) == (1, "OMP_NUM_THREADS")
    threads, why = cpus.choose_threads(4)  # device.threads wins over the environment
    assert threads == 4 and "more than the 2 CPUs" in why


def test_busy_cpus_sees_a_real_competitor():
    usable = cpus.affinity()
    idle = cpus.busy_cpus(usable, seconds=0.3)
    if idle is not None and len(usable) - idle < 0.7:  # a competitor could add nothing to see
        pytest.skip(f"the machine is already busy ({idle:.1f} of {len(usable)} CPUs): no room to see a competitor")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = cpus.busy_cpus(usable, seconds=0.5)
    finally:
        burner.kill()
        burner.wait()
    assert idle is not None and busy is not None
    assert busy >= 0.7 and busy - idle >= 0.5, (idle, busy)


def test_the_run_records_its_threads_and_takes_fewer_beside_a_busy_program(tmp_path):
    usable = cpus.usable_cpus()
    result = run_cli([*QUICK, "device.threads=1"], tmp_path / "one")
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_metrics(tmp_path / "one")["threads"] == 1
    assert "threads: 1 (device.threads)" in result.stderr
    if usable < 2:
        pytest.skip("one usable CPU: nothing to share")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        result = run_cli(QUICK, tmp_path / "loaded", env={"OMP_NUM_THREADS": ""})
    finally:
        burner.kill()
        burner.wait()
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = read_metrics(tmp_path / "loaded")
    assert 1 <= metrics["threads"] <= usable - 1
    assert "busy with other programs" in result.stderr


def test_a_joblib_sweep_divides_the_cpus_among_its_workers(tmp_path):
    result = run_cli(["-m", *QUICK, "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", "task.pred_len=12,24",
                      "device.threads=null", f"hydra.sweep.dir={tmp_path}"], env={"OMP_NUM_THREADS": ""})
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p for p in tmp_path.iterdir() if (p / ".hydra").is_dir())  # not the report's plots/
    assert len(jobs) == 2
    for job in jobs:
        assert read_metrics(job)["threads"] <= max(1, cpus.usable_cpus() // 2)
        assert "shared by 2 processes" in (job / "run.log").read_text() or cpus.usable_cpus() < 2
