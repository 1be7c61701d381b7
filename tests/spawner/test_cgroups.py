"""cgroups: detection and the manager against fake v1/v2 trees, make_preexec in a real
child, and one end-to-end run on this machine's /sys/fs/cgroup."""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlfactory.spawner import cgroups
from mlfactory.spawner.cgroups import CgroupManager, CgroupSupport, detect_cgroups, make_preexec
from mlfactory.spawner.limits import LimitsPlan, plan_limits

MIB = 1024**2
PLAN = LimitsPlan(
    cpus=(0,),
    cpu_quota_us=50_000,
    cpu_period_us=100_000,
    cpu_weight=50,
    memory_max=256 * MIB,
    memory_low=128 * MIB,
)

V1_FILES = {
    "cpu": ["cgroup.procs", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"],
    "memory": ["cgroup.procs", "memory.limit_in_bytes", "memory.soft_limit_in_bytes"],
}
V2_FILES = ["cgroup.procs", "cpu.max", "cpu.weight", "memory.max", "memory.low"]


def touch(directory: Path, files, content: str = "") -> Path:
    """A directory with these control files, as the kernel would make it."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in files:
        (directory / f).write_text(content)
    return directory


def read(path: Path) -> str:
    return path.read_text().strip()


@pytest.fixture
def v1_root(tmp_path) -> Path:
    """A fake cgroup v1 tree: cpu and memory controllers mounted side by side."""
    for controller, files in V1_FILES.items():
        touch(tmp_path / controller, files)
    return tmp_path


@pytest.fixture
def v2_root(tmp_path) -> Path:
    """A fake cgroup v2 tree with cpu and memory available but not yet delegated."""
    touch(tmp_path, ["cgroup.procs", "cgroup.subtree_control"])
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    return tmp_path


def precreate(root: Path, name: str, version: int) -> None:
    """A fake tree can't make control files on mkdir the way cgroupfs does: pre-create."""
    if version == 1:
        for controller, files in V1_FILES.items():
            touch(root / controller / "mlfactory" / name, files)
    else:
        touch(root / "mlfactory", ["cgroup.procs", "cgroup.subtree_control"])
        touch(root / "mlfactory" / name, V2_FILES)


@pytest.fixture
def cgroupfs_rmdir(monkeypatch):
    """rmdir as on cgroupfs, where a cgroup goes away despite its control files."""
    monkeypatch.setattr(cgroups, "_remove_dir", shutil.rmtree)


@pytest.fixture
async def sleeper():
    """A real process to put in a fake cgroup; killed at the end if it is still alive."""
    proc = await asyncio.create_subprocess_exec("sleep", "30")
    yield proc
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


# -- detection ---------------------------------------------------------------------------


def test_detect_v1(v1_root):
    assert detect_cgroups(v1_root) == CgroupSupport(1, True, True, "")
    # The probe leaves nothing behind.
    assert not (v1_root / "cpu" / "mlfactory").exists()
    assert not (v1_root / "memory" / "mlfactory").exists()


def test_detect_v1_keeps_an_existing_parent(v1_root):
    (v1_root / "cpu" / "mlfactory").mkdir()
    assert detect_cgroups(v1_root).cpu
    assert list((v1_root / "cpu" / "mlfactory").iterdir()) == []


def test_detect_v2(v2_root):
    assert detect_cgroups(v2_root) == CgroupSupport(2, True, True, "")
    assert not (v2_root / "mlfactory").exists()


def test_detect_v2_without_memory_controller(v2_root):
    (v2_root / "cgroup.controllers").write_text("cpu io pids\n")
    support = detect_cgroups(v2_root)
    assert (support.version, support.cpu, support.memory) == (2, True, False)
    assert support.reason == f"cgroup v2 memory controller is not available at {v2_root}"


def test_detect_no_cgroups(tmp_path):
    assert detect_cgroups(tmp_path) == CgroupSupport(
        None, False, False, f"no cgroup filesystem at {tmp_path}"
    )


def test_detect_v1_memory_not_mounted(v1_root):
    shutil.rmtree(v1_root / "memory")
    support = detect_cgroups(v1_root)
    assert (support.version, support.cpu, support.memory) == (1, True, False)
    assert support.reason == f"cgroup v1 memory controller is not mounted at {v1_root}/memory"


def test_detect_v1_cpu_without_cfs_bandwidth(v1_root):
    (v1_root / "cpu" / "cpu.cfs_quota_us").unlink()
    support = detect_cgroups(v1_root)
    assert (support.cpu, support.memory) == (False, True)
    assert "has no cpu.cfs_quota_us" in support.reason


def test_detect_v1_memory_not_writable(v1_root):
    # Tests run as root, which ignores permission bits; a file in the way fails mkdir alike.
    (v1_root / "memory" / "mlfactory").write_text("")
    support = detect_cgroups(v1_root)
    assert (support.cpu, support.memory) == (True, False)
    assert support.reason.startswith("cgroup v1 memory controller is not writable: ")


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "-alice", "Alice", "a_b", "a/b", "../etc", "a.b", "a" * 64, "alice\n"]
)
async def test_invalid_names_are_refused_before_any_io(v1_root, name):
    manager = CgroupManager(v1_root)
    with pytest.raises(ValueError, match="invalid cgroup name"):
        await manager.create(name, PLAN)
    with pytest.raises(ValueError, match="invalid cgroup name"):
        await manager.remove(name)
    assert not (v1_root / "cpu" / "mlfactory").exists()


