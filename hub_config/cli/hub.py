"""``mlfactory hub`` and ``mlfactory config check``: the commands that work on this machine.

``mlfactory hub`` is what the run command calls: it validates the platform config, makes
sure the first admin can log in, prints how, and then replaces itself with JupyterHub
running the shipped config. Both print warnings for what is valid but probably a mistake
(``config_warnings``); ``config check --strict`` fails on them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from mlfactory.spawner.price_order import price_inversions

from ..platform_config import (
    ConfigError,
    PlatformConfig,
    accounts_db_url,
    admin_username,
    choose_backend,
    data_dir,
    engine_dir,
    hub_address,
    load_platform_config,
    prepare_data_dir,
)

SHIPPED_HUB_CONFIG = Path(__file__).parent.parent / "jupyterhub_config.py"


def _config_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_platform_config(args.file)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    warnings = config_warnings(cfg)
    for warning in warnings:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    counted = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    if warnings and args.strict:
        print(f"{args.file}: {counted}, failed because of --strict", file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK — {len(cfg.profiles)} profiles, {len(cfg.images)} images, "
        f"{len(cfg.groups)} groups; default profile {cfg.default_profile.slug!r}"
        + (f"; {counted}" if warnings else "")
    )
    return 0


def config_warnings(cfg: PlatformConfig) -> list[str]:
    """What is valid but probably a mistake: today, a bigger profile priced below a smaller
    one (users would pick the bigger one, and the ledger would charge the smaller price)."""
    inversions = price_inversions(cfg.profiles, cfg.pricing)
    return [i.message(cfg.platform.currency) for i in inversions]


def bootstrap_admin(accounts_db_url: str, username: str, password: str | None) -> str | None:
    """Make sure the first admin can log in. Returns a generated password to print, if any.

    An explicit password (``MLFACTORY_ADMIN_PASSWORD``) is applied every time, so scripts
    can rely on it; otherwise a random one is made only when the account is new.
    Raises ValueError when the name or the explicit password breaks the account policy.
    """
    from .. import accounts
    from ..account_store import AccountStore

    store = AccountStore(accounts_db_url)
    try:
        if password:
            if not store.ensure_admin(username, password):
                store.set_password(username, accounts.hash_password(password))
                store.authorize(username)
            return None
        generated = secrets.token_urlsafe(12)
        if store.ensure_admin(username, generated):
            return generated
        account = store.get(username)
        if account is not None and not account.is_authorized:
            raise ValueError(
                "a sign-up with this name is waiting for approval, so it cannot be the admin; "
                "set MLFACTORY_ADMIN_PASSWORD to take the name over, or choose another "
                "MLFACTORY_ADMIN_USER"
            )
        return None
    finally:
        store.close()


def backend_banner(platform: PlatformConfig) -> str:
    """Where servers will run and why, for the start banner (as the hub config decides)."""
    from mlfactory.spawner.engine import containers_problem, start_local_daemons

    if platform.platform.backend == "kubernetes":
        return "in Kubernetes pods (platform.backend is 'kubernetes')"
    if platform.platform.backend != "local" and os.environ.get("MLFACTORY_BACKEND") != "local":
        for line in start_local_daemons(platform, engine_dir()):
            print(f"  Started {line}", flush=True)
    backend, why = choose_backend(platform, containers_problem)
    if backend == "container":
        return f"in containers ({why})"
    return f"as local processes ({why})"


def _hub(args: argparse.Namespace) -> int:
    try:
        platform = load_platform_config()
    except ConfigError as e:
        print(f"mlfactory: the platform config is invalid:\n{e}", file=sys.stderr)
        return 2
    for warning in config_warnings(platform):  # valid, so the hub starts; but say so
        print(f"mlfactory: warning: {warning}", file=sys.stderr)
    try:
        ip, port = hub_address()
    except ValueError:
        port_text = os.environ.get("MLFACTORY_PORT")
        print(f"mlfactory: MLFACTORY_PORT={port_text!r} is not a port number", file=sys.stderr)
        return 2
    data = data_dir()
    prepare_data_dir(data)
    admin = admin_username()
    explicit = os.environ.pop("MLFACTORY_ADMIN_PASSWORD", None)  # not for the hub's children
    try:
        generated = bootstrap_admin(
            accounts_db_url(data),
            admin,
            explicit,
        )
    except ValueError as e:
        print(f"mlfactory: cannot set up the admin account {admin!r}: {e}", file=sys.stderr)
        return 2
    print(f"\n  mlfactory hub: http://{ip}:{port}/", flush=True)
    print(f"  Servers run {backend_banner(platform)}", flush=True)
    if generated:
        print(f"  First admin: log in as '{admin}' with password: {generated}", flush=True)
        print("  (shown once; change it at /hub/change-password)\n", flush=True)
    elif explicit:
        print(f"  Admin: '{admin}', password from MLFACTORY_ADMIN_PASSWORD\n", flush=True)
    else:
        print(f"  Admin: '{admin}' (password as printed when it was created)\n", flush=True)
    # The proxy and the servers' jupyterhub-singleuser live next to this interpreter.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    os.environ["MLFACTORY_DATA"] = str(data)
    if os.environ.get("MLFACTORY_CONFIG"):
        os.environ["MLFACTORY_CONFIG"] = str(Path(os.environ["MLFACTORY_CONFIG"]).resolve())
    os.chdir(data)
    argv = [
        sys.executable,
        "-m",
        "jupyterhub",
        "-f",
        str(SHIPPED_HUB_CONFIG),
        *args.jupyterhub_args,
    ]
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with the hub
    return 0  # pragma: no cover


def add_parsers(sub: argparse._SubParsersAction) -> None:
    hub = sub.add_parser(
        "hub",
        help="start JupyterHub with the shipped mlfactory config",
        description="Start JupyterHub; further arguments (e.g. --JupyterHub.hub_port=8082) "
        "are passed on to jupyterhub.",
    )
    hub.set_defaults(func=_hub)
    config = sub.add_parser("config", help="work with the platform config file")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a platform config file")
    check.add_argument("file", help="path to an mlfactory.yaml")
    check.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when there are warnings (e.g. a bigger profile priced below "
        "a smaller one), not only on errors",
    )
    check.set_defaults(func=_config_check)
