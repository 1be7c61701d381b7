"""``mlfactory components ...``: a maintainer's client of the platform service's review API
for the components users publish into the shared namespace."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from .client import (
    ApiReply,
    ApiRequest,
    ServiceError,
    call_service,
    read_token,
    render_table,
    service_options,
    service_url,
    when,
)

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    common = service_options()
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
