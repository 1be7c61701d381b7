"""The notebook history's part of the server extension: the ``NotebookHistory``
configurable (``c.NotebookHistory.*``) and ``setup(app)``, which composes the workspace with
the contents manager (post-save hook, jupytext guard) and stores it for the handlers.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Float, Unicode, default, validate
from traitlets.config import Configurable

from .. import collaboration
from . import pairing
from .credentials import CredentialStore
from .git import GitRunner
from .workspace import MAX_AUTOSAVE_MINUTES, Settings, Workspace

SETTINGS_KEY = "mlfactory_history"


class NotebookHistory(Configurable):
    """Server-wide defaults and limits of the notebook history."""

    git_command = Unicode(
        "git",
        help="""The git executable, a name looked up on PATH or an absolute path. It runs
        with an argument list (never a shell), hooks off and only the repository's config.
        Example: c.NotebookHistory.git_command = "/usr/bin/git"
        """,
    ).tag(config=True)

    timeout = Float(
        60.0,
        help="""Seconds any one git command may run before it is killed (with everything it
        started, e.g. ssh); the request then fails with 504. Push and pull of large
        repositories over slow links need the most.
        Example: c.NotebookHistory.timeout = 120
        """,
    ).tag(config=True)

    diff_timeout = Float(
        30.0,
        help="""Seconds a notebook diff may compute in its worker process before it is killed
        and the request answers 504. Cells without ids are the slow case (they get ids
        derived from their source first).
        Example: c.NotebookHistory.diff_timeout = 10
        """,
    ).tag(config=True)

    pairing = Unicode(
        "py:percent",
        help="""How notebooks are paired with a readable text file in the repository, until a
        workspace chooses otherwise in the History settings: "py:percent", "py:light",
        "md", or "none" for no text file.
        Example: c.NotebookHistory.pairing = "md"
        """,
    ).tag(config=True)

    autosave_minutes = Float(
        0.0,
        help="""Default minimum number of minutes between automatic versions made when a
        notebook is saved; 0 turns them off. Workspaces override it in their settings.
        Example: c.NotebookHistory.autosave_minutes = 30
        """,
    ).tag(config=True)

    credentials_dir = Unicode(
        help="""Folder (created with mode 0700) holding each workspace's remote credentials in
        a 0600 file and the askpass helper git reads them through. Keep it out of the
        workspace and out of anything shared. Default: <jupyter data dir>/mlfactory/git.
        Example: c.NotebookHistory.credentials_dir = "/home/jovyan/.local/share/mlfactory-git"
        """,
    ).tag(config=True)

    author_name = Unicode(
        help="""Name recorded as the author of versions. Default: GIT_AUTHOR_NAME, else the
        hub user (JUPYTERHUB_USER), else the OS user. The user's ~/.gitconfig is not read.
        Example: c.NotebookHistory.author_name = "Ada Lovelace"
        """,
    ).tag(config=True)

    author_email = Unicode(
        help="""E-mail recorded with versions. Default: GIT_AUTHOR_EMAIL, else
        <author_name>@users.noreply.mlfactory.
        Example: c.NotebookHistory.author_email = "ada@example.org"
        """,
    ).tag(config=True)

    allow_local_remotes = Bool(
        False,
        help="""Accept file:// and local-path remotes. For tests only: a local remote lets a
        workspace read any repository this user can read.
        Example: c.NotebookHistory.allow_local_remotes = True
        """,
    ).tag(config=True)

    @default("credentials_dir")
    def _default_credentials_dir(self) -> str:
        return os.path.join(jupyter_data_dir(), "mlfactory", "git")

    @default("author_name")
    def _default_author_name(self) -> str:
        name = os.environ.get("GIT_AUTHOR_NAME") or os.environ.get("JUPYTERHUB_USER")
        if not name:
            try:
                name = getpass.getuser()
            except (KeyError, OSError):
                name = "jovyan"
        return name

    @default("author_email")
    def _default_author_email(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]", "-", self.author_name) or "user"
        return os.environ.get("GIT_AUTHOR_EMAIL") or f"{slug}@users.noreply.mlfactory"

    @validate("pairing")
    def _check_pairing(self, proposal: dict[str, Any]) -> str:
        pairing.formats(proposal["value"])  # raises with the accepted values
        return proposal["value"]

    @validate("autosave_minutes")
    def _check_autosave(self, proposal: dict[str, Any]) -> float:
        if not 0 <= proposal["value"] <= MAX_AUTOSAVE_MINUTES:
            raise ValueError(f"autosave_minutes must be within 0..{MAX_AUTOSAVE_MINUTES}")
        return proposal["value"]

    @validate("author_name", "author_email")
    def _check_author(self, proposal: dict[str, Any]) -> str:
        if re.search(r"[\x00-\x1f<>]", proposal["value"]):
            raise ValueError("author name and e-mail are one line without < or >")
        return proposal["value"]

    @validate("timeout", "diff_timeout")
    def _check_timeout(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] <= 0:
            raise ValueError("timeouts are a positive number of seconds")
        return proposal["value"]

    def workspace(
        self,
        root: str,
        contents_manager: Any = None,
        open_room: Callable[[str, Any], Awaitable[Any]] | None = None,
    ) -> Workspace:
        runner = GitRunner(
            root,
            git=self.git_command,
            timeout=self.timeout,
            allow_local_remotes=self.allow_local_remotes,
        )
        return Workspace(
            root,
            runner=runner,
            credentials=CredentialStore(self.credentials_dir, root),
            author=(self.author_name, self.author_email),
            default_settings=Settings(self.pairing, self.autosave_minutes),
            diff_timeout=self.diff_timeout,
            contents_manager=contents_manager,
            open_room=open_room,
        )


def setup(app: Any) -> None:
    """Configure the history for ``app`` (MLFactoryServerApp); the routes are in
    ``handlers.default_handlers``.

    Runs after jupytext's extension (extensions load in name order) has wrapped the
    contents manager; the manager is looked up again at each use all the same.
    """
    config = NotebookHistory(parent=app)
    serverapp = app.serverapp

    def contents_manager() -> Any:
        return serverapp.contents_manager

    async def open_room(path: str, notebook: Any) -> None:
        await collaboration.put_in_open_room(serverapp, path, notebook)

    cm = contents_manager()
    workspace = config.workspace(cm.root_dir, contents_manager, open_room)
    pairing.guard_contents_manager(cm)
    workspace.apply_pairing()
    cm.register_post_save_hook(workspace.on_save)
    app.settings[SETTINGS_KEY] = workspace
