"""The user's https username and token for the workspace's remote: one 0600 file in a
0700 folder of the user's own, handed to git through a ``GIT_ASKPASS`` helper that reads
it. The token never appears in a URL, an argument list, an environment variable, a log
line or a response.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from pathlib import Path

ASKPASS = """\
#!{python}
# mlfactory's GIT_ASKPASS helper: answers git's username/password prompt from the file
# named in MLFACTORY_GIT_CREDENTIALS (mode 0600); prints nothing for other prompts.
import json, os, sys
prompt = sys.argv[1] if len(sys.argv) > 1 else ""
try:
    with open(os.environ["MLFACTORY_GIT_CREDENTIALS"], encoding="utf-8") as f:
        saved = json.load(f)
except (KeyError, OSError, ValueError):
    sys.exit(1)
if prompt.startswith("Username"):
    print(saved["username"])
elif prompt.startswith("Password"):
    print(saved["token"])
else:
    sys.exit(1)
"""


class CredentialStore:
    """Credentials of one workspace's remote, under ``directory`` (created 0700)."""

    def __init__(self, directory: str | os.PathLike[str], workspace: str | os.PathLike[str]):
        self.directory = Path(directory)
        key = hashlib.sha256(os.path.realpath(workspace).encode()).hexdigest()[:16]
        self.path = self.directory / f"remote-{key}.json"
        self.askpass = self.directory / "askpass.py"

    def _ensure_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    @property
    def present(self) -> bool:
        return self.path.is_file()

    def save(self, url: str, username: str, token: str) -> None:
        self._ensure_directory()
        _write_private(self.path, json.dumps({"url": url, "username": username, "token": token}))

    def forget(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False

    def url(self) -> str | None:
        """The remote URL the credentials were given for (never the token)."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8")).get("url")
        except (OSError, ValueError):
            return None

    def git_env(self) -> dict[str, str]:
        """Environment for git's push/fetch: the askpass helper and where it reads from."""
        if not self.present:
            return {}
        self._ensure_directory()
        script = ASKPASS.format(python=sys.executable)
        if not self.askpass.exists() or self.askpass.read_text(encoding="utf-8") != script:
            _write_private(self.askpass, script, mode=0o700)
        return {"GIT_ASKPASS": str(self.askpass), "MLFACTORY_GIT_CREDENTIALS": str(self.path)}


def _write_private(path: Path, content: str, mode: int = 0o600) -> None:
    # created with its final mode (never briefly world-readable), then renamed over
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    assert stat.S_IMODE(path.stat().st_mode) == mode
