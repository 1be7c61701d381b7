"""Reading the limits a server runs under, from fake cgroup trees (v1 and v2)."""

from __future__ import annotations

import os

from mlfactory.server.limits import (
    cpu_quota,
    current_limits,
    memory_limit,
    parse_proc_cgroup,
    usable_cpus,
)

V1 = "9:name=systemd:/\n4:memory:/mlfactory/alice\n1:cpu:/mlfactory/alice\n2:cpuacct:/\n"
V2 = "0::/mlfactory/alice\n"


def test_parse_proc_cgroup_v1_and_v2():
    assert parse_proc_cgroup(V1)["memory"] == "/mlfactory/alice"
    assert parse_proc_cgroup(V1)["cpu"] == "/mlfactory/alice"
    assert parse_proc_cgroup("3:cpu,cpuacct:/x\n")["cpuacct"] == "/x"
    assert parse_proc_cgroup(V2) == {"": "/mlfactory/alice"}
    assert parse_proc_cgroup("garbage\n") == {}


def test_v1_limits(tmp_path):
    mem = tmp_path / "memory" / "mlfactory" / "alice"
    cpu = tmp_path / "cpu" / "mlfactory" / "alice"
    mem.mkdir(parents=True)
    cpu.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text("268435456\n")
    (cpu / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    paths = parse_proc_cgroup(V1)
    assert memory_limit(paths, tmp_path) == 256 * 2**20
    assert cpu_quota(paths, tmp_path) == 0.5
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "unlimited"
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert memory_limit(paths, tmp_path) is None
    assert cpu_quota(paths, tmp_path) is None


def test_v2_limits(tmp_path):
    group = tmp_path / "mlfactory" / "alice"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("1073741824\n")
    (group / "cpu.max").write_text("200000 100000\n")
    paths = parse_proc_cgroup(V2)
    assert memory_limit(paths, tmp_path) == 2**30
    assert cpu_quota(paths, tmp_path) == 2.0
    (group / "memory.max").write_text("max\n")
    (group / "cpu.max").write_text("max 100000\n")
    assert memory_limit(paths, tmp_path) is None
    assert cpu_quota(paths, tmp_path) is None


def test_missing_files_mean_unknown(tmp_path):
    assert memory_limit(parse_proc_cgroup(V1), tmp_path) is None
    assert cpu_quota(parse_proc_cgroup(V2), tmp_path) is None


def test_current_limits_reports_this_process_affinity(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    limits = current_limits()
    assert limits["cpus"] == sorted(os.sched_getaffinity(0))
    assert limits["cuda_visible_devices"] == ""


def test_usable_cpus_are_the_affinity_capped_by_the_quota(tmp_path):
    group = tmp_path / "mlfactory" / "alice"
    group.mkdir(parents=True)
    paths = parse_proc_cgroup(V2)
    affinity = len(os.sched_getaffinity(0))
    (group / "cpu.max").write_text("50000 100000\n")  # a pod limited to half a CPU
    assert usable_cpus(paths, tmp_path) == 0.5
    (group / "cpu.max").write_text(f"{(affinity + 3) * 100000} 100000\n")  # more than it has
    assert usable_cpus(paths, tmp_path) == affinity
    (group / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(paths, tmp_path) == affinity
    assert usable_cpus({}, tmp_path) == affinity  # no cgroup known: the affinity alone
