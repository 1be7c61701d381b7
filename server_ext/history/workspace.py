"""One workspace's notebook history: versions, diffs, restores, automatic versions,
settings and the remote. Handlers call these methods; tests call them on a real git
repository in a temporary folder.

User-caused refusals raise ``HistoryError(status, message, **extra)``; mutating git work
is serialised by one asyncio lock per workspace (never a lock file of our own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from .. import contents
from . import diffing, pairing, paths, wording
from .credentials import CredentialStore
from .git import REMOTE, GitError, GitRunner, GitTimeout, Repository, Version

log = logging.getLogger(__name__)

SETTINGS_FILE = ".mlfactory/history.json"
MAX_AUTOSAVE_MINUTES = 24 * 60
# jupyter_server saves a notebook in place, so a read during a save can see a cut-off
# file: read again until it parses, for up to SETTLE_TRIES x SETTLE_PAUSE_S
SETTLE_TRIES = 20
SETTLE_PAUSE_S = 0.1


class HistoryError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class NothingChanged(HistoryError):
    def __init__(self, message: str) -> None:
        super().__init__(409, message)


@dataclass
class Settings:
    pairing: str
    autosave_minutes: float

    def to_json(self) -> dict[str, Any]:
        return {"pairing": self.pairing, "autosave_minutes": self.autosave_minutes}


def check_settings(body: Any, current: Settings) -> Settings:
    """Settings from a request body (pure): unknown keys and bad values are refused."""
    if not isinstance(body, dict):
        raise paths.Refused("Send the settings as a JSON object.")
    unknown = set(body) - {"pairing", "autosave_minutes"}
    if unknown:
        raise paths.Refused(f"Unknown settings: {', '.join(sorted(unknown))}.")
    result = Settings(current.pairing, current.autosave_minutes)
    if "pairing" in body:
        if body["pairing"] not in pairing.PAIRINGS:
            raise paths.Refused(f"pairing must be one of {', '.join(pairing.PAIRINGS)}.")
        result.pairing = body["pairing"]
    if "autosave_minutes" in body:
        minutes = body["autosave_minutes"]
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not 0 <= minutes <= MAX_AUTOSAVE_MINUTES
        ):
            raise paths.Refused(
                f"autosave_minutes is a number of minutes from 0 (off) to {MAX_AUTOSAVE_MINUTES}."
            )
        result.autosave_minutes = float(minutes)
    return result


def autosave_due(last_version: float | None, now: float, minutes: float) -> bool:
    """Whether a save at ``now`` should become an automatic version (pure)."""
    if minutes <= 0:
        return False
    return last_version is None or now - last_version >= minutes * 60


class Workspace:
    """The history of the notebooks under ``root`` (the server's root_dir)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        runner: GitRunner,
        credentials: CredentialStore,
        author: tuple[str, str],
        default_settings: Settings,
        diff_timeout: float = 30.0,
        contents_manager: Callable[[], Any] | None = None,
        open_room: Callable[[str, Any], Awaitable[Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self.runner = runner
        self.repo = Repository(runner)
        self.credentials = credentials
        self.author = author
        self.default_settings = default_settings
        self.diff_timeout = diff_timeout
        self.contents_manager = contents_manager or (lambda: None)
        # (path, notebook): put a restored notebook into its open collaboration room
        self.open_room = open_room
        self.clock = clock
        self.lock = asyncio.Lock()
        self.last_version: dict[str, float] = {}
        self.pending: set[asyncio.Task[Any]] = set()

    # --- settings --------------------------------------------------------------------

    def settings(self) -> Settings:
        try:
            saved = json.loads((self.root / SETTINGS_FILE).read_text(encoding="utf-8"))
            return check_settings(saved, self.default_settings)
        except FileNotFoundError:
            return self.default_settings
        except (ValueError, paths.Refused) as e:
            log.warning("Ignoring %s: %s", self.root / SETTINGS_FILE, e)
            return self.default_settings

    def put_settings(self, body: Any) -> Settings:
        new = check_settings(body, self.settings())
        target = self.root / SETTINGS_FILE
        paths.inside(self.root, SETTINGS_FILE)
        target.parent.mkdir(exist_ok=True)
        target.write_text(json.dumps(new.to_json(), indent=1) + "\n", encoding="utf-8")
        self.apply_pairing(new.pairing)
        return new

    def apply_pairing(self, value: str | None = None) -> None:
        cm = self.contents_manager()
        if cm is not None:
            pairing.apply_to_contents_manager(cm, value or self.settings().pairing)

    # --- status ----------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        settings = self.settings()
        exists = self.repo.exists
        url = await self.repo.remote_url() if exists else None
        return {
            "repository": exists,
            "branch": await self.repo.branch() if exists else None,
            "remote": {
                "url": url,
                # credentials count only for the URL they were given for
                "has_credentials": self.credentials.present and self.credentials.url() == url,
            }
            if url
            else None,
            "pairing": settings.pairing,
            "autosave_minutes": settings.autosave_minutes,
            "jupyterlab_git": _jupyterlab_git_installed(),
            "author": {"name": self.author[0], "email": self.author[1]},
        }

    async def init(self) -> dict[str, Any]:
        async with self.lock:
            await self._init()
        return await self.status()

    async def _init(self) -> None:
        try:
            created = await self.repo.init()
        except paths.Refused as e:
            raise HistoryError(409, f"Cannot set up the repository: {e}") from None
        if created or await self.repo.head() is None:
            await self.repo.commit(
                [".gitignore", ".gitattributes"], "Start the notebook history", self.author, False
            )

    # --- versions --------------------------------------------------------------------

    def notebook(self, api_path: str, *, must_exist: bool = True) -> str:
        try:
            rel = paths.notebook_path(self.root, api_path)
        except paths.Refused as e:
            raise HistoryError(400, str(e)) from None
        if must_exist and not (self.root / rel).is_file():
            raise HistoryError(404, f"No notebook at {rel!r} in this workspace.")
        return rel

    def _files(self, rel: str, pairing_value: str | None = None) -> list[str]:
        text = pairing.paired_path(rel, pairing_value or self.settings().pairing)
        return [rel] + ([text] if text else [])

    async def versions(self, api_path: str, limit: int = 100) -> dict[str, Any]:
        rel = self.notebook(api_path)
        if not self.repo.exists:
            return {"path": rel, "versions": [], "dirty": True}
        listed = await self.repo.versions(rel, limit)
        dirty = await self.repo.dirty(rel) if listed else True
        return {"path": rel, "versions": [v.to_json() for v in listed], "dirty": dirty}

    async def save_version(
        self, api_path: str, message: str, *, automatic: bool = False
    ) -> Version:
        rel = self.notebook(api_path)
        try:
            text = paths.message(message)
        except paths.Refused as e:
            raise HistoryError(400, str(e)) from None
        async with self.lock:
            return await self._save_version(rel, text, automatic)

    async def _save_version(
        self, rel: str, message: str, automatic: bool, content: dict[str, Any] | None = None
    ) -> Version:
        """Commit the notebook and its pair; with ``content``, write that first (a restore)."""
        await self._init()
        settings = self.settings()
        files = self._files(rel, settings.pairing)
        cm = self.contents_manager()
        # A save under way (jupytext writes the .ipynb, then its pair) must not interleave:
        # a notebook read before it and a pair written after it from that stale read would
        # put old inputs on disk, and the room would load them as an outside change. A
        # restore writes and reads back in the same hold: a room's save queued behind it
        # lands after the version is taken, not between the write and the read.
        async with contents.notebook_lock(cm, rel):
            if content is not None:
                await self._write_notebook(cm, rel, content)
            notebook = await self._settled(rel)
            pinned = {rel: notebook} if notebook is not None else {}
            if settings.pairing != "none" and notebook is not None:
                # jupytext parses the whole notebook: off the event loop
                pinned[files[1]] = await asyncio.to_thread(
                    self._write_pair, rel, notebook, settings.pairing
                )
        if not await self.repo.versions(rel, 1):
            # a shared notebook's copy says so in its first version
            copied_from = None
            if notebook is not None:
                copied_from = await asyncio.to_thread(_copied_from, notebook)
            message = wording.first_version_message(message, copied_from)
        sha = await self.repo.commit(files, message, self.author, automatic, pinned)
        if sha is None:
            latest = await self.repo.versions(rel, 1)
            quote = wording.quoted_message(latest[0].message) if latest else ""
            since = f"the last version, {quote}" if quote else "the last version"
            raise NothingChanged(f"Nothing changed in {rel} since {since}.")
        self.last_version[rel] = self.clock()
        return (await self.repo.versions(rel, 1))[0]

    async def _settled(self, rel: str) -> bytes | None:
        """The notebook's bytes once they parse as JSON (None when it is gone)."""
        error: ValueError | None = None
        for attempt in range(SETTLE_TRIES):
            if attempt:
                await self.runner.sleep(SETTLE_PAUSE_S)
            try:
                return await asyncio.to_thread(_complete_json, self.root / rel)
            except FileNotFoundError:
                return None
            except ValueError as e:
                error = e
        raise HistoryError(
            409,
            f"{rel} is not a complete notebook on disk ({error}). If it is being saved, try "
            "again in a moment; if not, the file is damaged: open it with the Editor to "
            "repair it, or restore one of its versions.",
        )

    def _write_pair(self, rel: str, notebook: bytes, pairing_value: str) -> bytes:
        """Write the notebook's text pair when it differs; its bytes, to be committed."""
        refused = pairing.python_configs(self.root, rel)
        if refused:
            raise HistoryError(
                409,
                "Refusing to pair notebooks while a jupytext configuration written in Python "
                f"exists ({', '.join(refused)}): jupytext would run it. Replace it with a "
                "jupytext.toml, or set pairing to 'none'.",
            )
        text_rel = pairing.paired_path(rel, pairing_value)
        assert text_rel is not None
        try:
            target = paths.inside(self.root, text_rel)
        except paths.Refused as e:
            raise HistoryError(409, f"Cannot write the text pair: {e}") from None
        content = pairing.text(notebook, pairing_value)
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")
        return content.encode("utf-8")

    async def _version_of(self, rel: str, version: str) -> Version:
        try:
            full = await self.repo.resolve(paths.version_id(version))
        except paths.Refused as e:
            raise HistoryError(400, str(e)) from None
        except GitError:
            raise HistoryError(404, f"No version {version} in this repository.") from None
        for v in await self.repo.versions(rel, 100000):
            if v.id == full:
                return v
        raise HistoryError(404, f"Version {version} is not a version of {rel}.")

    # --- diff ------------------------------------------------------------------------

    async def diff(self, api_path: str, base: str | None, target: str | None) -> dict[str, Any]:
        """``{"from", "to", "base": bytes, "diff": bytes}`` — JSON documents as bytes, put
        into the response as they are."""
        rel = self.notebook(api_path)
        if not self.repo.exists:
            raise HistoryError(404, f"{rel} has no versions yet; save one first.")
        if base is None:
            listed = await self.repo.versions(rel, 1)
            if not listed:
                raise HistoryError(404, f"{rel} has no versions yet; save one first.")
            old = listed[0]
        else:
            old = await self._version_of(rel, base)
        base_bytes = await self.repo.show(old.id, old.path)
        to = target or paths.WORKING
        if to == paths.WORKING:
            settled = await self._settled(rel)
            if settled is None:
                raise HistoryError(404, f"No notebook at {rel!r} in this workspace.")
            new_bytes = settled
        else:
            new = await self._version_of(rel, to)
            new_bytes = await self.repo.show(new.id, new.path)
            to = new.id
        try:
            base_json, diff_json = await diffing.diff_in_worker(
                base_bytes, new_bytes, limit_s=self.diff_timeout
            )
        except diffing.DiffTimeout:
            raise HistoryError(
                504,
                f"Comparing these versions of {rel} took longer than {self.diff_timeout:g} s "
                "and was stopped. Compare versions closer together, or clear large outputs.",
            ) from None
        except diffing.DiffFailed as e:
            log.error("Diff of %s failed: %s", rel, e)
            raise HistoryError(422, f"These versions of {rel} could not be compared: {e}") from None
        return {"path": rel, "from": old.id, "to": to, "base": base_json, "diff": diff_json}

    # --- restore ---------------------------------------------------------------------

    async def restore(self, api_path: str, version: str) -> Version:
        rel = self.notebook(api_path, must_exist=False)
        async with self.lock:
            if not self.repo.exists:
                raise HistoryError(404, f"{rel} has no versions yet.")
            old = await self._version_of(rel, version)
            raw = (await self.repo.show(old.id, old.path)).decode("utf-8")
            content = await asyncio.to_thread(nbformat.reads, raw, as_version=4)
            if (self.root / rel).is_file() and await self.repo.dirty(*self._files(rel)):
                # the working copy is about to be replaced: keep it as a version first
                try:
                    await self._save_version(
                        rel, wording.before_restore_message(old.message, old.time), True
                    )
                except NothingChanged:
                    pass
            return await self._save_version(
                rel, wording.restore_message(old.message, old.time), False, content
            )

    async def _write_notebook(self, cm: Any, rel: str, content: dict[str, Any]) -> None:
        """Write a restored notebook, inside the notebook's lock, and put it in its open
        collaboration room: the room saves its document a moment after each edit, and a
        save of an edit that was waiting for this lock would otherwise write the edit back
        over the restore, for good."""
        if cm is None:
            await asyncio.to_thread(nbformat.write, content, self.root / rel)
            return
        # through the contents manager: jupytext (when installed) rewrites the paired file
        model = {"type": "notebook", "format": "json", "content": content}
        loaded = await contents.save_and_read_back(cm, model, rel)
        if self.open_room is not None:
            # as the room's own load of the file would have it: its watcher, seeing the
            # file newer, then finds nothing to replace (a cell added meanwhile would go)
            await self.open_room(rel, loaded["content"])

    # --- automatic versions ----------------------------------------------------------

    def on_save(self, model: Any = None, os_path: str = "", **_: Any) -> None:
        """The contents manager's post-save hook: schedule an automatic version when due.

        Never raises (a raise would fail the user's save) and never blocks: the version
        is made by a task after the save has answered.
        """
        try:
            rel = self._saved_notebook(os_path)
            if rel is None or not self.repo.exists:
                return
            minutes = self.settings().autosave_minutes
            if minutes <= 0:
                return
            now = self.clock()
            last = self.last_version.get(rel)
            if last is not None and not autosave_due(last, now, minutes):
                return
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._autosave(rel, minutes))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        except Exception:
            log.exception("Could not schedule an automatic version for %s", os_path)

    def _saved_notebook(self, os_path: str) -> str | None:
        if not os_path or not str(os_path).endswith(".ipynb"):
            return None
        real = Path(os.path.realpath(os_path))
        if not real.is_relative_to(self.root):
            return None
        return real.relative_to(self.root).as_posix()

    async def _autosave(self, rel: str, minutes: float) -> None:
        try:
            async with self.lock:
                if rel not in self.last_version:
                    latest = await self.repo.versions(rel, 1)
                    if latest:
                        self.last_version[rel] = _epoch(latest[0].time)
                if not autosave_due(self.last_version.get(rel), self.clock(), minutes):
                    return
                try:
                    await self._save_version(rel, wording.AUTOMATIC_MESSAGE, True)
                except NothingChanged:
                    pass
                except HistoryError as e:
                    log.warning("No automatic version of %s: %s", rel, e.message)
        except Exception:
            log.exception("Automatic version of %s failed", rel)

    async def drain(self) -> None:
        """Wait for scheduled automatic versions (tests, shutdown)."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    # --- remote ----------------------------------------------------------------------

    async def set_remote(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HistoryError(400, "Send {url, username, token} as a JSON object.")
        try:
            url = paths.remote_url(body.get("url"), allow_local=self.runner.allow_local_remotes)
            username = token = None
            # a public https remote (pull only) or an ssh one needs neither
            if body.get("username") or body.get("token"):
                username = paths.credential(body.get("username"), "username")
                token = paths.credential(body.get("token"), "token")
        except paths.Refused as e:
            raise HistoryError(400, str(e)) from None
        async with self.lock:
            await self._init()
            await self.repo.set_remote(url)
            if username is not None and token is not None:
                self.credentials.save(url, username, token)
            else:
                self.credentials.forget()
        return await self.status()

    async def forget_remote(self) -> dict[str, Any]:
        self.credentials.forget()
        return await self.status()

    async def _remote_env(self) -> dict[str, str]:
        url = await self.repo.remote_url()
        if url is None:
            raise HistoryError(409, "No remote is set; add one with its URL first.")
        try:
            paths.remote_url(url, allow_local=self.runner.allow_local_remotes)
        except paths.Refused as e:
            raise HistoryError(409, f"The configured remote is refused: {e}") from None
        if self.credentials.present and self.credentials.url() != url:
            # credentials were given for another URL: do not send them elsewhere
            return {}
        return self.credentials.git_env()

    async def push(self) -> dict[str, Any]:
        async with self.lock:
            if not self.repo.exists or await self.repo.head() is None:
                raise HistoryError(409, "There are no versions to push yet.")
            env = await self._remote_env()
            branch = await self.repo.branch()
            if branch is None:
                raise HistoryError(409, "The repository is not on a branch (detached HEAD).")
            try:
                await self.runner.run(
                    "push", "--porcelain", "--end-of-options", REMOTE,
                    f"HEAD:refs/heads/{branch}", env=env,
                )  # fmt: skip
            except GitTimeout as e:
                raise HistoryError(504, f"Pushing took too long: {e.stderr}") from None
            except GitError as e:
                raise HistoryError(409, f"The push was refused: {first_lines(e.stderr)}") from None
        return {"pushed": True, "branch": branch}

    async def pull(self) -> dict[str, Any]:
        async with self.lock:
            if not self.repo.exists:
                await self._init()
            env = await self._remote_env()
            branch = await self.repo.branch() or "main"
            try:
                await self.runner.run(
                    "fetch", "--no-tags", "--end-of-options", REMOTE,
                    f"+refs/heads/{branch}:refs/remotes/{REMOTE}/{branch}", env=env,
                )  # fmt: skip
            except GitTimeout as e:
                raise HistoryError(504, f"Fetching took too long: {e.stderr}") from None
            except GitError as e:
                if "couldn't find remote ref" in e.stderr:
                    return {"updated": False, "merged_notebooks": [], "conflicts": []}
                raise HistoryError(409, f"The fetch failed: {first_lines(e.stderr)}") from None
            return await self._merge(f"refs/remotes/{REMOTE}/{branch}")

    async def _resolve_pairs(self, conflicts: list[str]) -> bool:
        """Resolve conflicts in paired text files by writing them again from their notebook,
        which nbdime merged; False (nothing touched) unless every conflict is such a pair."""
        setting = self.settings().pairing
        pairs: dict[str, str] = {}
        for path in conflicts:
            stem, dot, ext = path.rpartition(".")
            notebook = f"{stem}.ipynb"
            if not dot or ext not in ("py", "md") or notebook in conflicts:
                return False
            if not (self.root / notebook).is_file():
                return False
            pairs[path] = notebook
        for text_path in pairs:
            try:
                paths.inside(self.root, text_path)
            except paths.Refused:
                return False
        for text_path, notebook in pairs.items():
            content = await asyncio.to_thread(
                pairing.text, (self.root / notebook).read_bytes(), _pair_format(text_path, setting)
            )
            (self.root / text_path).write_text(content, encoding="utf-8")
        await self.runner.run("add", "--", *pairs)
        return True

    async def _merge(self, theirs: str) -> dict[str, Any]:
        before = await self.repo.head()
        their_sha = (await self.runner.run("rev-parse", "--verify", theirs)).text.strip()
        both: set[str] = set()
        incoming: set[str] | None = None
        if before is not None:
            base = await self.runner.run("merge-base", before, their_sha, check=False)
            if base.returncode == 0:
                fork = base.text.strip()
                incoming = await self.repo.changed_between(fork, their_sha)
                both = await self.repo.changed_between(fork, before) & incoming
        if incoming is None:
            incoming = await self.repo.files_at(their_sha)
        # The workspace is the home folder: a pulled .ipython/ startup file, .jupyter/ config
        # or .ssh/config would run as this user. Never let a remote write hidden paths.
        hidden = sorted(p for p in incoming if paths.hidden(p))
        if hidden:
            raise HistoryError(
                409,
                "The pull was refused: the remote adds or changes hidden files, which programs "
                f"here read as settings and may run ({', '.join(hidden[:10])}). Remove them "
                "from the remote, or fetch and check them with git yourself. Nothing changed.",
                conflicts=[],
            )
        # nbdime's merge driver must be the one git uses, whatever the repo config says
        from .git import driver_config

        result = await self.runner.run(
            "merge", "--no-edit", "--no-verify", "--no-stat", "--allow-unrelated-histories",
            "--end-of-options", their_sha,
            check=False, config={**driver_config(), "user.name": self.author[0],
                                 "user.email": self.author[1]},
        )  # fmt: skip
        if result.returncode != 0:
            conflicts = await self.repo.conflicted()
            merging = (self.root / ".git" / "MERGE_HEAD").exists()
            if merging and conflicts and await self._resolve_pairs(conflicts):
                await self.runner.run(
                    "commit", "-q", "--no-edit", "--no-verify",
                    config={"user.name": self.author[0], "user.email": self.author[1]},
                )  # fmt: skip
            elif conflicts or merging:
                await self.runner.run("merge", "--abort", check=False)
                raise HistoryError(
                    409,
                    "The pull was undone: these files changed here and on the remote in ways "
                    f"that could not be merged: {', '.join(conflicts) or 'unknown'}. "
                    "Nothing in your workspace changed.",
                    conflicts=conflicts,
                )
            else:
                raise HistoryError(
                    409, f"The pull was refused: {first_lines(result.stderr)}", conflicts=[]
                )
        after = await self.repo.head()
        merged = sorted(p for p in both if p.endswith(".ipynb"))
        self.last_version.clear()
        return {"updated": after != before, "merged_notebooks": merged, "conflicts": []}


def _pair_format(text_path: str, setting: str) -> str:
    if text_path.endswith(".md"):
        return "md"
    return setting if setting.startswith("py:") else "py:percent"


def _complete_json(path: Path) -> bytes:
    """The file's bytes; ValueError while they do not parse as JSON (a save under way)."""
    content = path.read_bytes()
    json.loads(content)
    return content


def _copied_from(notebook: bytes) -> Any:
    """``metadata.mlfactory.copied_from`` of a notebook file's content, or None."""
    try:
        nb = json.loads(notebook)
    except ValueError:
        return None
    meta = nb.get("metadata") if isinstance(nb, dict) else None
    ours = meta.get("mlfactory") if isinstance(meta, dict) else None
    return ours.get("copied_from") if isinstance(ours, dict) else None


def first_lines(text: str, n: int = 4) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[:n])


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _jupyterlab_git_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("jupyterlab_git") is not None
