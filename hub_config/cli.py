"""The ``mlfactory`` command line: start the hub, check a platform config, manage budgets.

``mlfactory hub`` is what the run command calls: it validates the platform
config, makes sure the first admin can log in, prints how, and then replaces
itself with JupyterHub running the shipped config.

``mlfactory budgets ...`` is an admin's client of the platform service's REST API
(``/services/mlfactory/api/``), authenticated with a hub API token; ``mlfactory components
...`` is a maintainer's, for reviewing the components users publish.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .hubconfig import DEFAULT_PORT, accounts_db_url, admin_username, prepare_data_dir
from .platform_config import ConfigError, data_dir, load_platform_config

SHIPPED_HUB_CONFIG = Path(__file__).with_name("jupyterhub_config.py")


def _config_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_platform_config(args.file)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK — {len(cfg.profiles)} profiles, {len(cfg.images)} images, "
        f"{len(cfg.groups)} groups; default profile {cfg.default_profile.slug!r}"
    )
    return 0


def bootstrap_admin(accounts_db_url: str, username: str, password: str | None) -> str | None:
    """Make sure the first admin can log in. Returns a generated password to print, if any.

    An explicit password (``MLFACTORY_ADMIN_PASSWORD``) is applied every time, so scripts
    can rely on it; otherwise a random one is made only when the account is new.
    Raises ValueError when the name or the explicit password breaks the account policy.
    """
    from . import accounts
    from .account_store import AccountStore

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


def _hub(args: argparse.Namespace) -> int:
    try:
        load_platform_config()
    except ConfigError as e:
        print(f"mlfactory: the platform config is invalid:\n{e}", file=sys.stderr)
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
    port = os.environ.get("MLFACTORY_PORT") or DEFAULT_PORT
    ip = os.environ.get("MLFACTORY_IP") or "127.0.0.1"
    print(f"\n  mlfactory hub: http://{ip}:{port}/", flush=True)
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


# --- budgets: a client of the platform service's REST API ----------------------------------

DEFAULT_SERVICE_URL = "http://127.0.0.1:8000/services/mlfactory"
KIND_ORDER = ("user", "group", "project")
DIMENSIONS = ("user", "group", "project", "profile", "day", "server")


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


def parse_thresholds(text: str) -> list[float]:
    """``"0.5,0.8,1"`` or ``"50%,80%,100%"`` → fractions; ``""`` → none (no alerts)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            value = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a fraction; use e.g. 0.5,0.8,1 or 50%,80%,100%"
            ) from None
        out.append(value)
    return out


def parse_amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount; use e.g. 250")
    return value


def service_url(given: str | None, environ: Mapping[str, str]) -> str:
    return given or environ.get("MLFACTORY_SERVICE_URL") or DEFAULT_SERVICE_URL


def parse_day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use e.g. 2026-11-01") from None


