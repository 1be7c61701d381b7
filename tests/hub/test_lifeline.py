"""A hub-managed service ends with its hub, however the hub ends (``mlfactory.model_api.lifeline``).

The processes here are real: a stand-in hub (a Python parent) starts the real models
service and platform-service entry points, and is then killed with SIGKILL, which no
clean-up of JupyterHub's survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlfactory.hub.hubconfig import apply_platform
from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
from mlfactory.model_api import lifeline
from traitlets.config import Config

from tests.ports import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

# The stand-in hub: starts the service with the hub's environment, prints its pid, waits.
HUB = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from mlfactory.model_api.lifeline import hub_env
    env = {**os.environ, **(hub_env() if sys.argv[1] == "managed" else {})}
    child = subprocess.Popen(sys.argv[2:], env=env)
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def start_under_hub(mode: str, command: list[str]) -> tuple[subprocess.Popen, int]:
    hub = subprocess.Popen(
        [sys.executable, "-c", HUB, mode, *command], stdout=subprocess.PIPE, text=True
    )
    return hub, int(hub.stdout.readline())


def models_service(tmp_path: Path) -> list[str]:
    repo = tmp_path / "models"
    repo.mkdir()
    return [sys.executable, "-m", "mlfactory.model_api.serve", "--repository", str(repo),
            "--auth", "none", "--port", str(free_port())]  # fmt: skip


def wait_started(pid: int, marker: str, timeout: float = 60.0) -> None:
    """Until the service has run its ``main`` (the tie is made there, after the imports)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert marker.encode() in cmdline or not cmdline  # empty for a moment after exec
        status = Path(f"/proc/{pid}/status").read_text()
        # SIGTERM is caught once the service's loop handles it: main has run by then
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{marker} did not start")


@contextmanager
def service_whose_hub_was_killed(mode: str, tmp_path: Path) -> Iterator[int]:
    """The models service's pid, started by a stand-in hub (``mode``: managed or by-hand)
    that was then killed with SIGKILL."""
    hub, service = start_under_hub(mode, models_service(tmp_path))
    try:
        wait_started(service, "mlfactory.model_api.serve")
        hub.kill()
        hub.wait()
        yield service
    finally:
        hub.kill()
        if alive(service):
            os.kill(service, signal.SIGKILL)


def test_the_models_service_ends_when_its_hub_is_killed(tmp_path):
    with service_whose_hub_was_killed("managed", tmp_path) as service:
        assert wait_gone(service), "the models service outlived its hub"


def test_a_service_started_without_a_hub_is_left_alone(tmp_path):
    # the same entry point run by hand (or as its own pod) has no hub to follow
    with service_whose_hub_was_killed("by-hand", tmp_path) as service:
        assert not wait_gone(service, timeout=2.0), "a service nobody manages was stopped"


def test_the_platform_service_ties_itself_before_it_starts():
    # a hub already gone when the service gets to its main: the service stops at once
    # instead of running beside the next hub's
    gone = subprocess.Popen(["true"])
    gone.wait()
    env = {**os.environ, lifeline.HUB_PID: str(gone.pid)}
    code = "from mlfactory.service.app import main; main(['--help-all'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGTERM, done.stderr[-2000:]


def test_exit_with_hub_needs_the_hubs_pid():
    assert lifeline.exit_with_hub({}) is False
    assert lifeline.exit_with_hub({lifeline.HUB_PID: "not-a-pid"}) is False


def test_the_hub_config_gives_both_managed_services_its_pid(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path))
    c = Config()
    apply_platform(c, load_platform_config(PACKAGED_CONFIG), {})
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert {"mlfactory", "models"} <= set(services)
    for name in ("mlfactory", "models"):
        assert services[name]["environment"][lifeline.HUB_PID] == str(os.getpid()), name
