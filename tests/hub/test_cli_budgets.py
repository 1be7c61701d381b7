"""``mlfactory budgets ...``: arguments → REST calls, answers → tables, and real calls against
the platform service (in-process, with the stand-in hub of ``tests/fakehub.py``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from mlfactory.hub.cli import (
    ApiReply,
    ApiRequest,
    ServiceError,
    budgets_request,
    build_parser,
    error_text,
    format_alerts,
    format_budgets,
    format_standing,
    format_usage,
    main,
    parse_thresholds,
    read_token,
    render_table,
    service_url,
)
from mlfactory.hub.cli import budgets as cli
from mlfactory.service.budgets import Scope
from mlfactory.service.store import Store

from tests.ports import free_port
from tests.service.helpers import SECRET, Clock, service_store


# The service fixtures (tests/service/fixtures.py) reach this module as a plugin; its
# ``clock`` and ``store`` are the service's, not tests/hub/conftest.py's account database's.
@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url) -> Iterator[Store]:
    yield from service_store(db_url)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["budgets", *argv])


STANDING = {
    "kind": "user",
    "name": "alice",
    "amount": 100.0,
    "period": "monthly",
    "enforcement": "block",
    "thresholds": [0.5, 0.8, 1.0],
    "grace_seconds": 900,
    "notify": [],
    "source": "api",
    "spent": 12.3456,
    "fraction": 0.1235,
    "period_start": "2026-11-01T00:00:00Z",
    "resets_at": "2026-12-01T00:00:00Z",
}


# --- arguments → requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5,0.8,1", [0.5, 0.8, 1.0]),
        ("50%, 80%,100%", [0.5, 0.8, 1.0]),
        ("0.9", [0.9]),
        ("", []),
    ],
)
def test_parse_thresholds(text, expected):
    assert parse_thresholds(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["half", "0.5,,x", "80 %%"])
def test_parse_thresholds_rejects_words(text):
    with pytest.raises(argparse.ArgumentTypeError, match="not a fraction"):
        parse_thresholds(text)


def test_set_sends_only_the_options_given():
    req = budgets_request(parse("set", "user", "alice", "--amount", "250"))
    assert req == ApiRequest("PUT", "/api/budgets/user/alice", {"amount": 250.0})


def test_set_with_every_option():
    args = parse(
        "set", "project", "vision-research", "--amount", "800", "--period", "weekly",
        "--enforcement", "stop", "--thresholds", "0.5,1", "--grace", "15m",
        "--notify", "a@example.com,b@example.com", "--notify", "c@example.com",
    )  # fmt: skip
    req = budgets_request(args)
    assert req.method == "PUT" and req.path == "/api/budgets/project/vision-research"
    assert req.body == {
        "amount": 800.0,
        "period": "weekly",
        "enforcement": "stop",
        "thresholds": [0.5, 1.0],
        "grace": "15m",
        "notify": ["a@example.com", "b@example.com", "c@example.com"],
    }


def test_names_are_quoted_into_the_path():
    req = budgets_request(parse("unset", "user", "ann/../x y@example.com"))
    assert req == ApiRequest("DELETE", "/api/budgets/user/ann%2F..%2Fx%20y%40example.com")


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["list"], "/api/budgets"),
        (["usage"], "/api/usage?by=user"),
        (
            ["usage", "--from", "2026-11-01", "--to", "2026-11-30", "--by", "day", "--csv"],
            "/api/usage?from=2026-11-01&to=2026-11-30&by=day&format=csv",
        ),
        (["alerts"], "/api/alerts"),
        (["alerts", "--from", "2026-10-01"], "/api/alerts?from=2026-10-01"),
    ],
)
def test_read_verbs(argv, path):
    assert budgets_request(parse(*argv)) == ApiRequest("GET", path)


@pytest.mark.parametrize(
    "argv",
    [
        ["set", "user", "alice"],  # no amount
        ["set", "user", "alice", "--amount", "lots"],
        ["set", "user", "alice", "--amount", "nan"],
        ["set", "team", "x", "--amount", "1"],
        ["set", "user", "alice", "--amount", "1", "--period", "daily"],
        ["set", "user", "alice", "--amount", "1", "--thresholds", "most"],
        ["usage", "--from", "2026-13-01"],
        ["usage", "--by", "colour"],
        ["unset", "user"],
        [],
    ],
)
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert "usage: mlfactory budgets" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--token", "s3cret"], ["--token=s3cret"]])
def test_a_token_on_the_command_line_is_refused_without_echoing_it(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["budgets", "list", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--token-file" in err and "JUPYTERHUB_API_TOKEN" in err
    assert "s3cret" not in err


def test_token_from_file_before_environment(tmp_path):
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert read_token(str(f), {"JUPYTERHUB_API_TOKEN": "from-env"}) == "from-file"
    assert read_token(None, {"JUPYTERHUB_API_TOKEN": " from-env "}) == "from-env"
    with pytest.raises(ServiceError, match="JUPYTERHUB_API_TOKEN"):
        read_token(None, {})
    with pytest.raises(ServiceError, match="cannot read the token file"):
        read_token(str(tmp_path / "missing"), {})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ServiceError, match="is empty"):
        read_token(str(tmp_path / "empty"), {})


def test_service_url_from_flag_then_environment_then_default():
    env = {"MLFACTORY_SERVICE_URL": "https://hub.example.com/services/mlfactory"}
    assert service_url("http://x/services/mlfactory", env) == "http://x/services/mlfactory"
    assert service_url(None, env) == env["MLFACTORY_SERVICE_URL"]
    assert service_url(None, {}) == "http://127.0.0.1:8000/services/mlfactory"


# --- answers → text -----------------------------------------------------------------------


def test_render_table_aligns_columns():
    text = render_table(["A", "NUM"], [["long-name", "1.00"], ["b", "12,345.00"]], right={1})
    assert text.splitlines() == [
        "A                NUM",
        "long-name       1.00",
        "b          12,345.00",
    ]


def test_format_budgets_sorts_by_kind_then_name():
    data = {
        "currency": "EUR",
        "budgets": [
            {**STANDING, "kind": "project", "name": "vision-research", "enforcement": "stop"},
            {**STANDING, "name": "zed", "source": "default", "spent": 0, "fraction": 0},
            {**STANDING, "kind": "group", "name": "data-science", "amount": 1500},
            STANDING,
        ],
    }
    lines = format_budgets(data).splitlines()
    assert lines[0].split() == [
        "KIND", "NAME", "PERIOD", "AMOUNT", "(EUR)", "SPENT", "%", "ENFORCEMENT", "RESETS",
    ]  # fmt: skip
    assert [ln.split()[:2] for ln in lines[1:]] == [
        ["user", "alice"],
        ["user", "zed"],
        ["group", "data-science"],
        ["project", "vision-research"],
    ]
    assert lines[1].split() == [
        "user", "alice", "monthly", "100.00", "12.35", "12%", "block", "2026-12-01", "00:00",
        "UTC",
    ]  # fmt: skip
    assert "zed (default)" in lines[2]
    assert "1,500.00" in lines[3]


def test_format_budgets_empty():
    assert format_budgets({"currency": "USD", "budgets": []}) == "No budgets.\n"


def test_format_standing():
    text = format_standing(STANDING)
    assert text == (
        "user 'alice': 100.00 monthly, enforcement block, alerts at 50%, 80%, 100%; "
        "12.35 spent (12%), resets 2026-12-01 00:00 UTC [from the api]\n"
    )


def test_format_usage_with_total_and_share():
    data = {
        "by": "project",
        "from": "2026-11-01",
        "to": "2026-11-30",
        "currency": "USD",
        "rows": [
            {"key": "churn-model", "cost": 75.0, "hours": 300.0},
            {"key": "", "cost": 25.0, "hours": 50.25},
        ],
    }
    lines = format_usage(data).splitlines()
    assert lines[0] == "Usage by project, 2026-11-01 to 2026-11-30"
    assert lines[1].split() == ["PROJECT", "COST", "(USD)", "HOURS", "SHARE"]
    assert lines[2].split() == ["churn-model", "75.00", "300.0", "75%"]
    assert lines[3].split() == ["-", "25.00", "50.2", "25%"]  # no project
    assert lines[4].split() == ["total", "100.00", "350.2"]


def test_format_usage_by_group_has_no_total():
    # a session counts in each of its groups, so a total would double count
    data = {"by": "group", "from": "a", "to": "b", "currency": "USD",
            "rows": [{"key": "ds", "cost": 1.0, "hours": 1.0}]}  # fmt: skip
    assert "total" not in format_usage(data)
    assert format_usage({**data, "rows": []}).endswith("No usage.\n")


def test_format_alerts():
    alert = {
        "id": 1,
        "kind": "group",
        "name": "data-science",
        "period_start": "2026-11-01T00:00:00Z",
        "threshold": 0.8,
        "spent": 160.0,
        "amount": 200.0,
        "enforcement": "block",
        "fired_at": "2026-11-20T09:30:00Z",
        "message": "Budget alert: ...",
        "delivery": {"webhook": "sent", "email": "failed: refused"},
    }
    lines = format_alerts({"alerts": [alert]}).splitlines()
    assert lines[0].split()[:3] == ["FIRED", "KIND", "NAME"]
    assert lines[1].startswith("2026-11-20 09:30 UTC  group  data-science")
    assert lines[1].endswith("email: failed: refused, webhook: sent")
    assert format_alerts({"alerts": []}) == "No alerts.\n"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (ApiReply(400, "application/json", b'{"error": "amount: too big", "field": "amount"}'),
         "amount: too big"),
        (ApiReply(404, "text/html", b"<html>Not Found</html>"),
         "HTTP 404 from the server; is 'http://h/x' the platform service's URL"),
        (ApiReply(302, "text/html", b""), "HTTP 302 from the server; is 'http://h/x'"),
        (ApiReply(503, "text/html", b"Service Unavailable"),
         "HTTP 503 from the server; is the platform service running?"),
        (ApiReply(500, "application/json", b'["odd"]'), "HTTP 500 from the server"),
    ],
)  # fmt: skip
def test_error_text(reply, expected):
    assert error_text(reply, "http://h/x").startswith(expected)


# --- the command against the real service -------------------------------------------------


async def run(*argv: str) -> int:
    # The CLI blocks on urllib: run it in a thread so the in-process service keeps serving.
    return await asyncio.to_thread(main, ["budgets", *argv])


@pytest.fixture
async def admin_cli(service, hub_state, monkeypatch):
    svc = await service()
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub_state.add_user("root", admin=True))
    monkeypatch.setenv("MLFACTORY_SERVICE_URL", svc.url)
    return svc


async def test_set_list_unset_round_trip(admin_cli, capsys):
    svc = admin_cli
    argv = ["set", "user", "alice", "--amount", "42.5", "--enforcement", "stop", "--grace", "30m"]
    assert await run(*argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Set user 'alice': 42.50 monthly, enforcement stop")
    assert "[from the api]" in out
    rule = svc.accountant.rule(Scope("user", "alice"))
    assert (rule.amount, rule.enforcement, rule.grace) == (42.5, "stop", 1800)

    assert await run("list") == 0
    rows = {tuple(ln.split()[:2]): ln.split() for ln in capsys.readouterr().out.splitlines()[1:]}
    assert rows[("user", "alice")][2:7] == ["monthly", "42.50", "0.00", "0%", "stop"]
    assert ("group", "data-science") in rows and ("project", "vision-research") in rows

    assert await run("unset", "user", "alice") == 0
    out = capsys.readouterr().out
    assert out.startswith("Removed the budget set for user 'alice'.\nNow: user 'alice': 100.00")
    assert "[from the default]" in out  # the config's default_budget applies again
    assert svc.accountant.rule(Scope("user", "alice")).source == "default"


async def test_service_errors_go_to_stderr_with_status_1(admin_cli, capsys):
    assert await run("set", "user", "alice", "--amount", "-5") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("mlfactory: amount: ") and "greater than or equal to 0" in err

    assert await run("set", "project", "no-such-project", "--amount", "5") == 1
    assert "No project 'no-such-project'" in capsys.readouterr().err

    # a budget from the config file cannot be unset through the API
    assert await run("unset", "group", "data-science") == 1
    assert "No budget set through the API for group 'data-science'" in capsys.readouterr().err


async def test_usage_and_alerts_reports(admin_cli, hub_state, clock, capsys):
    svc = admin_cli
    hub_state.add_user("alice", groups=("data-science",))
    assert await run("set", "user", "alice", "--amount", "2", "--enforcement", "alert") == 0
    gate = {"key": "k" * 16, "user": "alice", "project": "churn-model", "profile": "cpu-small",
            "price_per_hour": 1.5, "groups": ["data-science"]}  # fmt: skip
    code, body, _ = await svc.call("POST", "/api/gate", secret=SECRET, body=gate)
    assert code == 200 and body["allowed"], body
    clock.advance(2 * 3600)  # 3.00 spent of 2.00: every threshold crossed
    await svc.accountant.evaluate()
    capsys.readouterr()

    assert await run("usage", "--by", "project") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Usage by project, 2026-11-01 to 2026-11-10"
    assert lines[2].split() == ["churn-model", "3.00", "2.0", "100%"]

    assert await run("usage", "--by", "user", "--csv", "--from", "2026-11-10") == 0
    assert capsys.readouterr().out.splitlines() == [
        "user,cost,hours,currency",
        "alice,3.0,2.0,USD",
    ]

    assert await run("usage", "--from", "2026-10-01", "--to", "2026-10-31") == 0
    assert capsys.readouterr().out.endswith("No usage.\n")

    assert await run("alerts") == 0
    lines = capsys.readouterr().out.splitlines()
    # all three fired at the same tick, so their order is not part of the contract
    assert sorted(ln.split()[3:6] for ln in lines[1:]) == [
        ["user", "alice", "100%"],
        ["user", "alice", "50%"],
        ["user", "alice", "80%"],
    ]

    assert await run("usage", "--from", "2026-11-10", "--to", "2026-11-01") == 1
    assert "to: must not be before from" in capsys.readouterr().err


async def test_a_user_without_the_scope_is_told_so(admin_cli, hub_state, monkeypatch, capsys):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub_state.add_user("carol"))
    assert await run("list") == 1
    assert "custom:mlfactory:budgets:read" in capsys.readouterr().err
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-a-token")
    assert await run("usage") == 1
    assert "hub token" in capsys.readouterr().err


async def test_token_file_is_used(admin_cli, hub_state, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN")
    assert await run("list") == 1
    assert "no hub API token" in capsys.readouterr().err
    f = tmp_path / "token"
    f.write_text(hub_state.add_user("root2", admin=True))
    assert await run("list", "--token-file", str(f)) == 0
    assert capsys.readouterr().out.startswith("KIND")


async def test_unreachable_url_names_the_url(admin_cli, monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}/services/mlfactory"
    assert await run("list", "--url", url) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the platform service at {url}/api/budgets" in err
    assert "MLFACTORY_SERVICE_URL" in err


async def test_wrong_prefix_gets_a_hint(admin_cli, capsys):
    # the service's app answers a path outside its prefix with tornado's HTML 404
    base = admin_cli.url.removesuffix("/services/mlfactory")
    assert await run("list", "--url", base) == 1
    assert "HTTP 404 from the server; is" in capsys.readouterr().err


def test_non_http_urls_are_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    assert main(["budgets", "list", "--url", f"file://{tmp_path}"]) == 1
    assert "must be an http:// or https:// URL" in capsys.readouterr().err


def test_redirects_are_not_followed_with_the_token(monkeypatch, capsys):
    """urllib would resend ``Authorization`` to wherever a redirect points."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            if self.path.startswith("/elsewhere"):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"currency": "USD", "budgets": []}).encode())
                return
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret-token")
        url = f"http://127.0.0.1:{server.server_port}/services/mlfactory"
        assert main(["budgets", "list", "--url", url]) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert [s["path"] for s in seen] == ["/services/mlfactory/api/budgets"]
    assert "HTTP 302 from the server" in capsys.readouterr().err


def test_budgets_dispatch_with_a_stub_transport(monkeypatch, capsys):
    """The verb's output comes from the reply it got (no network)."""
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    calls: list[tuple[str, ApiRequest]] = []

    def fake(url: str, token: str, req: ApiRequest) -> ApiReply:
        calls.append((url, req))
        if req.method == "DELETE":
            return ApiReply(204, "", b"")
        raise ServiceError("No budget for user 'x'.", 404)

    args = build_parser().parse_args(["budgets", "unset", "user", "x", "--url", "http://h/s"])
    assert cli._budgets(args, call=fake) == 0
    assert capsys.readouterr().out == (
        "Removed the budget set for user 'x'.\nNo budget applies now.\n"
    )
    assert [(u, r.method, r.path) for u, r in calls] == [
        ("http://h/s", "DELETE", "/api/budgets/user/x"),
        ("http://h/s", "GET", "/api/budgets/user/x"),
    ]
