"""Push and pull against a local bare repository: nbdime merges notebooks, unresolvable
conflicts leave the workspace as it was, credentials stay out of git's config and URLs,
and nothing a repository carries runs as code."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import nbformat
import pytest
from mlfactory.server.history.workspace import HistoryError

from .conftest import git, sources, write_notebook

CELLS = [f"cell_{i} = {i}" for i in range(8)]


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(path))
    return path


@pytest.fixture
def other(history, tmp_path, clock):
    """A second person's workspace (same settings), created empty."""
    root = tmp_path / "other"
    root.mkdir()
    ws = history.workspace(str(root))
    ws.clock = clock
    return ws


def edit(path: Path, index: int, source: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells[index].source = source
    nbformat.write(nb, path)


async def shared_start(workspace, other, root, bare):
    """Alice versions a notebook and pushes; Bob pulls it into his empty workspace."""
    write_notebook(root, "a.ipynb", CELLS)
    await workspace.save_version("a.ipynb", "start")
    await workspace.set_remote({"url": str(bare)})
    assert await workspace.push() == {"pushed": True, "branch": "main"}
    await other.set_remote({"url": f"file://{bare}"})
    pulled = await other.pull()
    assert pulled["updated"] is True and pulled["conflicts"] == []
    return other.root / "a.ipynb"


async def test_push_then_pull_into_an_empty_workspace(workspace, other, root, bare):
    theirs = await shared_start(workspace, other, root, bare)
    assert sources(theirs) == CELLS
    assert (await other.pull())["updated"] is False
    assert [v["message"] for v in (await other.versions("a.ipynb"))["versions"]] == ["start"]


async def test_pull_merges_notebook_changes_with_nbdime(workspace, other, root, bare):
    theirs = await shared_start(workspace, other, root, bare)
    edit(root / "a.ipynb", 1, "cell_1 = 'alice'")
    await workspace.save_version("a.ipynb", "alice")
    await workspace.push()
    edit(theirs, 2, "cell_2 = 'bob'")
    await other.save_version("a.ipynb", "bob")
    result = await other.pull()
    assert result == {"updated": True, "merged_notebooks": ["a.ipynb"], "conflicts": []}
    merged = sources(theirs)
    assert merged[1] == "cell_1 = 'alice'" and merged[2] == "cell_2 = 'bob'"
    nbformat.validate(nbformat.read(theirs, as_version=4))
    # the text pair follows the merged notebook, and the merge is committed
    text = (other.root / "a.py").read_text()
    assert "cell_1 = 'alice'" in text and "cell_2 = 'bob'" in text
    assert git(other.root, "status", "--porcelain") == ""
    assert len(git(other.root, "log", "-1", "--format=%P").split()) == 2


async def test_unresolvable_conflict_is_aborted_and_reported(workspace, other, root, bare):
    theirs = await shared_start(workspace, other, root, bare)
    edit(root / "a.ipynb", 1, "cell_1 = 'alice'")
    await workspace.save_version("a.ipynb", "alice")
    await workspace.push()
    edit(theirs, 1, "cell_1 = 'bob'")
    await other.save_version("a.ipynb", "bob")
    before_head = git(other.root, "rev-parse", "HEAD")
    before_bytes = theirs.read_bytes()
    with pytest.raises(HistoryError) as e:
        await other.pull()
    assert e.value.status == 409 and "a.ipynb" in e.value.extra["conflicts"]
    assert git(other.root, "rev-parse", "HEAD") == before_head
    assert theirs.read_bytes() == before_bytes
    assert not (other.root / ".git" / "MERGE_HEAD").exists()
    assert git(other.root, "status", "--porcelain") == ""
    json.loads(theirs.read_text())  # a valid notebook, no conflict markers in JSON


async def test_hooks_never_run(workspace, other, root, bare, tmp_path):
    theirs = await shared_start(workspace, other, root, bare)
    marker = tmp_path / "hook-ran"
    for hooks in (other.root / ".git" / "hooks", other.root / "evil-hooks"):
        hooks.mkdir(exist_ok=True)
        for name in ("post-merge", "pre-commit", "commit-msg", "post-checkout", "pre-push"):
            hook = hooks / name
            hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
            hook.chmod(0o755)
    git(other.root, "config", "core.hooksPath", "evil-hooks")
    edit(root / "a.ipynb", 1, "cell_1 = 'alice'")
    await workspace.save_version("a.ipynb", "alice")
    await workspace.push()
    edit(theirs, 2, "cell_2 = 'bob'")
    await other.save_version("a.ipynb", "bob")
    await other.pull()
    await other.push()
    assert not marker.exists()


async def test_filter_drivers_do_not_run(workspace, other, root, bare, tmp_path, monkeypatch):
    """A pulled .gitattributes may name any filter; only config defines one, and the history
    reads no global or system config (here a ~/.gitconfig defining the filter)."""
    marker = tmp_path / "filter-ran"
    fake_home = tmp_path / "home"
    fake_home.mkdir()
    (fake_home / ".gitconfig").write_text(
        f'[filter "evil"]\n\tsmudge = "touch {marker}; cat"\n\tclean = "touch {marker}; cat"\n'
    )
    monkeypatch.setenv("HOME", str(fake_home))
    (root / ".gitattributes").write_text("* filter=evil\n")
    write_notebook(root, "a.ipynb", CELLS)
    await workspace.save_version("a.ipynb", "start")
    await workspace.set_remote({"url": str(bare)})
    await workspace.push()
    await other.set_remote({"url": str(bare)})
    await other.pull()
    assert "filter=evil" in (other.root / ".gitattributes").read_text()
    assert (other.root / "a.ipynb").is_file()
    assert not marker.exists()


def _ask(env: dict[str, str], prompt: str) -> str:
    out = subprocess.run([env["GIT_ASKPASS"], prompt], env=env, capture_output=True, text=True)
    return out.stdout.strip()


async def test_credentials_stay_out_of_git(workspace, root, history):
    write_notebook(root, "a.ipynb", CELLS)
    await workspace.save_version("a.ipynb", "start")
    status = await workspace.set_remote(
        {"url": "https://git.example.org/team/project.git", "username": "ada", "token": "tok-123"}
    )
    assert status["remote"] == {
        "url": "https://git.example.org/team/project.git",
        "has_credentials": True,
    }
    assert "tok-123" not in json.dumps(status)
    remotes = git(root, "remote", "-v")
    assert "tok-123" not in remotes and "ada@" not in remotes
    assert "tok-123" not in (root / ".git" / "config").read_text()
    store = workspace.credentials
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert not store.path.is_relative_to(root)
    # git's prompts are answered by the askpass helper from the file
    env = {**os.environ, **store.git_env()}
    for prompt, answer in [
        ("Username for 'https://git.example.org': ", "ada"),
        ("Password for 'https://ada@git.example.org': ", "tok-123"),
    ]:
        assert _ask(env, prompt) == answer
    status = await workspace.forget_remote()
    assert status["remote"]["has_credentials"] is False and not store.path.exists()


async def test_credentials_are_not_sent_to_another_url(workspace, root):
    write_notebook(root, "a.ipynb", CELLS)
    await workspace.save_version("a.ipynb", "start")
    await workspace.set_remote(
        {"url": "https://git.example.org/p.git", "username": "ada", "token": "tok"}
    )
    git(root, "remote", "set-url", "origin", "https://elsewhere.example.org/p.git")
    assert await workspace._remote_env() == {}
    assert (await workspace.status())["remote"]["has_credentials"] is False


async def test_public_https_remote_needs_no_credentials(workspace):
    status = await workspace.set_remote({"url": "https://github.com/team/public.git"})
    assert status["remote"]["has_credentials"] is False
    with pytest.raises(HistoryError) as e:
        await workspace.set_remote({"url": "https://github.com/team/p.git", "username": "ada"})
    assert e.value.status == 400


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "--upload-pack=touch /tmp/pwned",
        "-uhttps://x",
        "https://ada:tok@git.example.org/p.git",
        "http://git.example.org/p.git",
        "git://git.example.org/p.git",
        "fd::17",
        "https://git.example.org/p.git\n[core]",
        "ssh://-oProxyCommand=touch/x",
        "git@-oProxyCommand=x:y",
        "git@host:-x",
        "",
        None,
    ],
)
async def test_remote_urls_refused(workspace, url):
    with pytest.raises(HistoryError) as e:
        await workspace.set_remote({"url": url, "username": "a", "token": "b"})
    assert e.value.status == 400


