"""Component sources: real git fetches from local bare repositories (file://), the last good
checkout kept on failure, nothing from a repository or a foreign config run, timeouts
that kill git, and URLs, refs and entries that are refused before git runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import subprocess
from pathlib import Path

import pytest
from mlfactory.components.catalog import Catalog, scan
from mlfactory.components.sources import (
    MANIFEST,
    Checkout,
    FetchError,
    SourceError,
    SourceSpec,
    catalog_source,
    check_git_url,
    check_ref,
    fetch_git,
    parse_sources,
    read_checkout,
    read_manifest,
    sources_from_env,
    write_manifest,
)

from .test_catalog import make

NOON = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def clock() -> dt.datetime:
    return NOON


@pytest.fixture
def git_env(tmp_path, monkeypatch) -> dict[str, str]:
    """A HOME of its own, so a test's planted ~/.gitconfig is the one git would read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        monkeypatch.delenv(key)
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return env


def git(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


class Remote:
    """A working repository and the bare repository it pushes to (the source's URL)."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.env = env
        self.work = tmp_path / "work"
        self.bare = tmp_path / "remote.git"
        self.work.mkdir()
        git(env, self.work, "init", "-q", "-b", "main")
        git(env, tmp_path, "init", "-q", "--bare", "-b", "main", str(self.bare))

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def push(self, message: str = "change") -> str:
        git(self.env, self.work, "add", "-A")
        git(self.env, self.work, "commit", "-q", "-m", message)
        git(self.env, self.work, "push", "-q", str(self.bare), "HEAD:main")
        return git(self.env, self.work, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path, git_env) -> Remote:
    r = Remote(tmp_path, git_env)
    make(r.work, "clean_rows", "1.0.0", summary="Drop broken rows.")
    r.push("first")
    return r


async def test_fetch_checks_out_the_ref_and_the_catalog_reads_it(remote, tmp_path):
    cache = tmp_path / "cache"
    spec = SourceSpec("team", url=remote.url, ref="main")
    got = await fetch_git(spec, cache, now=clock)
    assert got == Checkout(remote.url, "main", git(remote.env, remote.work, "rev-parse", "HEAD"),
                           "2026-11-26T12:00:00+00:00")  # fmt: skip
    assert read_checkout(cache, spec) == got
    source = catalog_source(spec, cache)
    assert source is not None and source.kind == "git" and source.root == cache / "team"
    cat = Catalog.from_sources([source])
    assert [c.ref for c in cat] == ["clean_rows@1.0.0"]
    # a shallow fetch of one ref: no other history, no tags
    assert git(remote.env, cache / "team", "rev-list", "--count", "HEAD") == "1"
    assert git(remote.env, cache / "team", "tag") == ""


async def test_a_new_commit_replaces_the_checkout(remote, tmp_path):
    cache = tmp_path / "cache"
    spec = SourceSpec("team", url=remote.url)
    await fetch_git(spec, cache, now=clock)
    make(remote.work, "clean_rows", "1.1.0")
    (remote.work / "clean_rows" / "1.0.0" / "README.md").unlink()  # now invalid
    head = remote.push("second")
    got = await fetch_git(spec, cache, now=clock)
    assert got.commit == head
    found, errors = scan(catalog_source(spec, cache))
    assert [c.ref for c in found] == ["clean_rows@1.1.0"]
    assert [e.key for e in errors] == ["doc"]


async def test_a_failed_fetch_keeps_the_last_good_checkout(remote, tmp_path):
    cache = tmp_path / "cache"
    spec = SourceSpec("team", url=remote.url)
    good = await fetch_git(spec, cache, now=clock)
    remote.bare.rename(tmp_path / "gone.git")
    with pytest.raises(FetchError, match="git fetch failed"):
        await fetch_git(spec, cache, now=clock)
    assert read_checkout(cache, spec) == good
    assert [c.ref for c in scan(catalog_source(spec, cache))[0]] == ["clean_rows@1.0.0"]


async def test_a_missing_ref_fails_and_leaves_nothing_to_scan(remote, tmp_path):
    spec = SourceSpec("team", url=remote.url, ref="no-such-branch")
    with pytest.raises(FetchError, match="couldn't find remote ref|no-such-branch"):
        await fetch_git(spec, tmp_path / "cache", now=clock)
    assert catalog_source(spec, tmp_path / "cache") is None


async def test_a_checkout_of_another_url_or_ref_is_not_used(remote, tmp_path):
    cache = tmp_path / "cache"
    await fetch_git(SourceSpec("team", url=remote.url), cache, now=clock)
    assert catalog_source(SourceSpec("team", url=remote.url, ref="v2"), cache) is None
    assert catalog_source(SourceSpec("team", url=f"{remote.url}/other"), cache) is None


def _trap(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho ran >> {marker}\ncat\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


async def test_nothing_from_the_repository_or_a_foreign_config_runs(remote, tmp_path, git_env):
    """Hooks (in the remote, in ~/.gitconfig's hooksPath and template), a smudge filter the
    repository asks for, a submodule and a symlink: armed, checked by a plain clone, and
    none of them acts during a source fetch."""
    marker = tmp_path / "ran"
    sub = Remote(tmp_path / "sub", git_env) if (tmp_path / "sub").mkdir() is None else None
    (sub.work / "secret.txt").write_text("from a submodule\n")
    sub_head = sub.push()
    (remote.work / ".gitattributes").write_text("*.py filter=evil\n")
    (remote.work / ".gitmodules").write_text(
        f'[submodule "vendored"]\n\tpath = vendored\n\turl = {sub.url}\n'
    )
    git(git_env, remote.work, "update-index", "--add", "--cacheinfo",
        f"160000,{sub_head},vendored")  # fmt: skip
    os.symlink("/etc/passwd", remote.work / "clean_rows" / "1.0.0" / "NOTES.md")
    remote.push("traps")
    hooks = tmp_path / "evil-hooks"
    for name in ("post-checkout", "post-merge", "reference-transaction", "fsmonitor"):
        _trap(hooks / name, marker)
        _trap(remote.bare / "hooks" / name, marker)  # planted in the remote itself
        _trap(tmp_path / "template" / "hooks" / name, marker)
    smudge = _trap(tmp_path / "smudge.sh", marker)
    (Path(git_env["HOME"]) / ".gitconfig").write_text(
        f"[core]\n\thooksPath = {hooks}\n"
        f"[init]\n\ttemplateDir = {tmp_path / 'template'}\n"
        f'[filter "evil"]\n\tsmudge = {smudge}\n\trequired = true\n'
        "[submodule]\n\trecurse = true\n"
        "[protocol]\n\tallow = always\n"
    )

    # armed: a plain clone with this user's config runs the hooks and the filter
    git(git_env, tmp_path, "clone", "-q", remote.url, str(tmp_path / "control"))
    assert marker.read_text().count("ran") >= 2
    marker.unlink()

    cache = tmp_path / "cache"
    await fetch_git(SourceSpec("team", url=remote.url), cache, now=clock)
    await fetch_git(SourceSpec("team", url=remote.url), cache, now=clock)  # and an update
    assert not marker.exists()
    checkout = cache / "team"
    vendored = checkout / "vendored"
    assert not vendored.exists() or list(vendored.iterdir()) == []  # no submodule fetched
    assert not (checkout / ".git" / "hooks").exists()  # no template copied in
    notes = checkout / "clean_rows" / "1.0.0" / "NOTES.md"
    assert not notes.is_symlink() and notes.read_text() == "/etc/passwd"
    py = (checkout / "clean_rows" / "1.0.0" / "clean_rows.py").read_text()
    assert py.startswith("VERSION")  # no filter touched it


async def test_a_hanging_server_is_cut_off_at_the_timeout(tmp_path):
    """A git:// server that accepts and never answers: git is killed when time is up."""
    connected = asyncio.Event()
    closed = asyncio.Event()

    async def hang(reader, writer):
        connected.set()
        await reader.read()  # returns when git's end of the connection goes away
        closed.set()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        spec = SourceSpec("slow", url=f"git://127.0.0.1:{port}/components.git")
        with pytest.raises(FetchError, match=r"timed out after 0.5 s"):
            await fetch_git(spec, tmp_path / "cache", timeout_s=0.5, now=clock)
        assert connected.is_set()
        await asyncio.wait_for(closed.wait(), 5)  # the killed git hung up
    finally:
        server.close()
        await server.wait_closed()


async def test_the_timeout_kills_the_whole_process_group(tmp_path):
    """A stand-in git that starts a child and waits: both are gone after the timeout."""
    pid_file = tmp_path / "child.pid"
    fake = tmp_path / "slow-git"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *" init "*) exit 0;; esac\n'
        f"sleep 300 & echo $! > {pid_file}\nwait\n"
    )
    fake.chmod(0o755)
    spec = SourceSpec("slow", url="https://git.example.com/components.git")
    with pytest.raises(FetchError, match="timed out"):
        await fetch_git(spec, tmp_path / "cache", git=str(fake), timeout_s=0.5, now=clock)
    assert _gone(int(pid_file.read_text()))


