"""An organisation's component sources: local directories and git repositories.

Git repositories are fetched (shallow, one ref) into a cache folder by an async git
subprocess that runs with an argument list, a timeout, no shell, and with hooks, filters,
submodules, symlinks and unlisted transports off. Nothing fetched is run: the catalog only
parses it. A failed fetch keeps the last good checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .catalog import Source

SOURCES_ENV = "MLFACTORY_COMPONENT_SOURCES"
CACHE_ENV = "MLFACTORY_COMPONENT_CACHE"
MANIFEST = "manifest.json"
_META = "mlfactory-source.json"  # in the checkout's .git folder: what it was fetched from

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A branch, tag or commit: no option (leading "-"), no refspec syntax (":", "+", "^", "~", "*").
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])$")
_SCP = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)$")
_SCHEMES = ("https", "ssh", "git", "file")

# Every git command gets these: nothing from the fetched repository (or a config we do not
# control) may run code here.
GIT_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.symlinks=false",  # a link in the repo becomes a small text file, never followed
    "core.protectNTFS=true",
    "core.protectHFS=true",
    "submodule.recurse=false",
    "fetch.recurseSubmodules=false",
    "protocol.allow=never",
    *(f"protocol.{s}.allow=always" for s in _SCHEMES),
    "protocol.ext.allow=never",
    "transfer.fsckObjects=true",
    "advice.detachedHead=false",
    "init.defaultBranch=main",
)


def default_cache_dir() -> Path:
    """``$MLFACTORY_COMPONENT_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``mlfactory/components/sources``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlfactory" / "components" / "sources"


class SourceError(ValueError):
    """A source entry that cannot be used; the message names the key at fault."""


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SourceError(f"name: {name!r} is not a slug (lowercase letters, digits and '-')")
    return name


def check_ref(ref: Any) -> str:
    if not isinstance(ref, str) or not _REF.match(ref):
        raise SourceError(f"ref: {ref!r} is not a branch, tag or commit name")
    return ref


def check_git_url(url: Any) -> str:
    """An https, ssh, git or file URL, an scp-like ``user@host:path`` or an absolute path.

    Refused: options (a leading "-"), remote helpers (``ext::cmd``, ``fd::``), other schemes,
    whitespace and control characters, and hosts or users that start with "-".
    """
    if not isinstance(url, str) or not url:
        raise SourceError("url: a git URL is required")
    if url.startswith("-") or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise SourceError(f"url: {url!r} is not a URL (starts with '-' or holds whitespace)")
    if "::" in url:
        raise SourceError(f"url: {url!r} uses a git remote helper ('::'), which is refused")
    if url.startswith("/"):
        return url
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise SourceError(
                f"url: scheme {parts.scheme!r} is not allowed; use {', '.join(_SCHEMES)} "
                "or an absolute path"
            )
        if parts.scheme != "file" and (
            not parts.hostname
            or parts.hostname.startswith("-")
            or "-" == (parts.username or "")[:1]
        ):
            raise SourceError(f"url: {url!r} has no usable host")
        return url
    m = _SCP.match(url)
    if m and not m["host"].startswith("-") and not (m["user"] or "").startswith("-"):
        if not m["path"].startswith("-"):
            return url
    raise SourceError(
        f"url: {url!r} is not an https://, ssh://, git://, file:// URL, user@host:path "
        "or an absolute path"
    )


@dataclass(frozen=True)
class SourceSpec:
    """One configured source: a git repository (`url`, `ref`) or a local directory (`path`)."""

    name: str
    url: str = ""
    ref: str = "main"
    path: str = ""

    @property
    def kind(self) -> str:
        return "directory" if self.path else "git"

    @classmethod
    def parse(cls, item: Any) -> SourceSpec:
        """From a config or environment entry ``{name, url, ref}`` or ``{name, path}``."""
        if not isinstance(item, Mapping):
            raise SourceError("expected an object {name, url, ref} or {name, path}")
        unknown = set(item) - {"name", "url", "ref", "path"}
        if unknown:
            raise SourceError(f"{sorted(unknown)[0]}: unknown key")
        name = check_name(item.get("name"))
        path, url = item.get("path") or "", item.get("url") or ""
        if bool(path) == bool(url):
            raise SourceError(f"{name}: give either url (git) or path (a directory), not both")
        if path:
            if not isinstance(path, str) or not Path(path).expanduser().is_absolute():
                raise SourceError(f"path: {path!r} is not an absolute path")
            return cls(name, path=str(Path(path).expanduser()))
        return cls(name, url=check_git_url(url), ref=check_ref(item.get("ref") or "main"))

    def to_json(self) -> dict[str, str]:
        if self.path:
            return {"name": self.name, "path": self.path}
        return {"name": self.name, "url": self.url, "ref": self.ref}


def parse_sources(items: Any) -> tuple[list[SourceSpec], list[str]]:
    """Usable sources in order, and one message per entry that is not (named by position)."""
    if not isinstance(items, list):
        return [], ["expected a JSON list of sources"]
    specs: list[SourceSpec] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            spec = SourceSpec.parse(item)
        except SourceError as e:
            problems.append(f"sources[{i}]: {e}")
            continue
        if any(s.name == spec.name for s in specs):
            problems.append(f"sources[{i}]: name {spec.name!r} is used twice; kept the first")
            continue
        specs.append(spec)
    return specs, problems


def sources_from_env(
    environ: Mapping[str, str] | None = None,
) -> tuple[list[SourceSpec], list[str]]:
    raw = (os.environ if environ is None else environ).get(SOURCES_ENV, "").strip()
    if not raw:
        return [], []
    try:
        data = json.loads(raw)
    except ValueError as e:
        return [], [f"{SOURCES_ENV} is not valid JSON ({e})"]
    return parse_sources(data)


