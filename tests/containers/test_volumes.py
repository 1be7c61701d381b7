"""The per-user home volume, for real: an ext4 image on a loop device, bound into the engine
as a named volume, with its size enforced inside a container."""

from __future__ import annotations

import os
import shutil
import uuid

import docker
import pytest
from mlfactory.spawner.volumes import (
    HomeVolume,
    VolumeError,
    engine_volume,
    ensure_folder,
    ensure_home,
    mounted_source,
    unmount,
)

MiB = 1024 * 1024


@pytest.fixture
def volume(tmp_path):
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.fail("the volume tests need root and e2fsprogs (the test command runs as root)")
    vol = HomeVolume(tmp_path / "volumes", f"t-{uuid.uuid4().hex[:8]}")
    yield vol
    unmount(vol)


def test_created_mounted_owned_and_sized(volume):
    ensure_home(volume, 16 * MiB, 1000, 100)
    assert mounted_source(volume.mountpoint).startswith("/dev/loop")
    st = os.stat(volume.mountpoint)
    assert (st.st_uid, st.st_gid) == (1000, 100)
    assert volume.size() == 16 * MiB
    assert os.stat(volume.image).st_blocks * 512 < 16 * MiB  # sparse
    total = os.statvfs(volume.mountpoint)
    assert 12 * MiB < total.f_blocks * total.f_frsize <= 16 * MiB
    folder = ensure_folder(volume, "analysis", 1000, 100)
    assert folder.is_dir() and os.stat(folder).st_uid == 1000


def test_a_link_where_a_server_folder_goes_is_refused_not_followed(volume, tmp_path):
    """The user owns what is in the volume; the hub runs as root."""
    ensure_home(volume, 16 * MiB, 1000, 100)
    target = tmp_path / "root-owned"
    target.mkdir()
    (volume.mountpoint / "gpu").symlink_to(target)
    with pytest.raises(VolumeError, match="'gpu' in your home folder is not a folder"):
        ensure_folder(volume, "gpu", 1000, 100)
    assert os.stat(target).st_uid == 0  # not handed to the user


def test_write_past_size_fails_on_the_host_mount(volume):
    ensure_home(volume, 8 * MiB, 1000, 100)
    with pytest.raises(OSError) as e, open(volume.mountpoint / "big", "wb") as f:
        for _ in range(16):
            f.write(b"x" * MiB)
            f.flush()
            os.fsync(f.fileno())
    assert e.value.errno == 28  # ENOSPC


def test_grows_never_shrinks_and_keeps_files(volume):
    ensure_home(volume, 16 * MiB, 1000, 100)
    (volume.mountpoint / "notes.txt").write_text("kept")
    ensure_home(volume, 32 * MiB, 1000, 100)
    assert volume.size() == 32 * MiB
    stat = os.statvfs(volume.mountpoint)
    assert stat.f_blocks * stat.f_frsize > 24 * MiB  # the file system grew while mounted
    ensure_home(volume, 16 * MiB, 1000, 100)
    assert volume.size() == 32 * MiB
    assert (volume.mountpoint / "notes.txt").read_text() == "kept"


def test_remounted_after_unmount(volume):
    ensure_home(volume, 16 * MiB, 1000, 100)
    (volume.mountpoint / "notes.txt").write_text("kept")
    unmount(volume)  # as after a reboot
    assert mounted_source(volume.mountpoint) is None
    assert not (volume.mountpoint / "notes.txt").exists()
    ensure_home(volume, 16 * MiB, 1000, 100)
    assert (volume.mountpoint / "notes.txt").read_text() == "kept"


def test_enospc_inside_a_container_and_volume_outlives_it(volume, container_engine, minimal_image):
    ensure_home(volume, 16 * MiB, 1000, 100)
    client = docker.APIClient(base_url=container_engine.url, version="auto")
    try:
        labels = {"org.mlfactory.user": "alice"}
        name = engine_volume(client, volume, f"mlfactory-home-{volume.slug}", labels)
        assert engine_volume(client, volume, name, labels) == name  # idempotent
        cid = client.create_container(
            minimal_image,
            command=[
                "sh",
                "-c",
                "echo hello > /home/jovyan/hello.txt; "
                "dd if=/dev/zero of=/home/jovyan/big bs=1M count=64 2>&1; echo rc=$?",
            ],
            user="1000:100",
            host_config=client.create_host_config(binds={name: {"bind": "/home/jovyan"}}),
        )["Id"]
        try:
            client.start(cid)
            assert client.wait(cid, timeout=60)["StatusCode"] == 0
            out = client.logs(cid).decode()
        finally:
            client.remove_container(cid, force=True)
        assert "No space left on device" in out and "rc=1" in out, out
        # the container is gone; the volume and the file it wrote are not
        assert client.inspect_volume(name)["Name"] == name
        assert (volume.mountpoint / "hello.txt").read_text() == "hello\n"
    finally:
        try:
            client.remove_volume(f"mlfactory-home-{volume.slug}", force=True)
        except docker.errors.NotFound:
            pass
        client.close()
