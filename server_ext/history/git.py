"""The git runner (async subprocess, argument list, timeout, a controlled environment) and
the repository operations the history is made of.

Every command runs with the system and the user's global git config switched off, hooks
off (``core.hooksPath=/dev/null``), no credential helper but ours, ``ext::`` refused and
no terminal prompts; paths always follow ``--``. Values from requests reach git only
after ``paths`` accepted them, and never in an option's place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .paths import inside
from .wording import display_name

log = logging.getLogger(__name__)

AUTOMATIC_TRAILER = "MLFactory-Automatic: true"
REMOTE = "origin"
INDEX_LOCK_RETRIES = 5

GITIGNORE = """\
# written by mlfactory's notebook history; edit freely
.ipynb_checkpoints/
__pycache__/
*.py[cod]
.venv/
venv/
.env
.mlfactory/
.Trash-*/
*.parquet
*.h5
*.hdf5
*.pkl
*.pt
*.ckpt
*.onnx
data/raw/
"""
# The workspace is also the home folder: its settings, caches and secrets (the history's
# own remote credentials live in .local/) stay out of every commit. In .git/info/exclude,
# which is never shared, so a project's own .gitignore cannot let them in.
HOME_EXCLUDES = (
    ".local/", ".cache/", ".config/", ".ipython/", ".jupyter/", ".ssh/", ".npm/",
    ".*_history", ".gitconfig", ".bashrc", ".profile",
    # jupyter-collaboration's document updates, where a server not configured by mlfactory
    # (server_ext/collaboration.py moves them to .local/) keeps them: its working directory
    ".jupyter_ystore.db*",
)  # fmt: skip
ATTRIBUTES_LINES = (
    "*.ipynb diff=jupyternotebook merge=jupyternotebook",
    # line lists: both sides' lines are kept, so pulling a project into a fresh workspace
    # does not conflict on the two files every history starts with
    ".gitignore merge=union",
    ".gitattributes merge=union",
)

_FIELD = "\x1f"
_RECORD = "\x1e"


class GitError(RuntimeError):
    """git exited non-zero; ``stderr`` holds its words (no credentials ever reach git's
    argument list, so they cannot be echoed here)."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.git_args = list(args)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"git {args[0] if args else ''} failed ({returncode}): {self.stderr}")


class GitTimeout(GitError):
    pass


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def _tool(name: str) -> str:
    """A console script of this Python environment (nbdime's drivers), else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def driver_config() -> dict[str, str]:
    """nbdime as git's diff and merge driver for notebooks (nbdime.vcs.git's settings,
    with absolute paths to this environment's scripts)."""
    return {
        "diff.jupyternotebook.command": f"{shlex.quote(_tool('git-nbdiffdriver'))} diff",
        "merge.jupyternotebook.driver": (
            f"{shlex.quote(_tool('git-nbmergedriver'))} merge %O %A %B %L %P"
        ),
        "merge.jupyternotebook.name": "jupyter notebook merge driver",
    }