async def test_local_remotes_are_for_tests_only(history, root, bare):
    history.allow_local_remotes = False
    ws = history.workspace(str(root))
    for url in (str(bare), f"file://{bare}"):
        with pytest.raises(HistoryError) as e:
            await ws.set_remote({"url": url})
        assert e.value.status == 400
    # even a local remote configured behind our back is not fetched
    await ws.init()
    git(root, "remote", "add", "origin", str(bare))
    with pytest.raises(HistoryError) as e:
        await ws.pull()
    assert e.value.status == 409


async def test_ssh_and_scp_remotes_accepted_without_credentials(workspace):
    status = await workspace.set_remote({"url": "git@github.com:team/project.git"})
    assert status["remote"] == {"url": "git@github.com:team/project.git", "has_credentials": False}
    status = await workspace.set_remote({"url": "ssh://git@example.org:2222/team/p.git"})
    assert status["remote"]["url"] == "ssh://git@example.org:2222/team/p.git"


async def test_push_without_remote_or_versions(workspace, root):
    with pytest.raises(HistoryError) as e:
        await workspace.push()
    assert e.value.status == 409
    await workspace.init()
    with pytest.raises(HistoryError) as e:
        await workspace.push()
    assert e.value.status == 409 and "remote" in e.value.message


def _push_from_a_clone(bare: Path, tmp_path: Path, files: dict[str, str], links=()) -> None:
    """Someone else pushes `files` (and symlinks `links`: (name, target)) to the remote."""
    clone = tmp_path / "mallory"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    for name, text in files.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    for name, target in links:
        os.symlink(target, clone / name)
    git(clone, "add", "-A", "--force")
    git(clone, "-c", "user.name=m", "-c", "user.email=m@x", "commit", "-qm", "evil")
    git(clone, "push", "-q", "origin", "HEAD:main")


