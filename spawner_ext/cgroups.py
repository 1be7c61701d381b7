"""Enforcing a LimitsPlan on a local server with Linux cgroups (v1 or v2): what this host
lets us write, one cgroup per server under ``<controller root>/mlfactory``, and the
function a child runs between fork and exec to join it.

Everything takes a ``root`` so tests can point it at a fake tree.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .limits import LimitsPlan

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "mlfactory"
CONTROLLERS = ("cpu", "memory")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# The file whose presence shows a controller is usable (v1: per controller root).
_V1_PROOF = {"cpu": "cpu.cfs_quota_us", "memory": "memory.limit_in_bytes"}


@dataclass(frozen=True)
class CgroupSupport:
    version: int | None  # 1, 2, or None when no cgroup filesystem was found
    cpu: bool  # cpu quota and weight can be set
    memory: bool  # memory limits can be set
    reason: str  # what is missing; "" when both controllers are usable


def _cgroup_version(root: Path) -> int | None:
    if (root / "cgroup.controllers").is_file():
        return 2
    if any((root / c).is_dir() for c in CONTROLLERS):
        return 1
    return None


def _probe(parent: Path) -> str | None:
    """None if we can make (and remove) a cgroup under ``parent``, else why not."""
    created = not parent.exists()
    # "_" never occurs in server names, so the probe can't collide with a real cgroup.
    probe = parent / f"_probe-{os.getpid()}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe.mkdir()
        _remove_dir(probe)
        if created:
            _remove_dir(parent)
    except OSError as e:
        return f"{e.strerror or e} ({e.filename or parent})"
    return None


def detect_cgroups(root: Path = CGROUP_ROOT, parent: str = PARENT) -> CgroupSupport:
    """Which controllers this host lets us write. Quick /sys I/O: from async code, call it
    through asyncio.to_thread."""
    root = Path(root)
    version = _cgroup_version(root)
    if version is None:
        return CgroupSupport(None, False, False, f"no cgroup filesystem at {root}")
    usable: dict[str, bool] = {}
    problems: list[str] = []
    if version == 2:
        available = (root / "cgroup.controllers").read_text().split()
        missing = [c for c in CONTROLLERS if c not in available]
        problems += [f"cgroup v2 {c} controller is not available at {root}" for c in missing]
        failure = _probe(root / parent)
        if failure:
            problems.append(f"cgroup v2 at {root} is not writable: {failure}")
        usable = {c: c not in missing and not failure for c in CONTROLLERS}
    else:
        for c in CONTROLLERS:
            base = root / c
            if not base.is_dir():
                problems.append(f"cgroup v1 {c} controller is not mounted at {base}")
            elif not (base / _V1_PROOF[c]).exists():
                problems.append(f"cgroup v1 {c} controller at {base} has no {_V1_PROOF[c]}")
            elif failure := _probe(base / parent):
                problems.append(f"cgroup v1 {c} controller is not writable: {failure}")
            else:
                usable[c] = True
    return CgroupSupport(
        version, usable.get("cpu", False), usable.get("memory", False), "; ".join(problems)
    )


def check_name(name: str) -> str:
    """``name`` if it is a valid per-server cgroup name, else ValueError."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid cgroup name {name!r}: must match [a-z0-9][a-z0-9-]{{0,62}}")
    return name


def _write(path: Path, value: object) -> None:
    # No O_CREAT: on cgroupfs the kernel makes the control files, so a missing one means
    # the controller isn't there, and that must fail rather than create a plain file.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {str(value)!r} to {path}: {e.strerror}") from e


def _remove_dir(path: Path) -> None:
    # cgroupfs lets rmdir remove a cgroup despite its control files; a plain directory
    # (a test's fake tree) does not, which is why tests replace this one function.
    path.rmdir()


def _pids(procs_file: Path) -> list[int]:
    try:
        return [int(line) for line in procs_file.read_text().split()]
    except FileNotFoundError:
        return []


