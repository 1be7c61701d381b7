"""A real hub for end-to-end tests: the `mlfactory hub` command, the real proxy, real servers.

Each hub gets its own data folder and free ports, so tests never touch a
developer's running hub or the repo's .mlfactory/.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port

ADMIN_PASSWORD = "correct-horse-battery"
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The flags Chromium needs on these machines: root (no sandbox), no GPU, and a closed
# network (background services would try to reach the internet).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class RealHub:
    url: str
    data: Path
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_hub(
    data: Path,
    *extra_args: str,
    config: Path | None = None,
    timeout: float = 60,
    hub_config: Path | None = None,
    hub_port: int | None = None,
) -> RealHub:
    """Start `mlfactory hub` (with platform ``config``, default: the shipped example) and
    return once its login page answers. With ``hub_config``, run `jupyterhub -f hub_config`
    instead, as an admin runs their own copy of the shipped config (the first admin's
    account must then exist: ``prepare_hub(accounts=...)``). ``hub_port``: the hub API's
    port, fixed where servers must find the hub again after a restart (default: free)."""
    port = free_port()
    env = {
        **os.environ,
        "MLFACTORY_DATA": str(data),
        "MLFACTORY_PORT": str(port),
        "MLFACTORY_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    env.pop("MLFACTORY_CONFIG", None)
    if config is not None:
        env["MLFACTORY_CONFIG"] = str(config)
    mlfactory = Path(sys.executable).with_name("mlfactory")
    args = [
        str(mlfactory),
        "hub",
        f"--JupyterHub.hub_port={hub_port or free_port()}",
        f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
        *extra_args,
    ]
    if hub_config is not None:  # what `mlfactory hub` does before it runs the shipped config
        args[:2] = [sys.executable, "-m", "jupyterhub", "-f", str(hub_config)]
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "hub-test.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data)
    hub = RealHub(url=f"http://127.0.0.1:{port}", data=data, proc=proc, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited with {proc.returncode}:\n{hub.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{hub.url}/hub/login", timeout=5) as r:  # noqa: S310
                if r.status == 200:
                    return hub
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)  # waiting on a real process, not on the clock under test
    stop_hub(hub)
    raise RuntimeError(f"the hub did not answer within {timeout}s:\n{hub.log()[-3000:]}")


def stop_hub(hub: RealHub) -> None:
    hub.proc.terminate()
    try:
        hub.proc.wait(30)
    except subprocess.TimeoutExpired:
        hub.proc.kill()
        hub.proc.wait()
    remove_accounts(hub.data)
    left = managed_services_of(hub.proc.pid, timeout=30)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    # even a hub stopped while it starts (before JupyterHub's own clean-up is armed) or
    # killed leaves none of its managed services behind (``mlfactory.model_api.lifeline``)
    assert not left, f"the hub's managed services outlived it: {left}"


def managed_services_of(hub_pid: int, timeout: float) -> list[int]:
    """The processes still running ``timeout`` s after the hub ``hub_pid`` ended that it
    started as managed services (their environment names it)."""
    from mlfactory.model_api.lifeline import HUB_PID

    marker = f"{HUB_PID}={hub_pid}".encode()
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                    if not _zombie(int(proc.name)):
                        left.append(int(proc.name))
            except OSError:
                continue  # gone meanwhile
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def remove_accounts(data: Path) -> None:
    """As root the hub made an OS account per user, homed in ``data``: remove them (an
    account whose server still runs stays)."""
    for account in pwd.getpwall():
        if account.pw_dir.startswith(f"{data}/"):
            subprocess.run(["userdel", account.pw_name], check=False, capture_output=True)


def _server_running(pid: int, pid_start: str) -> bool:
    """``pid`` is still that server (not a reused pid) and not a zombie nobody reaps."""
    from mlfactory.spawner.journal import process_start

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False  # gone, or no process at all (a container's record has pid 0)
    return state != "Z" and process_start(pid) == pid_start


def stop_servers(data: Path, timeout: float = 30) -> None:
    """Stop the servers a stopped hub left running (the shipped config keeps them across
    hub restarts), found in the spawner's journal, then the accounts they ran as."""
    import signal

    from mlfactory.spawner.journal import Journal

    records = Journal(data / "runtime" / "servers").records()
    # pid 0 (a container's record) would make killpg signal this very process group
    running = [
        r
        for r in records
        if r.stopped_at is None and r.pid > 0 and _server_running(r.pid, r.pid_start)
    ]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for r in running:
            try:
                os.killpg(r.pid, sig)  # the server leads its own session and process group
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [r for r in running if _server_running(r.pid, r.pid_start)]
            if not running:
                break
            time.sleep(0.2)  # waiting on real processes
    stop_daemons(data)
    remove_accounts(data)


