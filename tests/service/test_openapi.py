"""The shipped OpenAPI document: valid, in step with the route table, and true of real answers."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from mlfactory.service import app
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from tornado import web

from .helpers import SECRET

PREFIX = "/services/mlfactory/"
DOC_PATH = Path(app.__file__).with_name("openapi.yaml")
DOC_URI = "urn:mlfactory:openapi"
METHODS = ("get", "post", "put", "delete", "patch")
SCOPES = {
    "custom:mlfactory:budgets:read",
    "custom:mlfactory:budgets:write",
    "custom:mlfactory:usage:read",
}
# A scope also granted by these (write implies read).
IMPLIED_BY = {"custom:mlfactory:budgets:read": {"custom:mlfactory:budgets:write"}}


@cache
def doc() -> dict[str, Any]:
    return yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))


@cache
def registry() -> Registry:
    return Registry().with_resource(DOC_URI, Resource(contents=doc(), specification=DRAFT202012))


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, registry=registry(), format_checker=FormatChecker())


def component(name: str) -> Draft202012Validator:
    return validator({"$ref": f"{DOC_URI}#/components/schemas/{name}"})


def deref(obj: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (responses, parameters) one level."""
    ref = obj.get("$ref")
    if not ref:
        return obj
    node: Any = doc()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def operation(method: str, template: str) -> dict[str, Any]:
    return doc()["paths"][template][method.lower()]


def check_response(method: str, template: str, code: int, headers: dict, body: Any) -> None:
    """Fail unless the documented operation lists ``code`` and ``body`` fits its schema."""
    responses = operation(method, template)["responses"]
    assert str(code) in responses, f"{method} {template} answered undocumented {code}: {body}"
    response = deref(responses[str(code)])
    if "content" not in response:
        assert not body, f"{method} {template} {code} documents no body but sent {body!r}"
        return
    ctype = headers.get("Content-Type", "").split(";")[0].strip()
    assert ctype in response["content"], f"{method} {template} {code}: undocumented {ctype}"
    schema = response["content"][ctype]["schema"]
    schema = {"$ref": f"{DOC_URI}{schema['$ref']}"} if "$ref" in schema else schema
    validator(schema).validate(body)


def request_fits(template: str, method: str, body: Any) -> bool:
    content = operation(method, template)["requestBody"]["content"]["application/json"]
    return validator({"$ref": f"{DOC_URI}{content['schema']['$ref']}"}).is_valid(body)


# --- the document itself ------------------------------------------------------------------


def test_document_is_valid_openapi_3_1():
    assert doc()["openapi"].startswith("3.1")
    validate_spec(doc())


def test_examples_fit_their_schemas():
    schemas = doc()["components"]["schemas"]
    with_examples = [name for name, s in schemas.items() if "example" in s]
    assert {"GateRequest", "BudgetInput", "Error"} <= set(with_examples)
    for name in with_examples:
        component(name).validate(schemas[name]["example"])


def test_schemas_reject_what_the_api_never_sends():
    standing = {
        "kind": "user",
        "name": "alice",
        "amount": 10.0,
        "period": "monthly",
        "enforcement": "block",
        "thresholds": [0.5, 1.0],
        "grace_seconds": 900,
        "notify": [],
        "source": "api",
        "spent": 1.0,
        "fraction": 0.1,
        "period_start": "2026-11-01T00:00:00Z",
        "resets_at": "2026-12-01T00:00:00Z",
    }
    component("BudgetStanding").validate(standing)
    for bad in (
        {**standing, "extra": 1},
        {k: v for k, v in standing.items() if k != "spent"},
        {**standing, "period": "daily"},
        {**standing, "resets_at": "next month"},
    ):
        with pytest.raises(ValidationError):
            component("BudgetStanding").validate(bad)
    component("BudgetInput").validate(standing)  # a GET body can be PUT back as it is
    with pytest.raises(ValidationError):
        component("BudgetInput").validate({"amount": 5, "colour": "red"})
    with pytest.raises(ValidationError):
        component("BudgetInput").validate({"amount": 5, "thresholds": [0]})


# --- the document and the route table -----------------------------------------------------


def api_routes() -> dict[str, set[str]]:
    """Each ``/api/`` route's pattern → the HTTP methods its handler implements."""
    out = {}
    for pattern, handler, *_ in app.routes(PREFIX):
        if "/api/" not in pattern:
            continue
        out[pattern] = {
            m for m in METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)
        }
    return out


def example_url(template: str) -> str:
    """A concrete URL for a documented path, its parameters filled with valid values."""
    params = {}
    for op in [doc()["paths"][template]] + [doc()["paths"][template].get(m, {}) for m in METHODS]:
        for p in op.get("parameters", ()):
            p = deref(p)
            if p["in"] == "path":
                params[p["name"]] = p["schema"]
    url = template
    for name, schema in params.items():
        schema = deref(schema)
        value = schema["enum"][0] if "enum" in schema else "a" * 16
        assert re.fullmatch(schema.get("pattern", ".*").strip("^$"), value)
        url = url.replace("{" + name + "}", value)
    assert "{" not in url, f"{template}: a path parameter is not documented"
    return PREFIX.rstrip("/") + url