@pytest.mark.parametrize("parent", ["", "/abs", "../up", "a/../b"])
def test_invalid_parent_is_refused(v1_root, parent):
    with pytest.raises(ValueError):
        CgroupManager(v1_root, parent)


# -- create ------------------------------------------------------------------------------


async def test_create_v1_writes_the_plan(v1_root):
    precreate(v1_root, "alice", 1)
    procs = await CgroupManager(v1_root).create("alice", PLAN)
    cpu, memory = v1_root / "cpu/mlfactory/alice", v1_root / "memory/mlfactory/alice"
    assert procs == [cpu / "cgroup.procs", memory / "cgroup.procs"]
    assert read(cpu / "cpu.cfs_period_us") == "100000"
    assert read(cpu / "cpu.cfs_quota_us") == "50000"
    assert read(cpu / "cpu.shares") == "512"
    assert read(memory / "memory.limit_in_bytes") == str(256 * MIB)
    assert read(memory / "memory.soft_limit_in_bytes") == str(128 * MIB)


async def test_create_again_updates_in_place(v1_root):
    precreate(v1_root, "alice", 1)
    manager = CgroupManager(v1_root)
    await manager.create("alice", PLAN)
    bigger = plan_limits(
        cpu_limit=2, cpu_guarantee=1, mem_limit=MIB, mem_guarantee=0, host_cpus=[0, 1]
    )
    await manager.create("alice", bigger)
    assert read(v1_root / "cpu/mlfactory/alice/cpu.cfs_quota_us") == "200000"
    assert read(v1_root / "memory/mlfactory/alice/memory.soft_limit_in_bytes") == "0"


async def test_create_v1_only_the_usable_controller(v1_root):
    precreate(v1_root, "alice", 1)
    procs = await CgroupManager(v1_root, controllers=["cpu"]).create("alice", PLAN)
    assert procs == [v1_root / "cpu/mlfactory/alice/cgroup.procs"]
    assert read(v1_root / "memory/mlfactory/alice/memory.limit_in_bytes") == ""


async def test_create_missing_control_file_fails_and_undoes(v1_root):
    # No pre-created files: like a kernel without that controller file.
    with pytest.raises(OSError) as info:
        await CgroupManager(v1_root).create("alice", PLAN)
    assert info.value.errno == errno.ENOENT
    assert "cannot write '100000' to" in str(info.value)
    assert "cpu/mlfactory/alice/cpu.cfs_period_us" in str(info.value)
    assert not (v1_root / "cpu/mlfactory/alice").exists()
    assert not (v1_root / "memory/mlfactory/alice").exists()


