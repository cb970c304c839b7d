"""How many CPUs this process may use, and how many threads torch should run on them.

torch's default is one thread per core of the machine. That is wrong three ways for a runner:
a container or SLURM job may use fewer CPUs than the machine has (cgroup quota, ``--cpus-per-task``);
processes started together (torchrun, a joblib sweep) each take every core; and on a loaded machine
every parallel region of a small model waits for the thread whose core another program holds, which
made a 2-core run 20x slower (one thread per core: 26 samples/s; one thread: 434). ``device.threads``
null chooses from all three (or takes ``OMP_NUM_THREADS`` when the user set it); a number is taken
as given. The choice is logged and recorded in
``metrics.json`` (``threads``): results can differ in the last digits between thread counts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

CGROUP_CPU_LIMITS = ("/sys/fs/cgroup/cpu.max",  # v2: "<quota> <period>" or "max <period>"
                     "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")  # v1, with cpu.cfs_period_us beside it
LOAD_SAMPLE_SECONDS = 0.1


def cgroup_cpu_limit() -> Optional[float]:
    """CPUs' worth of time the cgroup quota allows (2.5 for "250000 100000"), or None without one."""
    v2 = Path(CGROUP_CPU_LIMITS[0])
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path(CGROUP_CPU_LIMITS[1]).read_text())
        period = int(Path(CGROUP_CPU_LIMITS[1]).with_name("cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return set(range(os.cpu_count() or 1))


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup quota (a container,
    SLURM's cgroup) and by SLURM_CPUS_PER_TASK; not the machine's count."""
    count = len(affinity())
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        count = min(count, int(slurm))
    return max(1, count)


def _cpu_times(cpus: set[int]) -> Optional[tuple[float, float]]:
    """(busy, total) clock ticks of these CPUs from /proc/stat; None where there is no /proc."""
    busy = total = 0.0
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        ticks = [float(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]  # steal counts as busy: another VM has the core
    return busy, total


def _own_ticks() -> float:
    """CPU ticks this process has used (all its threads)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return float(fields[11]) + float(fields[12])  # utime, stime


def busy_cpus(cpus: set[int], seconds: float = LOAD_SAMPLE_SECONDS) -> Optional[float]:
    """How many of ``cpus`` other programs keep busy right now (a short sample), or None if unknown."""
    try:
        before, own_before = _cpu_times(cpus), _own_ticks()
        time.sleep(seconds)
        after, own_after = _cpu_times(cpus), _own_ticks()
    except (OSError, ValueError, IndexError):
        return None
    if before is None or after is None or after[1] <= before[1]:
        return None
    ticks_per_cpu = (after[1] - before[1]) / len(cpus)
    others = (after[0] - before[0]) - (own_after - own_before)
    return max(0.0, others / ticks_per_cpu)


def processes_sharing() -> int:
    """How many processes of this command run side by side on this machine: torchrun's processes
    on this node (LOCAL_WORLD_SIZE), times the workers of a joblib sweep (hydra/launcher=local_parallel)."""
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    sharing = int(local) if local.isdigit() and int(local) > 0 else 1
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            launcher = HydraConfig.get().launcher
            if "joblib" in str(launcher.get("_target_", "")).lower():
                jobs = int(launcher.get("n_jobs", 1) or 1)
                sharing *= jobs if jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + jobs)  # joblib's -1 = all
    except (ImportError, ValueError, TypeError):
        pass
    return sharing


_chosen: dict[tuple[int, int], tuple[int, str]] = {}


def choose_threads(requested: Optional[int]) -> tuple[int, str]:
    """(threads, why) for this process: ``requested`` if given, else its share of the usable CPUs,
    less those other programs keep busy. Measured once per process (a sweep's jobs agree)."""
    usable = usable_cpus()
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    # torchrun sets OMP_NUM_THREADS=1 for its processes by default: that is not the user's choice.
    if requested is None and from_env.isdigit() and int(from_env) > 0 and "LOCAL_WORLD_SIZE" not in os.environ:
        requested, source = int(from_env), "OMP_NUM_THREADS"
    else:
        source = "device.threads"
    if requested is not None:
        why = source
        if requested > usable:
            why += f"; more than the {usable} CPUs this process may use: threads will wait for each other"
        return requested, why
    sharing = processes_sharing()
    key = (usable, sharing)
    if key not in _chosen:
        share = max(1, usable // sharing)
        why = f"{usable} usable CPUs" + (f" shared by {sharing} processes" if sharing > 1 else "")
        busy = busy_cpus(affinity()) if share > 1 else None
        threads = share
        if busy is not None and busy >= 0.5:
            threads = max(1, min(share, usable - int(busy + 0.5)))
            why += f", {busy:.1f} busy with other programs"
        _chosen[key] = (threads, why + "; device.threads=N to choose")
    return _chosen[key]


def set_threads(requested: Optional[int]) -> int:
    """Apply :func:`choose_threads` to torch; log it; return the number."""
    import torch

    threads, why = choose_threads(requested)
    torch.set_num_threads(threads)
    log.info("threads: %d (%s)", threads, why)
    return threads