def _gone(pid: int) -> bool:
    """Dead, or a zombie waiting for a reaper (a container's init may never reap it)."""
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "State:\tZ" in status.read_text()


async def test_a_git_that_cannot_start_is_reported(tmp_path):
    spec = SourceSpec("team", url="https://git.example.com/c.git")
    with pytest.raises(FetchError, match="git could not be run"):
        await fetch_git(spec, tmp_path / "cache", git=str(tmp_path / "no-git"), now=clock)


BAD_URLS = [
    "-uhttps://example.com/x.git",
    "--upload-pack=touch /tmp/pwned",
    "ext::sh -c touch% /tmp/pwned",
    "fd::17",
    "file::/tmp/x",
    "http://example.com/x.git",
    "ftp://example.com/x.git",
    "ssh://-oProxyCommand=touch%20pwned/x",
    "ssh://-user@host/x",
    "-host:path",
    "git@-host:path",
    "host:-path",
    "relative/path",
    "https://example.com/x .git",
    "https://example.com/x\n.git",
    "",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls_are_refused(url):
    with pytest.raises(SourceError, match="^url: "):
        check_git_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/ml/components.git",
        "ssh://git@git.example.com:2222/ml/components.git",
        "git://git.example.com/components.git",
        "file:///srv/git/components.git",
        "/srv/git/components.git",
        "git@git.example.com:ml/components.git",
    ],
)
def test_good_urls_pass(url):
    assert check_git_url(url) == url