class GitRunner:
    """Runs git for one workspace. ``sleep`` is injected so tests need not wait."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        git: str = "git",
        timeout: float = 30.0,
        allow_local_remotes: bool = False,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.root = str(root)
        self.git = git
        self.timeout = timeout
        self.allow_local_remotes = allow_local_remotes
        self.sleep = sleep

    def base_args(self) -> list[str]:
        protocol = "always" if self.allow_local_remotes else "never"
        return [
            self.git,
            "-c", "core.hooksPath=/dev/null",
            # a pulled link (say notes.py -> .git/config) must not let a save write through it
            "-c", "core.symlinks=false",
            "-c", "core.fsmonitor=false",
            "-c", "credential.helper=",
            "-c", "protocol.ext.allow=never",
            "-c", f"protocol.file.allow={protocol}",
            "-c", "commit.gpgsign=false",
            "-c", "core.quotepath=false",
        ]  # fmt: skip

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_TERMINAL_PROMPT="0",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_ATTR_NOSYSTEM="1",
            GIT_ASKPASS="/bin/false",
            SSH_ASKPASS="/bin/false",
            GIT_SSH_COMMAND="ssh -o BatchMode=yes",
            GIT_OPTIONAL_LOCKS="0",
            LC_ALL="C",
        )
        env.update(extra or {})
        return env

    async def run(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        limit_s: float | None = None,
        config: Mapping[str, str] | None = None,
    ) -> Result:
        """``git <args>`` in the workspace; retried while another git holds index.lock."""
        command = self.base_args()
        for key, value in (config or {}).items():
            command += ["-c", f"{key}={value}"]
        command += list(args)
        for attempt in range(INDEX_LOCK_RETRIES + 1):
            result = await self._once(command, env, limit_s or self.timeout)
            if result.returncode != 0 and "index.lock" in result.stderr:
                if attempt < INDEX_LOCK_RETRIES:
                    await self.sleep(0.1 * 2**attempt)
                    continue
            break
        if check and result.returncode != 0:
            raise GitError(args, result.returncode, result.stderr)
        return result

    async def _once(
        self, command: list[str], env: Mapping[str, str] | None, limit_s: float
    ) -> Result:
        log.debug("git %s", " ".join(shlex.quote(a) for a in command[1:]))
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=self.root,
            env=self.environment(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), limit_s)
        except (TimeoutError, asyncio.CancelledError) as e:
            _kill_group(proc)
            await proc.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            raise GitTimeout(command[1:], -9, f"git took longer than {limit_s:g} s") from None
        return Result(proc.returncode or 0, stdout, stderr.decode("utf-8", "replace"))


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    # git runs helpers (ssh, merge drivers): end its whole session
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


@dataclass(frozen=True)
class Version:
    id: str
    short: str
    time: str
    author: str
    email: str
    message: str
    automatic: bool
    path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short": self.short,
            "time": self.time,
            "author": self.author,
            # what the panel shows; author and email stay for its details view
            "name": display_name(self.author, self.email),
            "email": self.email,
            "message": self.message,
            "automatic": self.automatic,
        }


def split_trailer(body: str) -> tuple[str, bool]:
    """The message without our automatic-version trailer, and whether it had one."""
    lines = body.rstrip("\n").split("\n")
    automatic = bool(lines) and lines[-1].strip() == AUTOMATIC_TRAILER
    if automatic:
        lines = lines[:-1]
    return "\n".join(lines).strip(), automatic


def parse_log(output: str) -> list[Version]:
    """Versions from ``git log --name-only --format=<LOG_FORMAT>`` output (pure)."""
    versions: list[Version] = []
    for record in output.split(_RECORD):
        if not record.strip("\n"):
            continue
        header, _, names = record.partition(_FIELD + "END" + _FIELD)
        sha, short, epoch, author, email, body = header.lstrip("\n").split(_FIELD, 5)
        message, automatic = split_trailer(body)
        path = next((n for n in names.split("\n") if n.strip()), "")
        when = datetime.fromtimestamp(int(epoch), UTC).isoformat().replace("+00:00", "Z")
        versions.append(Version(sha, short, when, author, email, message, automatic, path))
    return versions


LOG_FORMAT = _RECORD + _FIELD.join(["%H", "%h", "%at", "%an", "%ae", "%B", "END", ""])


class Repository:
    """The workspace's git repository, seen through a ``GitRunner``."""

    def __init__(self, runner: GitRunner) -> None:
        self.git = runner
        self.root = Path(runner.root)

    @property
    def exists(self) -> bool:
        return (self.root / ".git").exists()

    async def init(self, branch: str = "main") -> bool:
        """Create the repository with our .gitignore, .gitattributes and nbdime drivers;
        True when it was created now. Existing files are extended, never replaced."""
        created = not self.exists
        if created:
            await self.git.run(
                "init", "-q", f"--initial-branch={branch}", "--", self.root.as_posix()
            )
        for key, value in driver_config().items():
            await self.git.run("config", "--local", key, value)
        # refuses (paths.Refused) when either file is a symlink leading out of the workspace
        ignore = inside(self.root, ".gitignore")
        inside(self.root, ".gitattributes")
        if not ignore.exists():
            ignore.write_text(GITIGNORE, encoding="utf-8")
        _append_missing(self.root / ".gitattributes", ATTRIBUTES_LINES)
        _append_missing(self.root / ".git" / "info" / "exclude", HOME_EXCLUDES)
        return created

    async def head(self) -> str | None:
        result = await self.git.run("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        return result.text.strip() or None if result.returncode == 0 else None

    async def branch(self) -> str | None:
        result = await self.git.run("symbolic-ref", "-q", "--short", "HEAD", check=False)
        return result.text.strip() or None

    async def resolve(self, version: str) -> str:
        """The full id of a commit named by a (validated, hex) id; GitError if unknown."""
        result = await self.git.run(
            "rev-parse", "--verify", "-q", "--end-of-options", f"{version}^{{commit}}"
        )
        return result.text.strip()

    async def versions(self, path: str, limit: int = 100) -> list[Version]:
        if await self.head() is None:
            return []
        result = await self.git.run(
            "log", "--follow", "--name-only", f"--max-count={limit}",
            f"--format={LOG_FORMAT}", "HEAD", "--", path,
        )  # fmt: skip
        return parse_log(result.text)

    async def show(self, version: str, path: str) -> bytes:
        """The file ``path`` had in ``version`` (its path then, as ``versions`` reports)."""
        result = await self.git.run("cat-file", "blob", f"{version}:{path}")
        return result.stdout

    async def dirty(self, *paths: str) -> bool:
        result = await self.git.run("status", "--porcelain=v1", "-z", "--", *paths)
        return bool(result.stdout.strip(b"\0"))

    async def commit(
        self,
        paths: Sequence[str],
        message: str,
        author: tuple[str, str],
        automatic: bool,
        pinned: Mapping[str, bytes] | None = None,
    ) -> str | None:
        """Commit exactly ``paths`` (other staged work stays staged); None if unchanged.

        ``pinned`` gives some paths' contents as already read and checked: those bytes are
        committed, not whatever the file holds when git reads it. jupyter_server saves in
        place (truncate, then write), so a version taken during a save would otherwise
        hold an empty or half-written notebook. The commit is built in a private index,
        from HEAD plus these paths, so nothing re-reads the working tree afterwards.
        """
        pinned = pinned or {}
        tracked = await self.git.run("ls-files", "-z", "--", *paths)
        known = {p for p in tracked.text.split("\0") if p}
        present = [p for p in paths if p in pinned or (self.root / p).exists() or p in known]
        if not present:
            return None
        head = await self.head()
        private = self.root / ".git" / f"mlfactory-index-{os.getpid()}-{id(self):x}"
        env = {"GIT_INDEX_FILE": str(private)}
        try:
            await self.git.run("read-tree", head or "--empty", env=env)
            unpinned = [p for p in present if p not in pinned]
            if unpinned:
                await self.git.run("add", "-A", "--", *unpinned, env=env)
            for path in present:
                if path in pinned:
                    blob = await self._blob(path, pinned[path])
                    entry = f"{_mode(self.root / path)},{blob},{path}"
                    await self.git.run("update-index", "--add", "--cacheinfo", entry, env=env)
            if head is not None:
                staged = await self.git.run(
                    "diff", "--cached", "--quiet", "--no-ext-diff", head, "--", *present,
                    check=False, env=env,
                )  # fmt: skip
                if staged.returncode == 0:
                    return None
            body = message + (f"\n\n{AUTOMATIC_TRAILER}" if automatic else "")
            name, email = author
            # one "--message=..." argument: git cannot read any part of it as an option
            await self.git.run(
                "commit", "-q", "--no-verify", "--cleanup=verbatim", f"--message={body}",
                env=env, config={"user.name": name, "user.email": email},
            )  # fmt: skip
        finally:
            private.unlink(missing_ok=True)
        # the shared index follows the new commit for these paths, as `git commit -- paths`
        await self.git.run("reset", "-q", "HEAD", "--", *present)
        return await self.head()

    async def _blob(self, path: str, content: bytes) -> str:
        """Store ``content`` as the blob of ``path`` (its attributes' filters apply)."""
        scratch = self.root / ".git" / f"mlfactory-blob-{os.getpid()}-{id(content):x}"
        try:
            await asyncio.to_thread(scratch.write_bytes, content)
            result = await self.git.run("hash-object", "-w", f"--path={path}", "--", str(scratch))
        finally:
            scratch.unlink(missing_ok=True)
        return result.text.strip()

    # --- remotes -------------------------------------------------------------------

    async def remote_url(self) -> str | None:
        key = f"remote.{REMOTE}.url"
        result = await self.git.run("config", "--local", "--get", key, check=False)
        return result.text.strip() or None

    async def set_remote(self, url: str) -> None:
        if await self.remote_url() is None:
            await self.git.run("remote", "add", "--", REMOTE, url)
        else:
            await self.git.run("remote", "set-url", "--", REMOTE, url)

    async def changed_between(self, a: str, b: str) -> set[str]:
        result = await self.git.run("diff", "--name-only", "-z", "--no-renames", a, b, "--")
        return {p for p in result.text.split("\0") if p}

    async def files_at(self, commit: str) -> set[str]:
        result = await self.git.run("ls-tree", "-r", "--name-only", "-z", commit, "--")
        return {p for p in result.text.split("\0") if p}

    async def conflicted(self) -> list[str]:
        result = await self.git.run("diff", "--name-only", "-z", "--diff-filter=U", "--")
        return sorted(p for p in result.text.split("\0") if p)


def _mode(path: Path) -> str:
    """The git file mode of a regular working file (a missing one counts as plain)."""
    try:
        return "100755" if path.stat().st_mode & 0o111 else "100644"
    except OSError:
        return "100644"


def _append_missing(path: Path, lines: Sequence[str]) -> None:
    """Add the ``lines`` a text file lacks at its end (creating it), keeping the rest."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = [line for line in lines if line not in text.splitlines()]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        sep = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + sep + "".join(f"{line}\n" for line in missing), encoding="utf-8")