def test_every_route_is_documented_and_every_documented_path_is_routed():
    routes = api_routes()
    assert len(routes) >= 9  # the table was read (guards the filter above)
    matched: dict[str, str] = {}
    for template, item in doc()["paths"].items():
        url = example_url(template)
        hits = [p for p in routes if re.fullmatch(p, url)]
        assert len(hits) == 1, f"{template} ({url}) matches routes {hits}"
        matched[hits[0]] = template
        documented = {m for m in METHODS if m in item}
        assert documented == routes[hits[0]], f"{template}: methods differ"
    assert set(matched) == set(routes), f"undocumented routes: {set(routes) - set(matched)}"


def test_each_operation_names_its_scope_or_secret():
    top = doc()["security"]
    for template, item in doc()["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            security = item[method].get("security", top)
            names = {n for req in security for n in req}
            roles = {r for req in security for rs in req.values() for r in rs}
            assert roles <= SCOPES, f"{method} {template}: unknown scope {roles - SCOPES}"
            if template.startswith(("/api/budgets", "/api/usage", "/api/servers", "/api/alerts")):
                assert len(roles) == 1, f"{method} {template} must name exactly one scope"
                assert names == {"hubToken", "hubOAuthCookie"}
            elif template in ("/api/gate", "/api/sessions/{key}/end"):
                assert names == {"serviceSecret"}


# --- real answers -------------------------------------------------------------------------


async def test_the_service_serves_the_shipped_document(service):
    svc = await service()
    code, body, headers = await svc.call("GET", "/openapi.yaml")
    assert code == 200
    assert headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(body) == doc()


async def test_real_answers_fit_the_documented_schemas(service, hub_state, clock):
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    hub_state.add_user("alice", groups=("data-science",))
    hub_state.add_user("bob", groups=("ml-engineering",))
    plain = hub_state.add_user("carol", groups=("data-science",))

    async def call(
        method: str, template: str, url: str, valid_request: bool = True, **kw: Any
    ) -> tuple[int, Any]:
        """Call, check the answer against the document, and check that the document's request
        schema accepts exactly the bodies the service accepts."""
        if kw.get("body") is not None:
            fits = request_fits(template, method, kw["body"])
            assert fits == valid_request, f"{method} {url}: the request schema disagrees"
        code, body, headers = await svc.call(method, url, **kw)
        check_response(method, template, code, headers, body)
        return code, body

    code, body = await call("GET", "/api/health", "/api/health")
    assert code == 200 and body["status"] == "ok"

    # budgets: a small alert budget for alice, a blocking one for bob
    b = "/api/budgets/{kind}/{name}"
    code, body = await call(
        "PUT", b, "/api/budgets/user/alice", token=admin,
        body={"amount": 0.9, "enforcement": "alert", "grace": "15m", "notify": ["a@example.com"]},
    )  # fmt: skip
    assert code == 201 and body["source"] == "api" and body["grace_seconds"] == 900
    code, body = await call(
        "PUT", b, "/api/budgets/user/bob", token=admin, body={"amount": 0.5, "period": "weekly"}
    )
    assert code == 201 and body["period"] == "weekly"
    code, body = await call(
        "PUT", b, "/api/budgets/user/bob", token=admin, body={"amount": 0.5, "period": "weekly"}
    )
    assert code == 200  # replaced, not created
    code, body = await call(
        "PUT", b, "/api/budgets/user/bob", token=admin, body={"amount": -1}, valid_request=False
    )
    assert code == 400 and body["field"] == "amount"
    code, body = await call(
        "PUT", b, "/api/budgets/user/bob", token=admin, body={"amount": 1, "period": "daily"},
        valid_request=False,
    )  # fmt: skip
    assert code == 400 and body["field"] == "period"

    # the gate: alice allowed (alert budget), bob refused by his blocking budget
    gate_alice = {"key": "a" * 16, "user": "alice", "project": "churn-model",
                  "profile": "cpu-small", "price_per_hour": 1.0, "groups": ["data-science"],
                  "resources": {"cpu": 1}}  # fmt: skip
    code, body = await call("POST", "/api/gate", "/api/gate", secret=SECRET, body=gate_alice)
    assert code == 200 and body["allowed"] is True and body["warnings"]
    gate_bob = {"key": "b" * 16, "user": "bob", "price_per_hour": 1.0}
    code, body = await call("POST", "/api/gate", "/api/gate", secret=SECRET, body=gate_bob)
    assert code == 200 and body["allowed"] is False
    assert (body["budget"]["kind"], body["budget"]["name"]) == ("user", "bob")
    code, body = await call(
        "POST", "/api/gate", "/api/gate", secret=SECRET, body={"key": "c" * 16, "user": "x"},
        valid_request=False,
    )  # fmt: skip
    assert code == 400 and body["field"] == "price_per_hour"
    code, body = await call("POST", "/api/gate", "/api/gate", secret="wrong", body=gate_bob)
    assert code == 403

    clock.advance(3600)
    await svc.accountant.evaluate()  # fires alice's thresholds

    code, body = await call("GET", "/api/me", "/api/me", token=admin)
    assert code == 200
    code, body = await call("GET", "/api/servers", "/api/servers", token=admin)
    assert code == 200 and [s["user"] for s in body["servers"]] == ["alice"]
    code, body = await call("GET", "/api/budgets", "/api/budgets", token=admin)
    assert code == 200 and {"user", "group", "project"} <= {r["kind"] for r in body["budgets"]}
    code, body = await call("GET", b, "/api/budgets/project/vision-research", token=admin)
    assert code == 200 and body["source"] == "config"
    code, body = await call("GET", b, "/api/budgets/team/x", token=admin)
    assert code == 404
    code, body = await call("GET", "/api/alerts", "/api/alerts", token=admin)
    assert code == 200 and {a["threshold"] for a in body["alerts"]} == {0.5, 0.8, 1.0}
    code, body = await call("GET", "/api/alerts", "/api/alerts?from=2026-13-01", token=admin)
    assert code == 400 and body["field"] == "from"

    for by in ("user", "group", "project", "profile", "day", "server"):
        code, body = await call("GET", "/api/usage", f"/api/usage?by={by}", token=admin)
        assert code == 200 and body["rows"], by
    code, body = await call("GET", "/api/usage", "/api/usage?by=user&format=csv", token=admin)
    assert code == 200 and body.splitlines()[0] == "user,cost,hours,currency"
    code, body = await call("GET", "/api/usage", "/api/usage?by=colour", token=admin)
    assert code == 400 and body["field"] == "by"

    # alice, now with a notice and a running server, sees herself without any custom scope
    code, body = await call("GET", "/api/me", "/api/me", token=hub_state.add_user("alice"))
    assert code == 200 and body["notices"] and body["servers"]
    code, body = await call("GET", "/api/usage", "/api/usage", token=plain)
    assert code == 403

    s = "/api/sessions/{key}/end"
    code, body = await call(
        "POST", s, f"/api/sessions/{'a' * 16}/end", secret=SECRET, body={"reason": "stopped"}
    )
    assert code == 200 and body == {"ended": True}
    code, body = await call(
        "POST", s, f"/api/sessions/{'a' * 16}/end", secret=SECRET, body={"ended_at": "soon"},
        valid_request=False,
    )  # fmt: skip
    assert code == 400 and body["field"] == "ended_at"

    code, body = await call("DELETE", b, "/api/budgets/user/bob", token=admin)
    assert code == 204
    code, body = await call("DELETE", b, "/api/budgets/user/bob", token=admin)
    assert code == 404


def scoped_operations() -> list[tuple[str, str, str]]:
    out = []
    for template, item in doc()["paths"].items():
        for method in METHODS:
            if method in item:
                roles = {
                    r for req in item[method].get("security", ()) for r in req.get("hubToken", ())
                }
                out += [(method, template, r) for r in roles]
    return out


@pytest.mark.parametrize(("method", "template", "scope"), scoped_operations())
async def test_each_documented_scope_is_the_one_the_route_needs(
    service, hub_state, method, template, scope
):
    svc = await service()
    url = template.replace("{kind}", "user").replace("{name}", "dave")
    body = {"amount": 5} if method == "put" else None
    hub_state.add_user("dave")
    # the documented scope (alone) is enough ...
    ok = hub_state.add_user("holder", scopes=(scope,))
    code, answer, _ = await svc.call(method.upper(), url, token=ok, body=body)
    assert code != 403, answer
    # ... and every other mlfactory scope that does not imply it is not
    others = tuple(SCOPES - {scope} - IMPLIED_BY.get(scope, set()))
    without = hub_state.add_user("other", scopes=others)
    code, answer, _ = await svc.call(method.upper(), url, token=without, body=body)
    assert code == 403, answer
    assert scope in answer["error"]


async def test_group_filter_semantics_as_documented(service, hub_state):
    """``!group=`` shows the group's budget and its members', never projects or other teams."""
    svc = await service()
    admin = hub_state.add_user("root", admin=True)
    hub_state.add_user("alice", groups=("data-science",))
    hub_state.add_user("bob", groups=("ml-engineering",))
    for user in ("alice", "bob"):
        code, _, _ = await svc.call("PUT", f"/api/budgets/user/{user}", token=admin,
                                    body={"amount": 50})  # fmt: skip
        assert code == 201
    lead = hub_state.add_user(
        "lead",
        scopes=("custom:mlfactory:budgets:read!group=data-science",),
    )
    code, body, _ = await svc.call("GET", "/api/budgets", token=lead)
    assert code == 200
    seen = {(r["kind"], r["name"]) for r in body["budgets"]}
    assert seen == {("group", "data-science"), ("user", "alice")}
    for hidden in ("group/ml-engineering", "user/bob", "project/vision-research"):
        code, body, _ = await svc.call("GET", f"/api/budgets/{hidden}", token=lead)
        assert code == 404, hidden
