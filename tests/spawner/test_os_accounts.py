"""OS accounts: derived names, whether an account can run the hub's Python, and one real
account made with useradd (and deleted again)."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from mlfactory.spawner.os_accounts import (
    ensure_os_account,
    home_problem,
    interpreter_problem,
    os_account_name,
)

ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
NOBODY = 65534

# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    ["alice", "Alice", "ALICE", "a", "alice@example.com", "élodie", "用户", "", "-", "x" * 200],
)
def test_account_names_are_valid(username):
    name = os_account_name(username)
    assert ACCOUNT.fullmatch(name), name
    assert len(name) <= 32
    assert name.startswith("mlf-")


def test_safe_names_are_kept_readable():
    assert os_account_name("alice") == "mlf-alice"
    assert os_account_name("data-team-7") == "mlf-data-team-7"


def test_case_variants_get_different_accounts():
    names = {os_account_name(u) for u in ("alice", "Alice", "ALICE", "alicE")}
    assert len(names) == 4


def test_long_names_that_share_a_prefix_do_not_collide():
    a, b = "x" * 40 + "a", "x" * 40 + "b"
    assert os_account_name(a) != os_account_name(b)


# -- interpreter_problem -----------------------------------------------------------------


@pytest.fixture
def python_tree():
    """<dir>/opt/venv/bin/python (a copy of a small executable), every level open.

    Not under tmp_path: pytest keeps that 0700, so no other uid could reach into it.
    """
    root = Path(tempfile.mkdtemp(prefix="mlf-interp-"))
    root.chmod(0o755)
    venv = root / "opt" / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    shutil.copy("/bin/true", python)
    for d in (root / "opt", venv, venv / "bin"):
        d.chmod(0o755)
    python.chmod(0o755)
    yield root, venv, python
    shutil.rmtree(root)


def test_an_open_tree_is_fine(python_tree):
    _, venv, python = python_tree
    assert interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(venv)) is None


def test_a_closed_directory_is_named(python_tree):
    root, venv, python = python_tree
    (root / "opt").chmod(0o700)
    problem = interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(venv), account="mlf-a")
    assert problem == (
        f"{root}/opt is not accessible to mlf-a (mode 0700): install Python outside "
        f"{root}/opt or run servers as the hub's user"
    )


def test_the_first_closed_directory_from_the_top_is_named(python_tree):
    root, venv, python = python_tree
    (root / "opt").chmod(0o700)
    (venv / "bin").chmod(0o700)
    problem = interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(venv))
    assert problem.startswith(f"{root}/opt is not accessible to nobody (mode 0700)")


def test_group_and_owner_bits_count(python_tree):
    root, venv, python = python_tree
    (root / "opt").chmod(0o710)
    os.chown(root / "opt", 0, 4242)
    assert interpreter_problem(str(python), NOBODY, 4242, prefix=str(venv)) is None
    assert interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(venv)) is not None
    os.chown(root / "opt", NOBODY, 0)
    (root / "opt").chmod(0o071)  # the owner class wins even though group and other pass
    assert "is not accessible" in interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(venv))


def test_the_prefix_is_checked_too(python_tree):
    root, _, python = python_tree
    prefix = root / "private" / "env"
    prefix.mkdir(parents=True)
    (root / "private").chmod(0o700)
    problem = interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(prefix))
    assert problem.startswith(f"{root}/private is not accessible")


def test_a_symlinked_interpreter_is_checked_where_it_really_is(python_tree):
    root, venv, python = python_tree
    real_dir = root / "hidden"
    real_dir.mkdir(mode=0o700)
    real_dir.chmod(0o700)
    shutil.move(python, real_dir / "python3")
    python.symlink_to(real_dir / "python3")
    problem = interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(venv))
    assert problem.startswith(f"{real_dir} is not accessible")


def test_an_unexecutable_interpreter_is_named(python_tree):
    _, venv, python = python_tree
    python.chmod(0o750)
    problem = interpreter_problem(str(python), NOBODY, NOBODY, prefix=str(venv))
    assert problem == (
        f"{python} is not readable and executable by nobody (mode 0750): make it so "
        "(chmod a+rx) or run servers as the hub's user"
    )


def test_a_missing_interpreter_is_named(python_tree):
    root, venv, _ = python_tree
    problem = interpreter_problem(str(venv / "bin" / "nope"), NOBODY, NOBODY, prefix=str(venv))
    assert problem.startswith(f"{venv}/bin/nope cannot be checked (No such file or directory)")


def test_root_can_run_anything(python_tree):
    root, venv, python = python_tree
    (root / "opt").chmod(0o700)
    assert interpreter_problem(str(python), 0, 0, prefix=str(venv)) is None


def test_unknown_uid_is_named_by_number(python_tree):
    root, venv, python = python_tree
    (root / "opt").chmod(0o700)
    problem = interpreter_problem(str(python), 54321, 54321, prefix=str(venv))
    assert "not accessible to uid 54321" in problem


# -- a real account ----------------------------------------------------------------------


@pytest.fixture
def account_name():
    """A unique account name (a hashed one, as for a hub user "Test-<hex>"); the account is
    deleted afterwards if the test made it."""
    name = os_account_name(f"Test-{secrets.token_hex(3)}")
    yield name
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", name], check=True, capture_output=True, timeout=60)


async def test_real_account_is_made_once(account_name, tmp_path):
    if shutil.which("useradd") is None:
        pytest.fail("useradd is not installed: these hosts (and CI) must have it")
    if os.geteuid() != 0:
        pytest.fail("making OS accounts needs root; run this test as root")
    home = tmp_path / "homes" / "inner" / account_name
    account = await ensure_os_account(account_name, home, comment="mlfactory user Test")
    assert account.pw_name == account_name
    assert account.pw_dir == str(home)
    assert account.pw_shell == "/bin/bash"
    assert account.pw_gecos == "mlfactory user Test"
    assert account.pw_uid != 0
    # --user-group: a group of its own name
    assert account.pw_gid != 0

    st = os.stat(home)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        account.pw_uid,
        account.pw_gid,
        0o700,
    )
    for parent in (tmp_path / "homes", tmp_path / "homes" / "inner"):
        pst = os.stat(parent)
        assert (pst.st_uid, stat.S_IMODE(pst.st_mode)) == (0, 0o711)

    # Idempotent: the existing account comes back untouched.
    os.chmod(home, 0o750)  # noqa: S103 - a change the second call must leave alone
    again = await ensure_os_account(
        account_name, tmp_path / "elsewhere", comment="mlfactory user Test"
    )
    assert again == account
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o750
    assert not (tmp_path / "elsewhere").exists()
    # An account made for someone else is never handed over (a slug clash, or a takeover).
    with pytest.raises(OSError, match="not made for this user"):
        await ensure_os_account(account_name, home, comment="mlfactory user Mallory")


async def test_invalid_account_name_is_refused():
    with pytest.raises(ValueError):
        await ensure_os_account("--help", os.devnull)
    with pytest.raises(ValueError):
        await ensure_os_account("Alice", os.devnull)


async def test_useradd_failure_raises_with_its_message(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "useradd").write_text(
        "#!/bin/sh\necho 'useradd: cannot lock /etc/passwd' >&2\nexit 1\n"
    )
    (fake / "useradd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    name = f"mlf-never-{secrets.token_hex(3)}"
    with pytest.raises(OSError, match=f"useradd {name} failed: useradd: cannot lock /etc/passwd"):
        await ensure_os_account(name, tmp_path / "home")
    assert not (tmp_path / "home").exists()


async def test_useradd_that_hangs_times_out(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "useradd").write_text("#!/bin/sh\nexec sleep 30\n")
    (fake / "useradd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with pytest.raises(TimeoutError, match="did not finish within 0.2s"):
        await ensure_os_account(f"mlf-never-{secrets.token_hex(3)}", tmp_path / "h", timeout=0.2)


def test_home_problem_names_the_blocking_folder():
    # under /tmp (mode 1777), not pytest's tmp_path, whose parents are 0700
    root = Path(tempfile.mkdtemp(prefix="mlf-home-", dir="/tmp"))
    try:
        root.chmod(0o755)
        blocked = root / "private"
        home = blocked / "workspaces" / "alice"
        home.mkdir(parents=True)
        blocked.chmod(0o700)
        nobody = pwd.getpwnam("nobody")
        problem = home_problem(home, nobody)
        assert problem is not None and str(blocked) in problem and "0700" in problem
        blocked.chmod(0o711)
        (blocked / "workspaces").chmod(0o711)
        assert home_problem(home, nobody) is None
    finally:
        shutil.rmtree(root)
