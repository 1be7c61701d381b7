"""Idle shutdown, the server's side: report what runs here, and proxy the warning and the
"Keep running" button to the platform service.

The hub's own ``last_activity`` misleads the culling policy both ways: a busy kernel with
no browser attached produces none (jupyterhub #1498) and an open tab polling the server
produces plenty (2i2c #2232). So every ``report_interval`` seconds this server tells the
service what actually runs: its kernels and their state, its terminals, when a file was
last saved, and, where it was given GPUs, their utilisation.

Nothing here touches the server's own activity clock: the reporter is not a request, the
two handlers opt out of tracking, and no setting ending in ``_last_activity`` is written
(jupyter_server counts every such setting as activity).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.ioloop import PeriodicCallback

from . import service_client
from .handlers import MLFactoryAPIHandler
from .service_client import Answer, Target, Wording

log = logging.getLogger(__name__)

SERVER_NAME_ENV = "JUPYTERHUB_SERVER_NAME"
GPU_ENV = "CUDA_VISIBLE_DEVICES"
NVIDIA_SMI = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
NVIDIA_SMI_TIMEOUT_S = 5.0
REPORT_TIMEOUT_S = 5.0
# CUDA reads CUDA_VISIBLE_DEVICES up to the first entry that names no device
_DEVICE = re.compile(r"\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+")

REPORT_WORDING = Wording(
    endpoint="activity",
    unreachable="this server's activity cannot be reported",
    not_configured="activity is not reported",
)
STATUS_WORDING = Wording(
    endpoint="idle-shutdown status",
    unreachable="this server's idle-shutdown status cannot be shown",
    not_configured="idle-shutdown warnings are not shown here",
)
KEEPALIVE_WORDING = Wording(
    endpoint="keep-alive",
    unreachable=(
        "'Keep running' did not reach it and the server may still be stopped at the "
        "announced time; save your work"
    ),
    not_configured="'Keep running' is not available here",
)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def visible_gpus(environ: Mapping[str, str]) -> list[str]:
    """The devices CUDA_VISIBLE_DEVICES gives this server; [] when unset, empty or "-1"."""
    devices: list[str] = []
    for entry in environ.get(GPU_ENV, "").split(","):
        entry = entry.strip()
        if not _DEVICE.fullmatch(entry):
            break
        devices.append(entry)
    return devices


def parse_utilisation(output: str) -> list[float]:
    """Percentages from nvidia-smi's csv lines; "[N/A]" (MIG, some boards) is skipped."""
    values: list[float] = []
    for line in output.splitlines():
        try:
            values.append(float(line.strip()))
        except ValueError:
            continue
    return values


