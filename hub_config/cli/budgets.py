"""``mlfactory budgets ...``: an admin's client of the platform service's budget and usage
API. Each verb is one REST call (``budgets_request``) and a table of its answer."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from mlfactory.service.budgets import DIMENSIONS, KINDS

from .client import (
    ApiReply,
    ApiRequest,
    ServiceError,
    call_service,
    money,
    read_token,
    render_table,
    service_options,
    service_url,
    when,
)


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


def format_budgets(data: Mapping[str, Any]) -> str:
    budgets = sorted(
        data.get("budgets") or (),
        key=lambda b: (KINDS.index(b["kind"]) if b["kind"] in KINDS else 9, b["name"]),
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    common = service_options()

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
    p = verb(
        "set",
        "create or replace a budget",
        description="Create or replace a budget; it overrides the config's. Options left out "
        "take their defaults (monthly, block, alerts at 50%,80%,100%, grace 15m).",
    )
    p.add_argument("kind", choices=KINDS)
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
    p.add_argument("kind", choices=KINDS)
    p.add_argument("name")
    p = verb("usage", "cost and hours over a date range")
    date_range(p)
    p.add_argument("--by", choices=DIMENSIONS, default="user")
    p.add_argument("--csv", action="store_true", help="print the service's CSV export")
    p = verb("alerts", "budget alerts that fired")
    date_range(p)
