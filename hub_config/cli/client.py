"""What every verb that talks to the platform service shares: the request and its reply, the
hub API token, errors an admin can act on, the ``--url``/``--token-file`` options, and the
table output.

The command line reaches the service over HTTP only (``/services/mlfactory/api/``),
authenticated with a hub API token, as any other client would.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_SERVICE_URL = "http://127.0.0.1:8000/services/mlfactory"


class ServiceError(Exception):
    """Something to tell the admin on stderr (exit status 1); ``status`` when HTTP answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # below the service URL, with any query string
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class ApiReply:
    status: int
    content_type: str
    body: bytes = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def service_url(given: str | None, environ: Mapping[str, str]) -> str:
    return given or environ.get("MLFACTORY_SERVICE_URL") or DEFAULT_SERVICE_URL


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; the columns in ``right`` aligned right (numbers)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        out = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)]) + "\n"


def money(x: float) -> str:
    return f"{x:,.2f}"


def when(iso: str | None) -> str:
    """``2026-12-01T00:00:00Z`` → ``2026-12-01 00:00 UTC``."""
    if not iso:
        return "-"
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def error_text(reply: ApiReply, url: str) -> str:
    """The service's ``{"error", "field"}`` message, or what else answered and what to check."""
    try:
        payload = json.loads(reply.body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return payload["error"]
    hint = ""
    if reply.status in (301, 302, 303, 307, 308, 404):
        hint = f"; is {url!r} the platform service's URL (ending in /services/mlfactory)?"
    elif reply.status in (502, 503, 504):
        hint = "; is the platform service running? (see the hub's log)"
    return f"HTTP {reply.status} from the server{hint}"


def read_token(token_file: str | None, environ: Mapping[str, str]) -> str:
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ServiceError(f"cannot read the token file {token_file}: {e.strerror}") from None
        if not token:
            raise ServiceError(f"the token file {token_file} is empty")
        return token
    token = environ.get("JUPYTERHUB_API_TOKEN", "").strip()
    if not token:
        raise ServiceError(
            "no hub API token: set JUPYTERHUB_API_TOKEN or pass --token-file "
            "(create a token at /hub/token)"
        )
    return token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would resend the Authorization header to wherever a redirect points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def call_service(base_url: str, token: str, req: ApiRequest, timeout: float = 30) -> ApiReply:
    """Make ``req`` against the service; raise ServiceError for errors and unreachable URLs."""
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise ServiceError(f"--url must be an http:// or https:// URL, not {base_url!r}")
    url = base_url.rstrip("/") + req.path
    data = None if req.body is None else json.dumps(req.body).encode()
    request = urllib.request.Request(url, data=data, method=req.method)  # noqa: S310 - checked
    request.add_header("Authorization", f"token {token}")
    request.add_header("Accept", "application/json, text/csv")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as resp:
            return ApiReply(resp.status, resp.headers.get("Content-Type", ""), resp.read())
    except urllib.error.HTTPError as e:
        reply = ApiReply(e.code, e.headers.get("Content-Type", ""), e.read())
        raise ServiceError(error_text(reply, base_url), e.code) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ServiceError(
            f"cannot reach the platform service at {url}: {reason}. Check --url or "
            "MLFACTORY_SERVICE_URL, and that the hub and its mlfactory service are running."
        ) from None


class _RefuseToken(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        # Not echoed: the value is a secret that would also show in `ps` and shell history.
        parser.error(
            "a token on the command line shows in `ps`; set JUPYTERHUB_API_TOKEN "
            "or use --token-file"
        )


def service_options() -> argparse.ArgumentParser:
    """--url and --token-file, shared by the verbs that call the platform service."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--url",
        help=f"the platform service's URL (default: $MLFACTORY_SERVICE_URL, else "
        f"{DEFAULT_SERVICE_URL})",
    )
    common.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the hub API token from this file (default $JUPYTERHUB_API_TOKEN)",
    )
    common.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)
    return common
