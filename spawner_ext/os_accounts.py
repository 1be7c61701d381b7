"""Per-user OS accounts for local servers: the account name derived from a hub user,
creating the account and its private home, and checking that the account can run the
hub's Python at all.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import stat
import sys
from pathlib import Path

from .slugs import safe_slug

PREFIX = "mlf-"
# What useradd accepts on every distribution we know of, and fits utmp's 32 bytes.
_ACCOUNT_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def os_account_name(username: str) -> str:
    """The OS account for hub user ``username``: "mlf-" plus its slug, so two hub users
    never share an account ("alice" → "mlf-alice", "Alice" → "mlf-alice---<hash>")."""
    name = PREFIX + safe_slug(username, max_length=32 - len(PREFIX))
    if not _ACCOUNT_RE.fullmatch(name):  # safe_slug's contract makes this unreachable
        raise ValueError(f"derived account name {name!r} is not a valid OS account name")
    return name


async def _getpwnam(name: str) -> pwd.struct_passwd | None:
    # NSS may ask LDAP or sssd: keep the lookup off the event loop.
    try:
        return await asyncio.to_thread(pwd.getpwnam, name)
    except KeyError:
        return None


def _make_home(home: Path, uid: int, gid: int) -> None:
    """``home`` mode 0700 owned by the account; missing parents 0711 owned by root so
    accounts can pass through to their own home but not list anyone else's."""
    missing = [p for p in home.parents if not p.exists()]
    for parent in reversed(missing):
        parent.mkdir(exist_ok=True)
        os.chown(parent, 0, 0)
        # Explicit: mkdir's mode is filtered by the umask.
        os.chmod(parent, 0o711)  # noqa: S103 - traverse only, no listing
    home.mkdir(exist_ok=True)
    os.chown(home, uid, gid)
    os.chmod(home, 0o700)


async def ensure_os_account(
    name: str,
    home: Path,
    *,
    comment: str = "",
    timeout: float = 30,  # noqa: ASYNC109 - useradd is killed on timeout; a caller's could not
) -> pwd.struct_passwd:
    """The OS account ``name``, created with useradd (and a private ``home``) if missing.

    An existing account is returned untouched. Raises OSError with useradd's message if
    it fails, TimeoutError (an OSError) if it hangs.
    """
    if not _ACCOUNT_RE.fullmatch(name):  # also keeps a name from reading as an option
        raise ValueError(f"invalid OS account name {name!r}")
    existing = await _getpwnam(name)
    if existing is not None:
        # Never hand one person's account to another: it must be the one made for them.
        if comment and existing.pw_gecos != comment:
            raise OSError(
                f"OS account {name} exists but was not made for this user "
                f"({existing.pw_gecos!r}); an admin must resolve the clash"
            )
        return existing
    home = Path(home)
    proc = await asyncio.create_subprocess_exec(
        "useradd",
        "--home-dir",
        str(home),
        "--no-create-home",
        "--shell",
        "/bin/bash",
        "--user-group",
        "--comment",
        comment,
        name,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TimeoutError(f"useradd {name} did not finish within {timeout}s") from None
    account = await _getpwnam(name)
    if account is None:
        # A concurrent spawn may have created it first; only a missing account is fatal.
        message = stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise OSError(f"useradd {name} failed: {message}")
    await asyncio.to_thread(_make_home, home, account.pw_uid, account.pw_gid)
    return account


def _allows(st: os.stat_result, uid: int, groups: set[int], bits: int) -> bool:
    """Whether ``uid`` gets all permission ``bits`` (r=4, w=2, x=1) on a file.

    The owner class wins even when it grants less than group or other, as in the kernel;
    ACLs are not considered.
    """
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        granted = mode >> 6
    elif st.st_gid in groups:
        granted = mode >> 3
    else:
        granted = mode
    return granted & bits == bits


def _chain(path: str) -> list[str]:
    """``path`` and every directory above it, from / down."""
    parts = Path(path).parts
    return [str(Path(*parts[: i + 1])) for i in range(len(parts))]


def interpreter_problem(
    executable: str,
    uid: int,
    gid: int,
    *,
    prefix: str | None = None,
    account: str | None = None,
) -> str | None:
    """Why account ``uid``/``gid`` could not run ``executable`` (with its environment at
    ``prefix``, default sys.prefix), as a sentence for an admin; None if it can.

    Every directory down to the executable (as given and resolved) and to the prefix must
    be traversable, and the executable readable and executable.
    """
    if uid == 0:
        return None
    if account is None:
        try:
            account = pwd.getpwuid(uid).pw_name
        except KeyError:
            account = f"uid {uid}"
    try:
        groups = set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        groups = {gid}
    given = os.path.abspath(executable)
    real = os.path.realpath(executable)
    dirs: list[str] = []
    for target in (
        os.path.dirname(given),
        os.path.dirname(real),
        os.path.realpath(prefix or sys.prefix),
    ):
        dirs += [d for d in _chain(target) if d not in dirs]
    for d in dirs:
        try:
            st = os.stat(d)
        except OSError as e:
            return f"{d} cannot be checked ({e.strerror}): is the hub's Python installed there?"
        if not _allows(st, uid, groups, 1):
            return (
                f"{d} is not accessible to {account} (mode {stat.S_IMODE(st.st_mode):04o}): "
                f"install Python outside {d} or run servers as the hub's user"
            )
    try:
        st = os.stat(real)
    except OSError as e:
        return f"{real} cannot be checked ({e.strerror}): is the hub's Python installed there?"
    if not _allows(st, uid, groups, 4 | 1):
        return (
            f"{real} is not readable and executable by {account} "
            f"(mode {stat.S_IMODE(st.st_mode):04o}): make it so (chmod a+rx) or run servers "
            "as the hub's user"
        )
    return None


def home_problem(home: Path, account: pwd.struct_passwd) -> str | None:
    """Why ``account`` could not reach its ``home`` (a folder above it it cannot pass
    through), as a sentence for an admin; None if it can."""
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for d in _chain(str(home.parent)):
        st = os.stat(d)
        if not _allows(st, account.pw_uid, groups, 1):
            return (
                f"{d} is not accessible to {account.pw_name} (mode "
                f"{stat.S_IMODE(st.st_mode):04o}), so its home folder cannot be reached: put "
                "MLFACTORY_DATA (or c.MLFactoryLocalSpawner.workspace_root) where other "
                "accounts may pass through"
            )
    return None


def private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 (mkdir's mode only applies
    to the last level)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)


def traversable_dirs(path: Path) -> None:
    """Create ``path`` (and parents) owned by root with mode 0711: accounts may pass
    through to their own home but not list anyone else's."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o711, exist_ok=True)
    os.chmod(path, 0o711)  # noqa: S103 - traverse only, no listing


def owned_dir(path: Path, account: pwd.struct_passwd) -> None:
    """Make ``path`` a 0700 folder owned by ``account``, without following links.

    The parent may be the user's own home: a symlink planted there (``~/etc -> /etc``)
    must not make the hub (root) hand ``/etc`` to the user.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, account.pw_uid):
            raise OSError(f"{path} belongs to another account (uid {st.st_uid})")
        os.fchown(fd, account.pw_uid, account.pw_gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