async def test_pulled_hidden_files_are_refused(workspace, other, root, bare, tmp_path):
    """The workspace is the user's home: a pulled IPython startup file would run."""
    await shared_start(workspace, other, root, bare)
    _push_from_a_clone(bare, tmp_path, {".ipython/profile_default/startup/00-x.py": "x = 1\n"})
    head = git(other.root, "rev-parse", "HEAD")
    with pytest.raises(HistoryError, match=r"hidden files.*\.ipython/") as e:
        await other.pull()
    assert e.value.status == 409
    assert git(other.root, "rev-parse", "HEAD") == head
    assert not (other.root / ".ipython").exists()


async def test_pulled_symlinks_arrive_as_plain_files(workspace, other, root, bare, tmp_path):
    """A link to .git/config must not let the next save write git config (and run a filter)."""
    await shared_start(workspace, other, root, bare)
    _push_from_a_clone(bare, tmp_path, {}, links=[("evil.py", ".git/config")])
    assert (await other.pull())["updated"] is True
    pulled = other.root / "evil.py"
    assert pulled.is_file() and not pulled.is_symlink()
    assert pulled.read_text() == ".git/config"


async def test_home_folders_stay_out_of_commits_whatever_the_projects_gitignore(root, clock):
    """The workspace is the home folder: the default credentials folder (.local/) and other
    dotfolders are excluded in .git/info/exclude, even under a project's own .gitignore."""
    from mlfactory.server.history.extension import NotebookHistory

    (root / ".gitignore").write_text("*.tmp\n")  # the project's own, without .local/
    history = NotebookHistory(
        credentials_dir=str(root / ".local" / "share" / "mlfactory" / "git"),
        author_name="Ada",
        author_email="ada@example.org",
    )
    ws = history.workspace(str(root))
    ws.clock = clock
    write_notebook(root, "a.ipynb", CELLS)
    await ws.save_version("a.ipynb", "start")
    await ws.set_remote({"url": "https://git.example.org/t/p.git", "username": "a", "token": "t"})
    assert ws.credentials.path.is_relative_to(root)
    (root / ".jupyter_ystore.db").write_bytes(b"")  # jupyter-collaboration's default place
    git(root, "add", "-A")  # what a terminal or jupyterlab-git user might run
    status = git(root, "status", "--porcelain", "--ignored=no")
    assert ".local" not in status and "ystore" not in status
    assert (root / ".gitignore").read_text() == "*.tmp\n"