# -- fetching -------------------------------------------------------------------------------


class FetchError(RuntimeError):
    """A git fetch that failed; the message is safe to show (no server paths)."""


@dataclass(frozen=True)
class Checkout:
    """What a git source's checkout was fetched from, stored next to it."""

    url: str
    ref: str
    commit: str
    fetched_at: str  # ISO 8601, UTC


def checkout_dir(cache_dir: Path, spec: SourceSpec) -> Path:
    return cache_dir / spec.name


def read_checkout(cache_dir: Path, spec: SourceSpec) -> Checkout | None:
    """The last good checkout of `spec`, if it was fetched from the same url and ref."""
    try:
        meta = json.loads((checkout_dir(cache_dir, spec) / ".git" / _META).read_text("utf-8"))
        found = Checkout(meta["url"], meta["ref"], meta["commit"], meta["fetched_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return found if (found.url, found.ref) == (spec.url, spec.ref) else None


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key in list(env):
        # a variable the server was started with must not point git at other config or code
        if key.startswith("GIT_") and key not in ("GIT_SSH_COMMAND", "GIT_SSH"):
            del env[key]
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",  # the user's ~/.gitconfig may set filters or hooks
        GIT_TERMINAL_PROMPT="0",  # fail rather than wait for a password
        GIT_PROTOCOL_FROM_USER="0",
        GIT_ALLOW_PROTOCOL=":".join(_SCHEMES),
        LC_ALL="C",
    )
    return env


async def run_git(
    git: str | Iterable[str], args: list[str], *, cwd: Path | None, timeout_s: float
) -> str:
    """Run ``git -c ... <args>`` and return its stdout; kill its process group on timeout."""
    head = [git] if isinstance(git, str) else list(git)
    cmd = [*head, *(x for c in GIT_CONFIG for x in ("-c", c)), *args]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        env=git_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # no terminal to prompt on; one group to kill (ssh, helpers)
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        # bounded: a reaped or unkillable child must not hang a cancellation
        with contextlib.suppress(ProcessLookupError, TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
        raise
    if proc.returncode != 0:
        text = err.decode("utf-8", "replace").strip().splitlines()
        detail = next((line for line in reversed(text) if line.strip()), "")
        raise FetchError(f"git {args[0]} failed ({proc.returncode}): {detail[:300]}")
    return out.decode("utf-8", "replace")


async def fetch_git(
    spec: SourceSpec,
    cache_dir: Path,
    *,
    git: str | Iterable[str] = "git",
    timeout_s: float = 60.0,
    now: Callable[[], dt.datetime] | None = None,
) -> Checkout:
    """Fetch `spec.ref` of `spec.url` (depth 1) and check it out in the cache folder.

    `timeout_s` bounds the whole fetch and checkout, in seconds. On any failure the previous
    checkout is left as it was (the fetch only adds objects; the work tree is updated only
    after it succeeded) and FetchError says why.
    """
    check_git_url(spec.url)
    check_ref(spec.ref)
    folder = checkout_dir(cache_dir, spec)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s

    async def git_run(*args: str) -> str:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError
        return await run_git(git, list(args), cwd=folder, timeout_s=left)

    try:
        if not (folder / ".git").is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            await git_run("init", "--quiet", "--template=", ".")
        await git_run(
            "fetch",
            "--quiet",
            "--depth=1",
            "--no-tags",
            "--no-recurse-submodules",
            "--no-write-fetch-head",
            "--force",
            "--",
            spec.url,
            f"+{spec.ref}:refs/mlfactory/fetched",
        )
        # only now does the work tree change: a failed fetch leaves the last good checkout
        await git_run("checkout", "--quiet", "--force", "--detach", "refs/mlfactory/fetched")
        await git_run("clean", "-ffdxq")
        commit = (await git_run("rev-parse", "--verify", "HEAD^{commit}")).strip()
    except TimeoutError:
        raise FetchError(f"git fetch timed out after {timeout_s:g} s") from None
    except OSError as e:
        raise FetchError(f"git could not be run ({e.strerror})") from None
    stamp = (now or (lambda: dt.datetime.now(dt.UTC)))().isoformat(timespec="seconds")
    got = Checkout(spec.url, spec.ref, commit, stamp)
    meta = folder / ".git" / _META
    meta.write_text(json.dumps(got.__dict__), encoding="utf-8")
    return got


def catalog_source(spec: SourceSpec, cache_dir: Path) -> Source | None:
    """What the catalog scans for `spec`: the directory, or the last good git checkout."""
    if spec.path:
        return Source(spec.name, Path(spec.path), "directory")
    if read_checkout(cache_dir, spec) is None:
        return None
    return Source(spec.name, checkout_dir(cache_dir, spec), "git")


# -- the manifest kernels read --------------------------------------------------------------


def write_manifest(cache_dir: Path, sources: Iterable[Source]) -> None:
    """Record the sources the server's catalog uses (after the built-ins), for `use()` in
    kernels; written to a temporary file then renamed, so a reader never sees half of it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    body = {"sources": [{"name": s.name, "root": str(s.root), "kind": s.kind} for s in sources]}
    tmp = cache_dir / f".{MANIFEST}.{os.getpid()}"
    tmp.write_text(json.dumps(body, indent=1), encoding="utf-8")
    os.replace(tmp, cache_dir / MANIFEST)


def read_manifest(cache_dir: Path) -> list[Source] | None:
    try:
        body = json.loads((cache_dir / MANIFEST).read_text("utf-8"))
        return [Source(s["name"], Path(s["root"]), s["kind"]) for s in body["sources"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