def budget_body(args: argparse.Namespace) -> dict[str, Any]:
    """The PUT body: the amount and only the options given (the service fills in defaults)."""
    body: dict[str, Any] = {"amount": args.amount}
    for key in ("period", "enforcement", "thresholds", "grace"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.notify:
        body["notify"] = [a.strip() for item in args.notify for a in item.split(",") if a.strip()]
    return body


def budget_path(kind: str, name: str) -> str:
    return f"/api/budgets/{quote(kind, safe='')}/{quote(name, safe='')}"


def budgets_request(args: argparse.Namespace) -> ApiRequest:
    """The REST call a ``budgets`` verb makes."""
    verb = args.budgets_command
    if verb == "list":
        return ApiRequest("GET", "/api/budgets")
    if verb == "set":
        return ApiRequest("PUT", budget_path(args.kind, args.name), budget_body(args))
    if verb == "unset":
        return ApiRequest("DELETE", budget_path(args.kind, args.name))
    query: dict[str, str] = {
        k: v for k in ("from", "to") if (v := getattr(args, f"{k}_day")) is not None
    }
    if verb == "usage":
        query["by"] = args.by
        if args.csv:
            query["format"] = "csv"
        return ApiRequest("GET", f"/api/usage?{urlencode(query)}")
    if verb == "alerts":
        return ApiRequest("GET", "/api/alerts" + (f"?{urlencode(query)}" if query else ""))
    raise ValueError(verb)


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


def format_budgets(data: Mapping[str, Any]) -> str:
    budgets = sorted(
        data.get("budgets") or (),
        key=lambda b: (KIND_ORDER.index(b["kind"]) if b["kind"] in KIND_ORDER else 9, b["name"]),
    )
    if not budgets:
        return "No budgets.\n"
    cur = data.get("currency", "")
    headers = ["KIND", "NAME", "PERIOD", f"AMOUNT ({cur})", "SPENT", "%", "ENFORCEMENT", "RESETS"]
    rows = [
        [
            b["kind"],
            b["name"] + (" (default)" if b.get("source") == "default" else ""),
            b["period"],
            money(b["amount"]),
            money(b["spent"]),
            f"{b['fraction']:.0%}",
            b["enforcement"],
            when(b.get("resets_at")),
        ]
        for b in budgets
    ]
    return render_table(headers, rows, right={3, 4, 5})


def format_standing(b: Mapping[str, Any], currency: str = "") -> str:
    """One budget in a sentence, as ``set`` and ``unset`` report it."""
    cur = f" {currency}" if currency else ""
    thresholds = ", ".join(f"{t:.0%}" for t in b.get("thresholds") or ()) or "none"
    return (
        f"{b['kind']} {b['name']!r}: {money(b['amount'])}{cur} {b['period']}, "
        f"enforcement {b['enforcement']}, alerts at {thresholds}; "
        f"{money(b['spent'])}{cur} spent ({b['fraction']:.0%}), resets {when(b.get('resets_at'))}"
        f" [from the {b.get('source', 'api')}]\n"
    )


def format_usage(data: Mapping[str, Any]) -> str:
    by, cur = data["by"], data.get("currency", "")
    rows = data.get("rows") or []
    title = f"Usage by {by}, {data['from']} to {data['to']}\n"
    if not rows:
        return title + "No usage.\n"
    total_cost = sum(r["cost"] for r in rows)
    body = [
        [
            str(r["key"]) or "-",
            money(r["cost"]),
            f"{r['hours']:,.1f}",
            f"{r['cost'] / total_cost:.0%}" if total_cost else "-",
        ]
        for r in rows
    ]
    if by != "group":  # a session counts in each of its groups: no meaningful total
        body.append(["total", money(total_cost), f"{sum(r['hours'] for r in rows):,.1f}", ""])
    return title + render_table([by.upper(), f"COST ({cur})", "HOURS", "SHARE"], body, {1, 2, 3})


def format_alerts(data: Mapping[str, Any]) -> str:
    alerts = data.get("alerts") or []
    if not alerts:
        return "No alerts.\n"
    rows = [
        [
            when(a["fired_at"]),
            a["kind"],
            a["name"],
            f"{a['threshold']:.0%}",
            money(a["spent"]),
            money(a["amount"]),
            a["enforcement"],
            ", ".join(f"{k}: {v}" for k, v in sorted((a.get("delivery") or {}).items())) or "-",
        ]
        for a in alerts
    ]
    headers = ["FIRED", "KIND", "NAME", "THRESHOLD", "SPENT", "AMOUNT", "ENFORCEMENT", "DELIVERY"]
    return render_table(headers, rows, right={3, 4, 5})


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


def _budgets(args: argparse.Namespace, call: Callable[..., ApiReply] = call_service) -> int:
    try:
        token = read_token(args.token_file, os.environ)
        req = budgets_request(args)
        url = service_url(args.url, os.environ)
        reply = call(url, token, req)
        verb = args.budgets_command
        if verb == "list":
            out = format_budgets(reply.json())
        elif verb == "set":
            out = "Set " + format_standing(reply.json())
        elif verb == "unset":
            out = f"Removed the budget set for {args.kind} {args.name!r}.\n"
            try:
                now = call(url, token, ApiRequest("GET", req.path)).json()
            except ServiceError as e:
                if e.status != 404:
                    raise
                out += "No budget applies now.\n"
            else:
                out += "Now: " + format_standing(now)
        elif verb == "usage" and args.csv:
            out = reply.body.decode("utf-8")
        elif verb == "usage":
            out = format_usage(reply.json())
        else:
            out = format_alerts(reply.json())
    except ServiceError as e:
        print(f"mlfactory: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0


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


def _service_options() -> argparse.ArgumentParser:
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


def _add_budgets_parser(sub: argparse._SubParsersAction) -> None:
    common = _service_options()

    def verb(name: str, help: str, **kw: Any) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=help, parents=[common], allow_abbrev=False, **kw)

    def date_range(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--from",
            dest="from_day",
            type=parse_day,
            metavar="DATE",
            help="first day, inclusive (default: the 1st of this month)",
        )
        p.add_argument(
            "--to",
            dest="to_day",
            type=parse_day,
            metavar="DATE",
            help="last day, inclusive (default: today)",
        )

    budgets = sub.add_parser(
        "budgets",
        help="list, set and report on budgets (through the platform service)",
        description="Budgets and usage through the platform service's REST API. "
        "Authenticates with a hub API token from $JUPYTERHUB_API_TOKEN or --token-file.",
    )
    budgets.set_defaults(func=_budgets)
    verbs = budgets.add_subparsers(dest="budgets_command", required=True)
    verb("list", "every budget with its spend this period")
    kinds = ("user", "group", "project")
    p = verb(
        "set",
        "create or replace a budget",
        description="Create or replace a budget; it overrides the config's. Options left out "
        "take their defaults (monthly, block, alerts at 50%,80%,100%, grace 15m).",
    )
    p.add_argument("kind", choices=kinds)
    p.add_argument("name")
    p.add_argument("--amount", type=parse_amount, required=True, help="currency units per period")
    p.add_argument("--period", choices=("monthly", "weekly"))
    p.add_argument("--enforcement", choices=("alert", "block", "stop"))
    p.add_argument(
        "--thresholds",
        type=parse_thresholds,
        metavar="0.5,0.8,1",
        help="fractions at which alerts fire ('' for none)",
    )
    p.add_argument("--grace", metavar="15m", help="warning-to-stop delay for 'stop'")
    p.add_argument(
        "--notify",
        action="append",
        metavar="EMAIL",
        help="extra address for this budget's alerts (repeatable)",
    )
    p = verb(
        "unset",
        "remove a budget set here; the config's (or the default) applies again",
    )
    p.add_argument("kind", choices=kinds)
    p.add_argument("name")
    p = verb("usage", "cost and hours over a date range")
    date_range(p)
    p.add_argument("--by", choices=DIMENSIONS, default="user")
    p.add_argument("--csv", action="store_true", help="print the service's CSV export")
    p = verb("alerts", "budget alerts that fired")
    date_range(p)


# --- components: reviewing what users publish ----------------------------------------------

SUBMISSION_STATUSES = ("pending", "approved", "rejected", "all")


def components_request(args: argparse.Namespace) -> ApiRequest:
    """The REST call a ``components`` verb makes."""
    verb = args.components_command
    if verb == "submissions":
        return ApiRequest(
            "GET", f"/api/components/submissions?{urlencode({'status': args.status})}"
        )
    path = f"/api/components/submissions/{quote(args.id, safe='')}"
    if verb == "show":
        return ApiRequest("GET", path)
    decision = "approve" if verb == "approve" else "reject"
    body = {"decision": decision, "note": args.note or "", "revision": args.revision}
    return ApiRequest("POST", f"{path}/review", body)


def format_submissions(data: Mapping[str, Any]) -> str:
    subs = data.get("submissions") or []
    if not subs:
        return "No submissions.\n"
    headers = ["ID", "COMPONENT", "OWNER", "STATUS", "SUBMITTED", "REVIEWER", "NOTE"]
    rows = [
        [
            s["id"],
            f"{s['name']}@{s['version']}",
            s["owner"],
            s["status"],
            when(s.get("submitted_at")),
            s.get("reviewer") or "-",
            (s.get("note") or "-").replace("\n", " ")[:60],
        ]
        for s in subs
    ]
    return render_table(headers, rows, right=set())


def format_submission(s: Mapping[str, Any]) -> str:
    """One submission in a few lines, as ``show``, ``approve`` and ``reject`` report it."""
    lines = [
        f"{s['name']}@{s['version']} by {s['owner']}: {s['status']} (id {s['id']})",
        f"  {s.get('summary') or ''}".rstrip(),
        f"  submitted {when(s.get('submitted_at'))}; files: {', '.join(s.get('files') or [])}",
        f"  revision {s.get('revision')} (approve --revision takes it)",
    ]
    if s.get("reviewer"):
        lines.append(f"  reviewed by {s['reviewer']} {when(s.get('reviewed_at'))}")
    if s.get("note"):
        lines.append(f"  note: {s['note']}")
    return "\n".join(line for line in lines if line.strip()) + "\n"


def _components(args: argparse.Namespace, call: Callable[..., ApiReply] = call_service) -> int:
    try:
        token = read_token(args.token_file, os.environ)
        reply = call(service_url(args.url, os.environ), token, components_request(args))
        data = reply.json()
        if args.components_command == "submissions":
            out = format_submissions(data)
        else:
            out = format_submission(data["submission"])
            if args.components_command == "show":
                for name, text in sorted((data["submission"].get("contents") or {}).items()):
                    out += f"\n--- {name}\n{text}"
    except ServiceError as e:
        print(f"mlfactory: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(out)
    return 0


def _add_components_parser(sub: argparse._SubParsersAction) -> None:
    common = _service_options()
    components = sub.add_parser(
        "components",
        help="review the components users publish (through the platform service)",
        description="Review published components through the platform service's REST API. "
        "Reviewing needs the custom:mlfactory:components:review scope (hub admins and the "
        "platform config's component_review.maintainers hold it). Authenticates with a hub "
        "API token from $JUPYTERHUB_API_TOKEN or --token-file.",
    )
    components.set_defaults(func=_components)
    verbs = components.add_subparsers(dest="components_command", required=True)

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        return verbs.add_parser(name, help=help, parents=[common], allow_abbrev=False)

    p = verb("submissions", "list submissions (yours, or all you may review)")
    p.add_argument("--status", choices=SUBMISSION_STATUSES, default="pending")
    p = verb("show", "one submission with its files")
    p.add_argument("id")
    p = verb("approve", "approve a pending submission into the shared namespace")
    p.add_argument("id")
    p.add_argument(
        "--revision",
        required=True,
        help="the revision `show` printed: the approval covers exactly the files you read, "
        "and is refused if the author uploaded again since",
    )
    p.add_argument("--note", default="", help="a remark for the author (optional)")
    p = verb("reject", "reject a pending submission; the note tells the author what to fix")
    p.add_argument("id")
    p.add_argument("--note", required=True, help="what the author should change")
    p.add_argument("--revision", default=None, help="the revision `show` printed (optional)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlfactory", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    check.set_defaults(func=_config_check)
    _add_budgets_parser(sub)
    _add_components_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "hub":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.jupyterhub_args = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
