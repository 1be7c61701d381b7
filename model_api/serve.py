"""``python -m mlfactory.model_api.serve``: serve models from a repository over HTTP.

Standalone (token auth):
    MLFACTORY_MODEL_API_TOKEN=... python -m mlfactory.model_api.serve --repository /srv/models
As a JupyterHub service (hub auth, one scope per model; the hub sets JUPYTERHUB_* variables):
    python -m mlfactory.model_api.serve --repository /srv/models --auth hub
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlparse

from tornado.httpserver import HTTPServer

from . import resolver
from .auth import Authorizer, HubScopeAuth, NoAuth, TokenAuth
from .lifeline import exit_with_hub
from .package import ModelRepository
from .server import ModelServer
from .store import load_repository

TOKEN_ENV = "MLFACTORY_MODEL_API_TOKEN"  # noqa: S105 - a variable name, not a secret


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlfactory.model_api.serve",
        description="Serve mlfactory model packages (Open Inference Protocol + /predict).",
    )
    p.add_argument("--repository", required=True, type=Path, help="model repository root")
    p.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="serve only this model (repeatable); default: every model in the repository",
    )
    p.add_argument("--host", default=None, help="default 127.0.0.1 (hub mode: from the hub)")
    p.add_argument("--port", type=int, default=None, help="default 8080 (hub mode: from the hub)")
    p.add_argument(
        "--auth",
        choices=["token", "hub", "none"],
        default="token",
        help=f"token: bearer token from ${TOKEN_ENV} or --token-file; hub: JupyterHub "
        "service auth with a scope per model; none: no auth (localhost only)",
    )
    p.add_argument("--token-file", type=Path, help="file with one accepted token per line")
    p.add_argument(
        "--hub-auth-cache-seconds",
        type=float,
        default=5.0,
        help="hub mode: how long the hub's answer for a token is reused (never past the "
        "token's expiry; 0: ask the hub on every request). A deleted user's token stops "
        "working within this time",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (504 after)")
    p.add_argument("--workers", type=int, default=4, help="model threads")
    p.add_argument(
        "--execution",
        choices=["auto", "thread"],
        default="auto",
        help="auto: small requests to models proven fast run on the event loop, the rest in "
        "threads; thread: always in threads (the timeout then holds even for a model that "
        "hangs after being fast)",
    )
    p.add_argument("--max-pending", type=int, default=None, help="503 beyond this many calls")
    p.add_argument("--base-url", default=None, help="path prefix (hub mode: service prefix)")
    p.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body")
    p.add_argument(
        "--reload-interval",
        type=float,
        default=2.0,
        help="seconds between checks of the repository for new versions and moved aliases "
        "(served without a restart); 0: never reload",
    )
    p.add_argument("--log-level", default="INFO")
    return p


def make_authorizer(args: argparse.Namespace) -> Authorizer:
    if args.auth == "hub":
        return HubScopeAuth(cache_seconds=args.hub_auth_cache_seconds)
    if args.auth == "none":
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("--auth none is only allowed with --host 127.0.0.1")
        return NoAuth()
    tokens: list[str] = []
    if args.token_file:
        tokens += [t.strip() for t in args.token_file.read_text().splitlines() if t.strip()]
    if os.environ.get(TOKEN_ENV):
        tokens.append(os.environ[TOKEN_ENV])
    if not tokens:
        raise SystemExit(
            f"token auth needs a token: set ${TOKEN_ENV} or pass --token-file "
            "(tokens are never taken from the command line, which other users can read)"
        )
    return TokenAuth(tokens)


def _hub_defaults(args: argparse.Namespace) -> None:
    """In hub mode, bind where the hub routes this service (JUPYTERHUB_SERVICE_URL)."""
    url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if args.auth == "hub" and url:
        u = urlparse(url)
        args.host = args.host or u.hostname
        args.port = args.port or u.port
    if args.auth == "hub" and args.base_url is None:
        args.base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    args.host = args.host or "127.0.0.1"
    args.port = args.port or 8080
    args.base_url = args.base_url or "/"


async def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    _hub_defaults(args)
    authorizer = make_authorizer(args)
    repo = ModelRepository(args.repository)
    server = ModelServer(
        authorizer=authorizer,
        timeout=args.timeout,
        workers=args.workers,
        max_pending=args.max_pending,
        base_url=args.base_url,
        execution=args.execution,
    )
    http = HTTPServer(
        server.app(), max_body_size=int(args.max_body_mb * 1024 * 1024), xheaders=False
    )
    http.listen(args.port, args.host)
    logging.getLogger("mlfactory.model_api").info(
        "listening on http://%s:%s%s (auth: %s)", args.host, args.port, args.base_url, args.auth
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # answer health checks (503 not ready) while loading; a package that cannot load is
    # logged and refused with its reason, and the other models are served
    generation = repo.generation()
    await server.load(lambda: load_repository(repo, args.models))
    if server.store.loading_error:
        # the repository itself could not be read: fail where a supervisor sees it
        print(f"error: {server.store.loading_error}", file=sys.stderr)
        http.stop()
        server.runner.shutdown()
        return 1
    watcher = None
    if args.reload_interval > 0:
        watcher = asyncio.create_task(
            server.watch(repo, args.models, interval=args.reload_interval, since=generation)
        )
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    http.stop()
    server.runner.shutdown()
    return 0


def main(argv: list[str] | None = None) -> None:
    exit_with_hub()  # as the hub's managed service, end with the hub however it ends
    resolver.install()  # its token checks ask the hub's API at an IP literal
    args = parser().parse_args(argv)
    try:
        sys.exit(asyncio.run(run(args)))
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