class ActivityReporter:
    """Collects this server's activity and posts it to the platform service.

    ``report()`` does one round and is what the tests call; ``start()`` repeats it every
    ``interval_s`` seconds. Neither raises: a failed round is logged once per outage.
    """

    def __init__(
        self,
        serverapp: Any,
        interval_s: float = 60.0,
        nvidia_smi: Sequence[str] = tuple(NVIDIA_SMI),
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.serverapp = serverapp
        self.interval_s = interval_s
        self.nvidia_smi = list(nvidia_smi)
        self.environ = environ
        self.last_save: str | None = None
        self.callback: PeriodicCallback | None = None
        self._report_failing = False
        self._gpu_failing = False
        self._first: asyncio.Future[bool] | None = None

    # --- collecting ---------------------------------------------------------------------

    def install_save_hook(self, contents_manager: Any) -> None:
        # appended next to a configured `post_save_hook`, which keeps running
        contents_manager.register_post_save_hook(self.on_save)

    def on_save(self, model: Any = None, os_path: str = "", **_: Any) -> None:
        # a raise here would fail the user's save with a 500: stay trivially safe
        self.last_save = _now_iso()

    async def kernels(self) -> list[dict[str, Any]]:
        manager = getattr(self.serverapp, "kernel_manager", None)
        if manager is None:
            return []
        models = await ensure_async(manager.list_kernels())
        return [
            {"execution_state": m.get("execution_state"), "last_activity": m.get("last_activity")}
            for m in models
        ]

    async def terminals(self) -> list[dict[str, Any]]:
        # present only when jupyter_server_terminals is enabled
        manager = self.serverapp.web_app.settings.get("terminal_manager")
        if manager is None:
            return []
        models = await ensure_async(manager.list())
        return [{"last_activity": m.get("last_activity")} for m in models]

    async def gpu_util(self) -> list[float] | None:
        """Utilisation of this server's GPUs in percent, or None without GPUs or a reading."""
        devices = visible_gpus(self.environ)
        if not devices:
            return None
        # nvidia-smi lists every GPU of the host; on a shared host only ours count
        command = [*self.nvidia_smi, f"--id={','.join(devices)}"]
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            return self._gpu_failed(f"{command[0]} cannot run: {e}")
        try:
            out, err = await asyncio.wait_for(proc.communicate(), NVIDIA_SMI_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return self._gpu_failed(f"{command[0]} did not answer in {NVIDIA_SMI_TIMEOUT_S:g}s")
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip()[:200]
            return self._gpu_failed(f"{command[0]} exited {proc.returncode}: {detail}")
        values = parse_utilisation(out.decode(errors="replace"))
        if not values:
            return self._gpu_failed(f"{command[0]} reported no utilisation for {devices}")
        if self._gpu_failing:
            log.info("GPU utilisation can be read again.")
            self._gpu_failing = False
        return values

    def _gpu_failed(self, problem: str) -> None:
        # without a reading the policy judges by kernels and files, as on a CPU server
        if not self._gpu_failing:
            log.warning("Cannot read GPU utilisation for idle shutdown: %s", problem)
            self._gpu_failing = True
        return None

    async def collect(self) -> dict[str, Any]:
        return {
            "server_name": self.environ.get(SERVER_NAME_ENV, ""),
            "kernels": await self.kernels(),
            "terminals": await self.terminals(),
            "last_save": self.last_save,
            "gpu_util": await self.gpu_util(),
        }

    # --- reporting ----------------------------------------------------------------------

    async def report(self) -> bool:
        """Post one report; whether the service took it. Never raises."""
        target = service_client.target_from_env(self.environ)
        if not isinstance(target, Target):
            return False
        try:
            body = await self.collect()
            answer = await service_client.call(
                target.url("activity"),
                target.token,
                REPORT_WORDING,
                method="POST",
                body=body,
                timeout_s=REPORT_TIMEOUT_S,
            )
        except Exception as e:  # a bug here must not stop the next rounds
            log.debug("Activity report failed.", exc_info=True)
            answer = service_client.error(500, "bug", "", f"collecting failed: {e!r}")
        if answer.ok:
            if self._report_failing:
                log.info("Activity reports reach the platform service again.")
                self._report_failing = False
            return True
        if not self._report_failing:
            log.warning(
                "Cannot report activity for idle shutdown (%s); retrying every %gs, logging "
                "again once it works.",
                answer.problem,
                self.interval_s,
            )
            self._report_failing = True
        return False

    def start(self) -> None:
        target = service_client.target_from_env(self.environ)
        if not isinstance(target, Target):
            log.info("Not reporting activity for idle shutdown: %s is unset.", target)
            return
        if self.callback is not None:
            return
        # jitter: thousands of servers started together should not report in lockstep
        self.callback = PeriodicCallback(self.report, self.interval_s * 1000, jitter=0.1)
        self.callback.start()
        # the service hears from a new server at once (kept: a bare task may be collected)
        self._first = asyncio.ensure_future(self.report())

    def stop(self) -> None:
        if self.callback is not None:
            self.callback.stop()
            self.callback = None

    def background(self) -> list[asyncio.Future]:
        """The first report if it is still on its way (cancelled when the server stops)."""
        return [self._first] if self._first is not None and not self._first.done() else []


# --- the endpoints JupyterLab calls ---------------------------------------------------------


class _CullingProxy(MLFactoryAPIHandler):
    auth_resource = "mlfactory:culling"
    # polling the warning or pressing "Keep running" is not work on this server; the
    # service counts the press itself, within its limits
    _track_activity = False

    def _target(self) -> Target | str:
        """The service, or the missing variable; only for the owner (the token is theirs)."""
        self.require_owner()
        return service_client.target_from_env()

    def _reply(self, answer: Answer) -> None:
        if not answer.ok:
            log.warning("Idle-shutdown request failed: %s", answer.problem)
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer.body))

    @property
    def server_name(self) -> str:
        return os.environ.get(SERVER_NAME_ENV, "")


class CullingHandler(_CullingProxy):
    """Whether the service means to stop this server soon, why, and when it last did."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        target = self._target()
        if not isinstance(target, Target):
            return self._reply(service_client.not_configured(target, STATUS_WORDING))
        url = target.url("culling/status", {"server_name": self.server_name})
        self._reply(await service_client.call(url, target.token, STATUS_WORDING))


class KeepAliveHandler(_CullingProxy):
    """The warning's "Keep running" button, for this server only (the body is ignored)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        target = self._target()
        if not isinstance(target, Target):
            return self._reply(service_client.not_configured(target, KEEPALIVE_WORDING))
        answer = await service_client.call(
            target.url("culling/keepalive"),
            target.token,
            KEEPALIVE_WORDING,
            method="POST",
            body={"server_name": self.server_name},
            # 409: no presses left; the service's sentence is the one to show
            passthrough=frozenset({409}),
        )
        self._reply(answer)


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [
    (r"/mlfactory/api/culling", CullingHandler),
    (r"/mlfactory/api/keepalive", KeepAliveHandler),
]