def stop_daemons(data: Path, timeout: float = 10) -> None:
    """Stop the daemons the hub started rooted in ``data`` (with the shipped config, a
    registry on 127.0.0.1:5055 when none answered there: ``engine.start_local_daemons``).
    They outlive a hub by design, as a container engine would; a test's hub folder is
    deleted, so its registry would serve a deleted folder and hold the port."""
    root = f"{data}/".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            pid = int(proc.name) if proc.name.isdigit() else 0
            if pid and pid != os.getpid() and root in (proc / "cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue  # gone meanwhile
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.1)  # waiting on real processes
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    """A process that ended and that nobody reaps (this VM's init does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def hub_data_dir(name: str) -> Path:
    """A fresh state folder the servers' OS accounts can pass through (pytest's own
    tmp_path sits under a 0700 folder); remove it with ``shutil.rmtree``."""
    data = Path(tempfile.mkdtemp(prefix=f"mlf-e2e-{name}-", dir="/tmp"))
    data.chmod(0o711)
    return data


def prepare_hub(
    name: str, config: dict | None = None, accounts: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """A fresh data folder with ``accounts`` (name → password, approved) and ``config``
    (default: the shipped example) written beside it; returns (data, config path).
    Remove both with ``discard_hub``."""
    import yaml
    from mlfactory.hub.account_store import AccountStore
    from mlfactory.hub.accounts import hash_password
    from mlfactory.hub.platform_config import PACKAGED_CONFIG, accounts_db_url, prepare_data_dir

    data = hub_data_dir(name)
    config_path = data.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(config or yaml.safe_load(PACKAGED_CONFIG.read_text())))
    if accounts:
        prepare_data_dir(data)
        store = AccountStore(accounts_db_url(data))
        for user, password in accounts.items():
            store.create_account(user, hash_password(password), authorized=True)
        store.close()
    return data, config_path


def example_config() -> dict:
    """The shipped platform config as data, for a test to change."""
    import yaml
    from mlfactory.hub.platform_config import PACKAGED_CONFIG

    return yaml.safe_load(PACKAGED_CONFIG.read_text())


def discard_hub(hub: RealHub, config_path: Path) -> None:
    stop_hub(hub)
    stop_servers(hub.data)
    shutil.rmtree(hub.data, ignore_errors=True)
    config_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def real_hub() -> Iterator[RealHub]:
    hub = start_hub(hub_data_dir("hub"))
    yield hub
    stop_hub(hub)
    stop_servers(hub.data)
    shutil.rmtree(hub.data, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the test command installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def log_in(page, hub: RealHub, username: str, password: str, next_url: str = "") -> None:
    page.goto(f"{hub.url}/hub/login{'?next=' + next_url if next_url else ''}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


def api_token(page, hub: RealHub, user: str) -> str:
    """A 15-minute hub API token for ``user``, made through the logged-in ``page``."""
    import json

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return page.request.post(
        f"{hub.url}/hub/api/users/{user}/tokens",
        data=json.dumps({"note": "e2e test", "expires_in": 900}),
        headers={"X-XSRFToken": cookies["_xsrf"], "Content-Type": "application/json"},
    ).json()["token"]


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


# Playwright's sync API keeps its own event loop running in this thread; the
# jupyter-server plugin's autouse loop fixtures would try to close it. These tests
# use no jupyter-server fixtures, so switch those two off here.
@pytest.fixture
def jp_asyncio_loop():
    return None


@pytest.fixture
def jp_server_cleanup():
    return None


@dataclass
class RealLab:
    """A standalone `jupyter lab` (the installed labextension and server extension, no hub)."""

    url: str  # ends without a slash
    token: str
    root: Path  # the server's root_dir: the workspace the panels work on
    proc: subprocess.Popen
    log_path: Path

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}/lab{'/tree/' + path if path else ''}?token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_lab(
    root: Path, *extra_args: str, env: dict | None = None, timeout: float = 60
) -> RealLab:
    """Start `jupyter lab` on a free port with `root` as its root and HOME; wait until ready."""
    port = free_port()
    token = os.urandom(16).hex()
    root.mkdir(parents=True, exist_ok=True)
    log_path = root.parent / f"lab-{port}.log"
    full_env = {
        **os.environ,
        "HOME": str(root),
        "JUPYTER_CONFIG_DIR": str(root.parent / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(root.parent / "jupyter-runtime"),
        "GIT_AUTHOR_NAME": "Lab Tester",
        "GIT_AUTHOR_EMAIL": "lab@example.com",
        "GIT_COMMITTER_NAME": "Lab Tester",
        "GIT_COMMITTER_EMAIL": "lab@example.com",
        **(env or {}),
    }
    full_env.pop("JUPYTERHUB_USER", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra_args,
    ]
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    lab = RealLab(f"http://127.0.0.1:{port}", token, root, proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{lab.log()}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=2):
                return lab
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"jupyter lab did not answer within {timeout}s:\n{lab.log()}")


def stop_lab(lab: RealLab) -> None:
    lab.proc.terminate()
    try:
        lab.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        lab.proc.kill()
        lab.proc.wait()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[RealLab]:
    """A fresh `jupyter lab` whose root (and HOME) is an empty tmp folder `work/`."""
    server = start_lab(tmp_path / "work")
    yield server
    stop_lab(server)
