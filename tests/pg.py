"""A throw-away PostgreSQL cluster for tests and benchmarks (no pytest in here).

``PostgresCluster`` runs ``initdb`` in a fresh temporary directory, starts ``postgres``
listening only on a unix socket in that directory (no TCP port, so nothing to collide
with), with ``fsync=off``, and removes everything on ``stop()``. As root, initdb and
pg_ctl run as the ``postgres`` OS user (initdb refuses root); otherwise as the caller.

    with PostgresCluster() as pg:
        url = pg.create_database("bench")  # postgresql+psycopg://postgres@/bench?host=/tmp/...

The binaries are found through ``MLFACTORY_PG_BINDIR``, ``pg_config --bindir``, ``initdb``
on PATH, or the newest ``/usr/lib/postgresql/*/bin``; ``PostgresUnavailable`` says why
not when none can be used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"
DEFAULT_SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be run here; the message says why."""


def find_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates: list[Path] = []
    if env := os.environ.get("MLFACTORY_PG_BINDIR"):
        candidates.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)

    def version(p: Path) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in p.parent.name.split("."))
        except ValueError:
            return (0,)

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for c in candidates:
        if all((c / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return c
    return None


class PostgresCluster:
    """A private PostgreSQL server in a temporary directory; ``stop()`` removes it."""

    def __init__(self, bindir: Path | None = None, settings: dict[str, str] | None = None):
        self.bindir = bindir or find_bindir()
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.root: Path | None = None
        self.running = False

    # --- where and as whom ------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "start() the cluster first"
        return self.root

    @property
    def data_dir(self) -> Path:
        return self.socket_dir / "data"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", SUPERUSER, "--", *argv]
        return ["su", SUPERUSER, "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in argv)]

    def _run(self, argv: list[str], what: str, timeout: float = 120) -> None:
        try:
            proc = subprocess.run(
                self._as_owner(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.socket_dir,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PostgresUnavailable(f"{what} failed: {e}") from e
        if proc.returncode != 0:
            log = ""
            logfile = self.socket_dir / "postgres.log"
            if logfile.exists():
                log = logfile.read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(
                f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()}\n{log}".strip()
            )

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> PostgresCluster:
        if self.bindir is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: install "
                "PostgreSQL (e.g. apt-get install postgresql) or set MLFACTORY_PG_BINDIR"
            )
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root, and there is no {SUPERUSER!r} OS user to run initdb as "
                    "(initdb refuses root)"
                ) from None
        # a short path: a unix socket's path must fit in ~107 bytes
        base = os.environ.get("TMPDIR", "/tmp")
        if len(base) > 60 or not os.path.isdir(base):
            base = "/tmp"
        self.root = Path(tempfile.mkdtemp(prefix="mlf-pg-", dir=base))
        atexit.register(self.stop)
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            "initdb",
        )
        lines = [f"{k} = {v}" for k, v in self.settings.items()]
        lines.append(f"unix_socket_directories = '{self.socket_dir}'")
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("\n# mlfactory tests\n" + "\n".join(lines) + "\n")
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.socket_dir / "postgres.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "pg_ctl start",
        )
        self.running = True
        return self

    def stop(self) -> None:
        """Stop the server (immediately: nothing here needs to survive) and remove its files."""
        if self.root is None:
            return
        if self.running:
            with contextlib.suppress(PostgresUnavailable):
                self._run(
                    [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w"]
                    + ["stop"],
                    "pg_ctl stop",
                    timeout=60,
                )
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def pg_ctl(self, action: str, *args: str, timeout: float = 60) -> None:
        """Run ``pg_ctl <action>`` on this cluster and wait for it (fault tests stop and
        start the server under a running service, e.g. ``pg_ctl("stop", "-m", "fast")``)."""
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60"]
        if action in ("start", "restart"):
            argv += ["-l", str(self.socket_dir / "postgres.log")]
        self._run([*argv, *args, action], f"pg_ctl {action}", timeout=timeout)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- databases --------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL of ``dbname`` on this cluster (psycopg 3, over the socket)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?host={self.socket_dir}"

    def create_database(self, dbname: str) -> str:
        """Create ``dbname`` (letters, digits, underscores) and return its SQLAlchemy URL."""
        if not dbname.replace("_", "").isalnum():
            raise ValueError(f"{dbname!r}: use letters, digits and underscores")
        import psycopg

        with psycopg.connect(
            host=str(self.socket_dir), user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