async def test_create_v2_delegates_and_writes_the_plan(v2_root):
    precreate(v2_root, "alice", 2)
    procs = await CgroupManager(v2_root).create("alice", PLAN)
    cgroup = v2_root / "mlfactory/alice"
    assert procs == [cgroup / "cgroup.procs"]
    assert read(v2_root / "cgroup.subtree_control") == "+cpu +memory"
    assert read(v2_root / "mlfactory/cgroup.subtree_control") == "+cpu +memory"
    assert read(cgroup / "cpu.max") == "50000 100000"
    assert read(cgroup / "cpu.weight") == "50"
    assert read(cgroup / "memory.max") == str(256 * MIB)
    assert read(cgroup / "memory.low") == str(128 * MIB)


async def test_create_v2_leaves_delegated_controllers_alone(v2_root):
    precreate(v2_root, "alice", 2)
    (v2_root / "cgroup.subtree_control").write_text("cpuset cpu io memory\n")
    (v2_root / "mlfactory/cgroup.subtree_control").write_text("memory\n")
    await CgroupManager(v2_root).create("alice", PLAN)
    assert read(v2_root / "cgroup.subtree_control") == "cpuset cpu io memory"
    assert read(v2_root / "mlfactory/cgroup.subtree_control") == "+cpu"


async def test_create_v2_cpu_only(v2_root):
    precreate(v2_root, "alice", 2)
    await CgroupManager(v2_root, controllers=("cpu",)).create("alice", PLAN)
    assert read(v2_root / "cgroup.subtree_control") == "+cpu"
    assert read(v2_root / "mlfactory/alice/memory.max") == ""


# -- remove ------------------------------------------------------------------------------


async def test_remove_missing_cgroups_is_fine(v1_root, v2_root):
    await CgroupManager(v1_root).remove("nobody")
    await CgroupManager(v2_root / "nothing-here").remove("nobody")


async def test_remove_v1_kills_members_but_never_the_hub(v1_root, cgroupfs_rmdir, sleeper):
    precreate(v1_root, "alice", 1)
    manager = CgroupManager(v1_root)
    procs = await manager.create("alice", PLAN)
    for f in procs:
        f.write_text(f"1\n{os.getpid()}\n{sleeper.pid}\n")
    await manager.remove("alice")
    assert await asyncio.wait_for(sleeper.wait(), 5) == -signal.SIGKILL
    assert not (v1_root / "cpu/mlfactory/alice").exists()
    assert not (v1_root / "memory/mlfactory/alice").exists()
    assert (v1_root / "cpu/mlfactory").is_dir()  # the parent stays for the next server


async def test_remove_v2_prefers_cgroup_kill(v2_root, cgroupfs_rmdir, sleeper, monkeypatch):
    precreate(v2_root, "alice", 2)
    manager = CgroupManager(v2_root)
    [procs] = await manager.create("alice", PLAN)
    procs.write_text(f"{sleeper.pid}\n")
    (procs.parent / "cgroup.kill").write_text("")
    written = []
    real_write = cgroups._write

    def spy(path, value):
        written.append((path.name, str(value)))
        real_write(path, value)

    monkeypatch.setattr(cgroups, "_write", spy)
    await manager.remove("alice")
    assert written == [("cgroup.kill", "1")]
    assert sleeper.returncode is None  # the (fake) kernel's job, not a signal of ours
    assert not (v2_root / "mlfactory/alice").exists()


async def test_remove_still_busy_gives_up_after_the_timeout(v1_root, monkeypatch):
    precreate(v1_root, "alice", 1)

    def busy(path):
        raise OSError(errno.EBUSY, "Device or resource busy", str(path))

    monkeypatch.setattr(cgroups, "_remove_dir", busy)
    with pytest.raises(OSError, match="cgroup alice still has processes after 0.1s"):
        await CgroupManager(v1_root).remove("alice", timeout=0.1)


async def test_remove_other_errors_are_raised_at_once(v1_root):
    precreate(v1_root, "alice", 1)  # a plain directory with files: rmdir says ENOTEMPTY
    with pytest.raises(OSError) as info:
        await CgroupManager(v1_root).remove("alice", timeout=60)
    assert info.value.errno == errno.ENOTEMPTY


# -- make_preexec ------------------------------------------------------------------------