def _kill_members(cgroup: Path) -> None:
    kill_file = cgroup / "cgroup.kill"  # v2, Linux 5.14+: kills all, forks included
    if kill_file.exists():
        _write(kill_file, 1)
        return
    for pid in _pids(cgroup / "cgroup.procs"):
        if pid <= 1 or pid == os.getpid():  # never the hub itself, whatever the file says
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class CgroupManager:
    """Creates and removes one cgroup per server under ``<controller root>/<parent>``.

    ``controllers`` limits which of cpu and memory are used (pass those that
    detect_cgroups found usable); ``version`` is detected from ``root`` when not given.
    """

    def __init__(
        self,
        root: Path = CGROUP_ROOT,
        parent: str = PARENT,
        *,
        controllers: Iterable[str] = CONTROLLERS,
        version: int | None = None,
    ) -> None:
        self.root = Path(root)
        parts = Path(parent).parts
        if not parts or Path(parent).is_absolute() or any(p in ("..", ".") for p in parts):
            raise ValueError(f"parent must be a relative path below the root, not {parent!r}")
        self.parent = parent
        self.controllers = tuple(c for c in CONTROLLERS if c in set(controllers))
        self.version = version or _cgroup_version(self.root) or 1

    def paths(self, name: str) -> list[Path]:
        """The cgroup directories of server ``name`` (one per v1 controller; one on v2)."""
        check_name(name)
        if self.version == 2:
            return [self.root / self.parent / name]
        return [self.root / c / self.parent / name for c in self.controllers]

    async def create(self, name: str, plan: LimitsPlan) -> list[Path]:
        """Create (or update) server ``name``'s cgroups with ``plan``'s limits; returns the
        ``cgroup.procs`` files its process must join. Undoes what it made on failure."""
        self.paths(name)  # validates before any thread starts
        return await asyncio.to_thread(self._create, name, plan)

    async def remove(
        self,
        name: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - bounds the retries, and names the busy cgroups
    ) -> None:
        """Kill whatever still runs in server ``name``'s cgroups and remove them; missing
        cgroups are fine. Raises OSError if they are still busy after ``timeout`` s."""
        dirs = self.paths(name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            busy = await asyncio.to_thread(self._kill_and_remove, dirs)
            if not busy:
                return
            if loop.time() >= deadline:
                raise OSError(
                    errno.EBUSY,
                    f"cgroup {name} still has processes after {timeout}s: "
                    + ", ".join(map(str, busy)),
                )
            # Killed processes leave their cgroup only once the kernel has torn them down.
            await asyncio.sleep(0.02)

    def _settings(self, controller: str | None, plan: LimitsPlan) -> list[tuple[str, object]]:
        if controller == "cpu":
            # Period before quota: the kernel checks the quota against the current period.
            return [
                ("cpu.cfs_period_us", plan.cpu_period_us),
                ("cpu.cfs_quota_us", plan.cpu_quota_us),
                ("cpu.shares", plan.cpu_shares),
            ]
        if controller == "memory":
            return [
                ("memory.limit_in_bytes", plan.memory_max),
                ("memory.soft_limit_in_bytes", plan.memory_low),
            ]
        settings: list[tuple[str, object]] = []
        if "cpu" in self.controllers:
            settings += [
                ("cpu.max", f"{plan.cpu_quota_us} {plan.cpu_period_us}"),
                ("cpu.weight", plan.cpu_weight),
            ]
        if "memory" in self.controllers:
            settings += [("memory.max", plan.memory_max), ("memory.low", plan.memory_low)]
        return settings

    def _enable_v2_controllers(self) -> None:
        """Delegate our controllers down to the parent's children: every level from the
        root to the parent must list them in its cgroup.subtree_control."""
        levels = [self.root]
        for part in Path(self.parent).parts:
            levels.append(levels[-1] / part)
        for level in levels:
            level.mkdir(exist_ok=True)
            enabled = (level / "cgroup.subtree_control").read_text().split()
            missing = [c for c in self.controllers if c not in enabled]
            if missing:
                _write(level / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))

    def _create(self, name: str, plan: LimitsPlan) -> list[Path]:
        made: list[Path] = []
        dirs = self.paths(name)
        controllers: list[str | None] = [None] if self.version == 2 else list(self.controllers)
        try:
            if self.version == 2:
                self._enable_v2_controllers()
            for controller, cgroup in zip(controllers, dirs, strict=True):
                if not cgroup.is_dir():
                    cgroup.mkdir(parents=True)
                    made.append(cgroup)
                for file, value in self._settings(controller, plan):
                    _write(cgroup / file, value)
        except OSError:
            for cgroup in reversed(made):
                try:
                    _remove_dir(cgroup)
                except OSError:
                    pass  # the original error is the one worth reporting
            raise
        return [cgroup / "cgroup.procs" for cgroup in dirs]

    def _kill_and_remove(self, dirs: Sequence[Path]) -> list[Path]:
        """One round of kill + rmdir; returns the cgroups still busy."""
        busy = []
        for cgroup in dirs:
            if not cgroup.is_dir():
                continue
            _kill_members(cgroup)
            try:
                _remove_dir(cgroup)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                busy.append(cgroup)
        return busy


def make_preexec(
    procs_files: Sequence[Path],
    cpus: Sequence[int] | None = None,
    then: Callable[[], None] | None = None,
) -> Callable[[], None]:
    """The function Popen runs in the child between fork and exec: join the cgroups,
    pin to ``cpus``, then run ``then`` (e.g. JupyterHub's set_user_setuid(name)).

    Joining comes first because only root may write cgroup.procs, and ``then`` usually
    drops root. Paths are encoded here, in the parent, to keep the child's work minimal.
    """
    files = [os.fsencode(p) for p in procs_files]
    cpu_set = frozenset(cpus) if cpus else None

    def preexec() -> None:
        pid = str(os.getpid()).encode()
        for file in files:
            fd = os.open(file, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if cpu_set is not None:
            os.sched_setaffinity(0, cpu_set)
        if then is not None:
            then()

    return preexec
