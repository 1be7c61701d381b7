"""The git runner: argument lists, a controlled environment, timeouts, index.lock retries;
and the pure parsing of git log."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from mlfactory.server.history.git import (
    AUTOMATIC_TRAILER,
    GitError,
    GitRunner,
    GitTimeout,
    parse_log,
    split_trailer,
)

from .conftest import git


async def test_environment_is_controlled(root, monkeypatch):
    monkeypatch.setenv("GIT_DIR", "/somewhere/else")
    monkeypatch.setenv("GIT_EXEC_PATH", "/evil")
    runner = GitRunner(root)
    env = runner.environment()
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert "GIT_DIR" not in env and "GIT_EXEC_PATH" not in env
    args = runner.base_args()
    assert "core.hooksPath=/dev/null" in args and "protocol.ext.allow=never" in args
    assert "protocol.file.allow=never" in args and "credential.helper=" in args
    result = await runner.run("--version")
    assert result.text.startswith("git version")


async def test_failure_raises_with_git_words(root):
    with pytest.raises(GitError) as e:
        await GitRunner(root).run("rev-parse", "--verify", "nope")
    assert e.value.returncode != 0


async def test_timeout_kills_git_and_what_it_started(tmp_path, root):
    pidfile = tmp_path / "pid"
    fake = tmp_path / "slow-git"
    fake.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    fake.chmod(0o755)
    runner = GitRunner(root, git=str(fake), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(GitTimeout):
        await runner.run("status")
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    for _ in range(100):  # the OS delivers SIGKILL promptly; allow it up to a second
        if _gone(child):
            break
        await asyncio.sleep(0.01)
    assert _gone(child), "git's child outlived the timeout"


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


async def test_index_lock_is_retried(root):
    git(root, "init", "-q")
    (root / "f").write_text("x")
    lock = root / ".git" / "index.lock"
    lock.write_text("")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            lock.unlink()  # the other git (jupyterlab-git) finished

    runner = GitRunner(root, sleep=sleep)
    await runner.run("add", "--", "f")
    assert len(waits) == 2 and waits[1] > waits[0]
    assert "f" in git(root, "ls-files")


async def test_index_lock_gives_up(root):
    git(root, "init", "-q")
    (root / "f").write_text("x")
    (root / ".git" / "index.lock").write_text("")

    async def sleep(seconds: float) -> None:
        return None

    with pytest.raises(GitError):
        await GitRunner(root, sleep=sleep).run("add", "--", "f")


def test_parse_log_and_trailer():
    body = f"Automatic version\n\n{AUTOMATIC_TRAILER}\n"
    assert split_trailer(body) == ("Automatic version", True)
    assert split_trailer("title\n\nbody\n") == ("title\n\nbody", False)
    record = (
        "\x1e"
        + "\x1f".join(["a" * 40, "aaaaaaa", "0", "Ada", "ada@x", "msg\n", "END", ""])
        + "\n\nsub/a.ipynb\n"
    )
    (v,) = parse_log(record)
    assert (v.id, v.time, v.path, v.message) == (
        "a" * 40,
        "1970-01-01T00:00:00Z",
        "sub/a.ipynb",
        "msg",
    )


def test_no_shell_anywhere():
    source = (Path(__file__).parents[2] / "server_ext/history/git.py").read_text()
    assert "shell=True" not in source and "create_subprocess_shell" not in source