def test_preexec_joins_pins_then_runs_then(tmp_path):
    procs = [touch(tmp_path / d, ["cgroup.procs"]) / "cgroup.procs" for d in ("cpu", "mem")]
    seen_by_then = tmp_path / "then"

    def then() -> None:  # runs in the child, after joining: it sees its pid written
        seen_by_then.write_text(procs[0].read_text())

    cpu = min(os.sched_getaffinity(0))
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid(), sorted(os.sched_getaffinity(0)))"],
        preexec_fn=make_preexec(procs, [cpu], then),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    pid, affinity = child.stdout.split(" ", 1)
    assert affinity.strip() == f"[{cpu}]"
    assert [read(p) for p in procs] == [pid, pid]
    assert read(seen_by_then) == pid


def test_preexec_without_cpus_or_then_only_joins(tmp_path):
    procs = touch(tmp_path / "cg", ["cgroup.procs"]) / "cgroup.procs"
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid(), len(os.sched_getaffinity(0)))"],
        preexec_fn=make_preexec([procs], None, None),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    pid, cores = child.stdout.split()
    assert read(procs) == pid
    assert int(cores) == len(os.sched_getaffinity(0))


# -- the real thing ----------------------------------------------------------------------


def require_real_cgroups() -> CgroupSupport:
    """This machine's cgroups; the test is skipped (or fails, with
    MLFACTORY_REQUIRE_CGROUPS=1) if it does not let us write cpu and memory cgroups."""
    support = detect_cgroups()
    if not (support.cpu and support.memory):
        reason = f"no writable cpu+memory cgroups here: {support.reason}"
        if os.environ.get("MLFACTORY_REQUIRE_CGROUPS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return support


async def test_real_cgroup_limits_a_real_process():
    real_cgroups = require_real_cgroups()
    name = f"test-{secrets.token_hex(4)}"
    manager = CgroupManager(version=real_cgroups.version)
    cpu = min(os.sched_getaffinity(0))
    plan = plan_limits(
        cpu_limit=0.5,
        cpu_guarantee=0.5,
        mem_limit=256 * MIB,
        mem_guarantee=64 * MIB,
        host_cpus=[cpu],
    )
    proc = None
    try:
        procs = await manager.create(name, plan)
        proc = await asyncio.create_subprocess_exec(
            "sleep", "30", preexec_fn=make_preexec(procs, plan.cpus, None)
        )
        membership = read(Path(f"/proc/{proc.pid}/cgroup")).splitlines()
        if real_cgroups.version == 2:
            assert f"0::/mlfactory/{name}" in membership
            cgroup = Path("/sys/fs/cgroup/mlfactory") / name
            assert read(cgroup / "memory.max") == str(256 * MIB)
            assert read(cgroup / "cpu.max") == "50000 100000"
        else:
            assert any(line.endswith(f":memory:/mlfactory/{name}") for line in membership)
            assert any(
                line.split(":")[1].split(",").count("cpu") and line.endswith(f"/mlfactory/{name}")
                for line in membership
            ), membership
            cgroup = Path("/sys/fs/cgroup/memory/mlfactory") / name
            assert read(cgroup / "memory.limit_in_bytes") == str(256 * MIB)
            assert read(Path("/sys/fs/cgroup/cpu/mlfactory") / name / "cpu.cfs_quota_us") == (
                "50000"
            )
        assert os.sched_getaffinity(proc.pid) == {cpu}

        # The limit binds: a process touching 512 MiB is held to 256 MiB (OOM-killed, or
        # pushed to swap where the host has some).
        hog = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "b = bytearray(512 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1",
            preexec_fn=make_preexec(procs, plan.cpus, None),
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(hog.wait(), 120)
        if real_cgroups.version == 2:
            events = dict(line.split() for line in read(cgroup / "memory.events").splitlines())
            assert int(events["max"]) > 0
        else:
            assert int(read(cgroup / "memory.failcnt")) > 0
            assert int(read(cgroup / "memory.max_usage_in_bytes")) <= 256 * MIB

        await manager.remove(name)
        assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL
        assert all(not p.parent.exists() for p in procs)
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await manager.remove(name)