@pytest.mark.parametrize(
    "ref", ["-x", "--upload-pack=x", "a..b", "main:refs/heads/x", "+main", "@{-1}", "v1^", "*",
            "main/", "with space", ""],
)  # fmt: skip
def test_bad_refs_are_refused(ref):
    with pytest.raises(SourceError, match="^ref: "):
        check_ref(ref)


async def test_fetch_refuses_before_git_runs(tmp_path):
    marker = tmp_path / "ran"
    fake = _trap(tmp_path / "git", marker)
    for spec in (SourceSpec("a", url="ext::sh -c id"), SourceSpec("a", url="/x", ref="-x")):
        with pytest.raises(SourceError):
            await fetch_git(spec, tmp_path / "cache", git=str(fake), now=clock)
    assert not marker.exists()


def test_entries_are_checked_one_by_one():
    specs, problems = parse_sources(
        [
            {"name": "team", "url": "https://git.example.com/c.git", "ref": "v2"},
            {"name": "local", "path": "/srv/components"},
            {"name": "team", "path": "/srv/other"},
            {"name": "Bad Name", "url": "https://x.example.com/c.git"},
            {"name": "both", "url": "https://x.example.com/c.git", "path": "/srv/x"},
            {"name": "rel", "path": "components"},
            {"name": "evil", "url": "ext::sh"},
            {"name": "extra", "url": "https://x.example.com/c.git", "branch": "main"},
            "just text",
        ]
    )
    assert specs == [
        SourceSpec("team", url="https://git.example.com/c.git", ref="v2"),
        SourceSpec("local", path="/srv/components"),
    ]
    assert [p.split(": ", 1)[0] for p in problems] == [f"sources[{i}]" for i in range(2, 9)]
    assert "used twice" in problems[0] and "not a slug" in problems[1]
    assert "either url" in problems[2] and "absolute" in problems[3]
    assert "remote helper" in problems[4] and "branch: unknown key" in problems[5]


def test_sources_from_the_environment():
    assert sources_from_env({}) == ([], [])
    assert sources_from_env({"MLFACTORY_COMPONENT_SOURCES": "[{"})[1][0].startswith(
        "MLFACTORY_COMPONENT_SOURCES is not valid JSON"
    )
    specs, problems = sources_from_env(
        {"MLFACTORY_COMPONENT_SOURCES": '[{"name": "d", "path": "/srv/d"}]'}
    )
    assert specs == [SourceSpec("d", path="/srv/d")] and problems == []
    assert specs[0].kind == "directory" and specs[0].to_json() == {"name": "d", "path": "/srv/d"}


def test_a_directory_source_is_scanned_in_place(tmp_path):
    make(tmp_path / "dir", "tidy")
    source = catalog_source(SourceSpec("d", path=str(tmp_path / "dir")), tmp_path / "cache")
    assert source is not None and source.kind == "directory"
    assert [c.ref for c in Catalog.from_sources([source])] == ["tidy@1.0.0"]


def test_manifest_round_trip(tmp_path):
    from mlfactory.components.catalog import Source

    sources = [Source("team", tmp_path / "a", "git"), Source("published", tmp_path / "p", "x")]
    write_manifest(tmp_path / "cache", sources)
    assert read_manifest(tmp_path / "cache") == sources
    (tmp_path / "cache" / MANIFEST).write_text("{")
    assert read_manifest(tmp_path / "cache") is None
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [MANIFEST]  # no temp file left
