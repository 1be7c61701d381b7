"""LocalHost.hold / restore / release: what a server holds on this machine (GPUs, pinned
cores, a cgroup), against a fake cgroup v1 tree and stand-in GPUs."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from mlfactory.spawner import cgroups
from mlfactory.spawner.cgroups import CgroupManager, CgroupSupport
from mlfactory.spawner.gpus import Gpu, GpuAllocator, NoGpuAvailable
from mlfactory.spawner.host import Holding, LocalHost
from mlfactory.spawner.profiles import ResourceRequest

GIB = 1024**3
T4_0 = Gpu(0, "GPU-11111111-aaaa-bbbb-cccc-000000000000", "Tesla T4", 15360)
T4_1 = Gpu(1, "GPU-22222222-aaaa-bbbb-cccc-000000000000", "Tesla T4", 15360)
V1_FILES = {
    "cpu": ["cgroup.procs", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"],
    "memory": ["cgroup.procs", "memory.limit_in_bytes", "memory.soft_limit_in_bytes"],
}


def request(cpu: float = 2, gpu: int = 0) -> ResourceRequest:
    return ResourceRequest(
        profile="p",
        display_name="P",
        cpu_guarantee=cpu / 2,
        cpu_limit=cpu,
        mem_guarantee=GIB,
        mem_limit=2 * GIB,
        gpu=gpu,
        gpu_type=None,
        disk=0,
        image="base",
        image_ref="base",
        node_pool=None,
        project="",
        price_per_hour=1.0,
    )


@pytest.fixture
def v1_root(tmp_path, monkeypatch) -> Path:
    """A fake cgroup v1 tree; rmdir removes a cgroup despite its files, as on cgroupfs."""
    for controller, files in V1_FILES.items():
        (tmp_path / controller).mkdir()
        for f in files:
            (tmp_path / controller / f).write_text("")
    monkeypatch.setattr(cgroups, "_remove_dir", shutil.rmtree)
    return tmp_path


def precreate(root: Path, name: str) -> list[Path]:
    """A fake tree can't make control files on mkdir the way cgroupfs does: pre-create."""
    dirs = []
    for controller, files in V1_FILES.items():
        d = root / controller / "mlfactory" / name
        d.mkdir(parents=True)
        for f in files:
            (d / f).write_text("")
        dirs.append(d)
    return dirs


def host(root: Path) -> LocalHost:
    """A host with two T4s, four cores and cgroups under ``root``: a fresh hub process."""
    cpus = (0, 1, 2, 3)
    return LocalHost(
        allocator=GpuAllocator([T4_0, T4_1]),
        gpu_types=frozenset({"Tesla T4"}),
        cgroup_support=CgroupSupport(1, True, True, ""),
        cpus=cpus,
        cgroups=CgroupManager(root, version=1),
        cpu_load=dict.fromkeys(cpus, 0.0),
    )


async def test_hold_takes_gpus_cores_and_a_cgroup_and_release_gives_them_back(v1_root):
    h = host(v1_root)
    dirs = precreate(v1_root, "ann") + precreate(v1_root, "bob")
    ann = await h.hold("ann", request(cpu=2, gpu=1))
    bob = await h.hold("bob", request(cpu=2, gpu=1))
    assert {ann.gpus, bob.gpus} == {(T4_0.uuid,), (T4_1.uuid,)}
    assert set(ann.cpus).isdisjoint(bob.cpus)  # the least-loaded cores
    assert ann.cgroup and [p.parent for p in ann.procs_files] == dirs[:2]
    assert (dirs[0] / "cpu.cfs_quota_us").read_text() == "200000"
    with pytest.raises(NoGpuAvailable):
        await h.hold("cy", request(gpu=1))
    await h.release("ann")
    await h.release("ann")  # twice is harmless
    assert not dirs[0].exists() and not dirs[1].exists()
    assert all(h.cpu_load[c] == 0 for c in ann.cpus)
    precreate(v1_root, "cy")
    assert (await h.hold("cy", request(gpu=1))).gpus == ann.gpus


async def test_a_hold_that_fails_gives_back_what_it_took(v1_root):
    h = host(v1_root)  # no pre-created control files: the cgroup cannot be written
    with pytest.raises(OSError):
        await h.hold("ann", request(cpu=4, gpu=2))
    assert h.allocator.in_use() == {}
    assert set(h.cpu_load.values()) == {0.0}


async def test_after_a_hub_restart_restore_keeps_the_gpus_and_release_frees_all(v1_root):
    dirs = precreate(v1_root, "ann")
    before = await host(v1_root).hold("ann", request(gpu=1))
    state = before.state()  # what the spawner saved
    assert state == {"key": "ann", "gpus": [T4_0.uuid], "pinned": True, "cgroup": True}

    after = host(v1_root)  # the hub restarted: a new host, nothing held
    saved = Holding.from_state(state, "other-slug")
    assert saved == Holding("ann", gpus=(T4_0.uuid,), cgroup=True)  # pins are not restored
    assert after.restore(saved) == ()
    with pytest.raises(NoGpuAvailable):
        await after.hold("bob", request(gpu=2))  # ann's GPU is not free
    await after.release("ann")
    assert not dirs[0].exists()
    assert after.allocator.in_use() == {}


async def test_restore_drops_gpus_this_host_no_longer_has(v1_root):
    h = host(v1_root)
    gone = Holding("ann", gpus=("GPU-gone", T4_1.uuid))
    assert h.restore(gone) == ("GPU-gone",)
    assert h.allocator.in_use() == {"ann": (T4_1.uuid,)}


def test_a_state_without_a_holding_restores_nothing():
    assert Holding.from_state({}, "ann") is None
    assert Holding.from_state({"gpus": []}, "ann") is None
    assert Holding.from_state({"cgroup": True}, "ann") == Holding("ann", cgroup=True)
    assert replace(Holding("ann", cpus=(1,)), cpus=()).state() == {"key": "ann", "gpus": []}
