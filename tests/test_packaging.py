"""The bundle as users install it: a wheel with the prebuilt labextension, and the dev install.

The wheel test builds a real wheel from this tree, installs it (without dependencies)
into a folder, and asks Jupyter itself whether the extensions found there are enabled
and OK — so `pip install mlfactory` needs no Node and no manual enabling.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = Path(sys.executable).with_name("jupyter")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(*args: str, env: dict | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return _ANSI.sub("", result.stdout + result.stderr)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps",
        "--quiet", "-w", str(out), str(ROOT),
    )  # fmt: skip
    (whl,) = out.glob("mlfactory-*.whl")
    return whl


def test_wheel_holds_every_part_of_the_bundle(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split("/")[0] for n in names if ".data/" in n)
    expected = {
        "mlfactory/hub/jupyterhub_config.py",
        "mlfactory/hub/mlfactory.yaml",
        "mlfactory/hub/templates/login.html",
        "mlfactory/spawner/local.py",
        "mlfactory/server/app.py",
        "mlfactory/components/__init__.py",
        "mlfactory/model_api/__init__.py",
        f"{data}/data/etc/jupyter/jupyter_server_config.d/mlfactory.json",
        f"{data}/data/share/jupyter/lab/settings/overrides.d/mlfactory.json",
        f"{data}/data/share/jupyter/labextensions/mlfactory/package.json",
        f"{data}/data/share/jupyter/labextensions/mlfactory/install.json",
    }
    assert expected <= names, expected - names
    static = [n for n in names if "/labextensions/mlfactory/static/remoteEntry." in n]
    assert len(static) == 1
    entry_points = zipfile.ZipFile(wheel).read(
        f"{data.removesuffix('.data')}.dist-info/entry_points.txt"
    )
    assert b"mlfactory-local = mlfactory.spawner.local:MLFactoryLocalSpawner" in entry_points
    assert b"mlfactory = mlfactory.hub.cli:main" in entry_points


def test_wheel_install_enables_both_extensions(wheel, tmp_path):
    # A fresh environment holding only the wheel; its dependencies are borrowed from this
    # one through a .pth line (a path entry, so the dev install's own hooks do not run).
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    site = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site.strip()) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--quiet",
        "--no-deps",
        str(wheel),
    )
    where = _run(str(python), "-c", "import mlfactory.server as m; print(m.__file__)", cwd=tmp_path)
    assert where.strip().startswith(str(venv))
    servers = _run(str(python), "-m", "jupyter_server", "extension", "list", cwd=tmp_path)
    section = _section(servers, f"Config dir: {venv / 'etc' / 'jupyter'}")
    assert "mlfactory.server enabled" in section
    assert re.search(r"mlfactory\.server\s+OK", section)
    labs = _run(str(python), "-m", "jupyterlab.labextensions", "list", cwd=tmp_path)
    section = _section(labs, str(venv / "share" / "jupyter" / "labextensions"))
    assert re.search(r"mlfactory v[0-9.]+ enabled\s+OK", section), labs


def _section(listing: str, heading: str) -> str:
    """The lines under ``heading`` in a `jupyter ... list` output, up to the next heading."""
    lines = listing.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == heading)
    rest = lines[start + 1 :]
    end = next((i for i, ln in enumerate(rest) if ln and not ln.startswith(" ")), len(rest))
    return "\n".join(rest[:end])


def test_dev_install_enables_both_extensions(tmp_path):
    servers = _run(str(JUPYTER), "server", "extension", "list", cwd=tmp_path)
    assert "mlfactory.server enabled" in servers
    labs = _run(str(JUPYTER), "labextension", "list", cwd=tmp_path)
    line = next(ln for ln in labs.splitlines() if ln.strip().startswith("mlfactory "))
    assert "enabled" in line and "OK" in line
