"""Each user's home volume for the container backend, with its size enforced.

A volume is an ext4 file system in a sparse image file, ``<root>/<slug>.ext4``, sized by
the disk choice and loop-mounted at ``<root>/<slug>/``; the engine sees that folder as the
named volume ``mlfactory-home-<slug>`` (the ``local`` driver binding it), mounted at
``/home/jovyan``. The file system is the limit: a write past its size fails with ENOSPC
inside the container, whatever the engine's storage driver. The volume outlives every
container; a larger disk choice grows it (``resize2fs`` while mounted), a smaller one never
shrinks it (its files could not fit). After a reboot the next spawn mounts it again.

Blocking (``mount``, ``mkfs``, docker-py): call from a worker thread. Needs root.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

_MIN_SIZE = 8 * 1024 * 1024  # smaller ext4 file systems have no room for their journal


class VolumeError(Exception):
    """The home volume could not be made ready; the message says why."""


@dataclass(frozen=True)
class HomeVolume:
    root: Path
    slug: str

    @property
    def image(self) -> Path:
        return self.root / f"{self.slug}.ext4"

    @property
    def mountpoint(self) -> Path:
        return self.root / self.slug

    def size(self) -> int:
        """The image file's size in bytes (0 if there is none yet)."""
        try:
            return self.image.stat().st_size
        except FileNotFoundError:
            return 0


def _run(*args: str) -> str:
    try:
        done = subprocess.run(args, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise VolumeError(f"{args[0]} is not installed (Debian: e2fsprogs, mount)") from None
    except subprocess.CalledProcessError as e:
        raise VolumeError(f"{' '.join(args)} failed: {(e.stderr or e.stdout).strip()}") from None
    return done.stdout


def mounted_source(mountpoint: Path) -> str | None:
    """The device mounted at ``mountpoint`` (e.g. /dev/loop3), None if nothing is."""
    target = str(mountpoint)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            # fields: id parent major:minor root mountpoint options ... - fstype source opts
            if parts[4] == target:
                return parts[parts.index("-") + 2]
    return None


def ensure_home(volume: HomeVolume, size: int, uid: int, gid: int) -> HomeVolume:
    """Make ``volume`` exist with at least ``size`` bytes, mounted, its root owned by
    ``uid:gid``; grow it when ``size`` is larger than it is."""
    size = max(int(size), _MIN_SIZE)
    volume.root.mkdir(parents=True, exist_ok=True, mode=0o711)
    if not volume.image.exists():
        tmp = volume.image.with_suffix(".new")
        with open(tmp, "wb") as f:
            f.truncate(size)  # sparse: costs only what is written
        # no reserved blocks: the user gets all of the size they chose
        _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", f"root_owner={uid}:{gid}", str(tmp))
        os.replace(tmp, volume.image)
    volume.mountpoint.mkdir(mode=0o711, exist_ok=True)
    device = mounted_source(volume.mountpoint)
    if device is None:
        _run("mount", "-o", "loop,nosuid,nodev", str(volume.image), str(volume.mountpoint))
        device = mounted_source(volume.mountpoint)
        if device is None:
            raise VolumeError(f"{volume.image} did not mount at {volume.mountpoint}")
    if size > volume.size():
        _grow(volume, device, size)
    os.chown(volume.mountpoint, uid, gid)  # the mounted file system's root
    return volume


def _grow(volume: HomeVolume, device: str, size: int) -> None:
    """Grow the mounted volume to ``size``: online where the kernel allows it, else
    unmounted (checked, resized, mounted again)."""
    with open(volume.image, "r+b") as f:
        f.truncate(size)
    _run("losetup", "--set-capacity", device)  # the loop device learns the new file size
    try:
        _run("resize2fs", device)
        return
    except VolumeError:
        pass  # some kernels (and sandboxes) refuse the online resize ioctl
    # Unmounting fails while a container of this user holds the volume: it then keeps its
    # size until all of them stop (the error says so).
    _run("umount", str(volume.mountpoint))
    try:
        _run("e2fsck", "-f", "-p", str(volume.image))
        _run("resize2fs", str(volume.image))
    finally:
        _run("mount", "-o", "loop,nosuid,nodev", str(volume.image), str(volume.mountpoint))


def ensure_folder(volume: HomeVolume, relative: str, uid: int, gid: int) -> Path:
    """A folder inside the mounted volume, owned by ``uid:gid`` (a named server's)."""
    path = volume.mountpoint / relative if relative else volume.mountpoint
    if path != volume.mountpoint:
        # the user owns the volume's contents: a link planted where the folder goes must not
        # make the hub (root) chown what it points to
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise VolumeError(f"{relative!r} in your home folder is not a folder; rename it")
        path.mkdir(exist_ok=True)
        os.chown(path, uid, gid, follow_symlinks=False)
    return path


def unmount(volume: HomeVolume) -> None:
    """Unmount the volume (its files stay in the image file); nothing if not mounted."""
    if mounted_source(volume.mountpoint) is not None:
        _run("umount", str(volume.mountpoint))


def engine_volume(
    client: docker.APIClient, volume: HomeVolume, name: str, labels: Mapping[str, str]
) -> str:
    """The engine's named volume ``name`` binding the mounted folder; made once (with
    ``labels``), kept forever."""
    try:
        found = client.inspect_volume(name)
    except docker.errors.NotFound:
        found = None
    if found is not None:
        device = (found.get("Options") or {}).get("device")
        if device and device != str(volume.mountpoint):
            raise VolumeError(f"the engine's volume {name} binds {device}, not {volume.mountpoint}")
        return name
    client.create_volume(
        name,
        driver="local",
        driver_opts={"type": "none", "o": "bind", "device": str(volume.mountpoint)},
        labels=dict(labels),
    )
    return name
