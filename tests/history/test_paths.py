"""What the history accepts from requests (pure checks, plus symlinks on disk)."""

from __future__ import annotations

import os

import pytest
from mlfactory.server.history import paths
from mlfactory.server.history.paths import Refused


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../x.ipynb",
        "a/../../x.ipynb",
        "a/./x.ipynb",
        "/etc/x.ipynb",
        "//x.ipynb",
        "C:/x.ipynb",
        "a\\..\\x.ipynb",
        "a%2F..%2Fx.ipynb",
        "a%2fx.ipynb",
        "a%5Cx.ipynb",
        "%2E%2E/x.ipynb",
        "a//x.ipynb",
        "x.ipynb\x00.txt",
        "x\n.ipynb",
        "--upload-pack=x.ipynb",
        "a/-x.ipynb",
        ".git/x.ipynb",
        "sub/.GIT/x.ipynb",
        "x.py",
        "x.ipynb/",
        "x" * 2000 + ".ipynb",
    ],
)
def test_refused_paths(tmp_path, bad):
    with pytest.raises(Refused):
        paths.notebook_path(tmp_path, bad)


def test_accepted_paths(tmp_path):
    assert paths.notebook_path(tmp_path, "a.ipynb") == "a.ipynb"
    assert paths.notebook_path(tmp_path, "sub dir/ünïcode b.ipynb") == "sub dir/ünïcode b.ipynb"
    assert paths.notebook_path(tmp_path, "a.txt", notebook=False) == "a.txt"


def test_symlinks_out_and_sibling_prefix(tmp_path):
    root = tmp_path / "root"
    evil = tmp_path / "root-evil"
    root.mkdir()
    evil.mkdir()
    (evil / "x.ipynb").write_text("{}")
    os.symlink(evil, root / "link")
    os.symlink(evil / "x.ipynb", root / "x.ipynb")
    os.symlink(root / "inner", root / "ok")
    for rel in ("link/x.ipynb", "x.ipynb"):
        with pytest.raises(Refused, match="outside"):
            paths.notebook_path(root, rel)
    # a symlink that stays inside is fine
    assert paths.notebook_path(root, "ok/y.ipynb") == "ok/y.ipynb"
    # the workspace itself reached through a symlink
    os.symlink(root, tmp_path / "alias")
    assert paths.notebook_path(tmp_path / "alias", "z.ipynb") == "z.ipynb"


@pytest.mark.parametrize(
    "bad", ["", "HEAD", "main", "-p", "--all", "abc", "g" * 40, "a" * 65, None]
)
def test_version_ids(bad):
    with pytest.raises(Refused):
        paths.version_id(bad)


def test_version_ids_accepted():
    assert paths.version_id("abcd") == "abcd"
    assert paths.version_id("working", allow_working=True) == "working"
    with pytest.raises(Refused):
        paths.version_id("working")


def test_messages():
    assert paths.message("  fix\n\tdetails  ") == "fix\n\tdetails"
    for bad in ["", " ", "a\x00", "a\x1b[31m", "x" * (paths.MAX_MESSAGE + 1), b"x", None]:
        with pytest.raises(Refused):
            paths.message(bad)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/team/project.git",
        "https://git.example.org:8443/a/b",
        "ssh://git@example.org/team/p.git",
        "git@github.com:team/project.git",
    ],
)
def test_remote_urls_accepted(url):
    assert paths.remote_url(url) == url


def test_local_remotes_only_when_allowed():
    for url in ("/srv/git/p.git", "file:///srv/git/p.git"):
        with pytest.raises(Refused):
            paths.remote_url(url)
        assert paths.remote_url(url, allow_local=True) == url
    with pytest.raises(Refused):
        paths.remote_url("/srv/../etc", allow_local=True)


def test_credentials():
    assert paths.credential("ada", "username") == "ada"
    for bad in ["", "a\nb", "a\rb", "a\x00", None, "x" * 5000]:
        with pytest.raises(Refused):
            paths.credential(bad, "token")


def test_links_into_the_repository_folder_are_refused(tmp_path):
    root = tmp_path / "root"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("")
    os.symlink(root / ".git" / "config", root / "notes.py")
    with pytest.raises(Refused, match=r"\.git"):
        paths.inside(root, "notes.py")


@pytest.mark.parametrize(
    ("rel", "hidden"),
    [
        (".ipython/profile_default/startup/00.py", True),
        ("project/.jupyter/jupyter_server_config.py", True),
        (".bashrc", True),
        (".gitignore", False),
        ("sub/.gitattributes", False),
        ("a.ipynb", False),
        ("data/x.csv", False),
    ],
)
def test_hidden_paths(rel, hidden):
    assert paths.hidden(rel) is hidden
