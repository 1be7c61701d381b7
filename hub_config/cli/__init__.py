"""The ``mlfactory`` command line: start the hub, check a platform config, manage budgets.

One module per group of commands: ``hub`` (``mlfactory hub`` and ``mlfactory config
check``, on this machine), ``budgets`` (an admin's client of the platform service's REST
API), ``components`` (a maintainer's, for reviewing the components users publish) and
``images`` (an admin's: build, push, list and check the workspace images);
``client`` holds what the service's clients share. This module builds the parser from them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import budgets, components, hub, images
from .budgets import (
    budgets_request,
    format_alerts,
    format_budgets,
    format_standing,
    format_usage,
    parse_thresholds,
)
from .client import (
    ApiReply,
    ApiRequest,
    ServiceError,
    call_service,
    error_text,
    read_token,
    render_table,
    service_url,
)
from .components import components_request, format_submission, format_submissions
from .hub import bootstrap_admin

__all__ = [
    "ApiReply",
    "ApiRequest",
    "ServiceError",
    "bootstrap_admin",
    "budgets_request",
    "build_parser",
    "call_service",
    "components_request",
    "error_text",
    "format_alerts",
    "format_budgets",
    "format_standing",
    "format_submission",
    "format_submissions",
    "format_usage",
    "main",
    "parse_thresholds",
    "read_token",
    "render_table",
    "service_url",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlfactory", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    hub.add_parsers(sub)
    budgets.add_parser(sub)
    components.add_parser(sub)
    images.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "hub":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.jupyterhub_args = extra
    return args.func(args)
