"""Published components: the submission rules (pure), the service's REST API (publish, list,
review, the shared namespace) through the ``service`` fixture, the hub's maintainer role and
the ``mlfactory components`` command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mlfactory.components.submissions import (
    MAX_BYTES,
    MAX_FILES,
    MAX_PENDING,
    Submission,
    SubmissionError,
    check_files,
    review,
    revision,
    submit,
    user_folder,
)
from mlfactory.hub import cli
from mlfactory.hub.hubconfig import apply_platform
from traitlets.config import Config

from .helpers import T0, platform_with
from .test_openapi import check_response

REVIEW = "custom:mlfactory:components:review"
API = "/api/components"


def component_files(
    name: str = "scale_columns", version: str = "0.1.0", **yaml_changes: str
) -> dict[str, str]:
    """A valid component folder as the API takes it; ``yaml_changes`` replace whole lines."""
    fields = {
        "name": name,
        "version": version,
        "summary": "Multiply chosen columns by a factor.",
        "categories": "[preprocessing]",
        "stability": "experimental",
        "owners": "[data-science]",
        "source": f"{name}.py",
        "entry_point": name,
        "inputs": "\n  - {name: data, type: dataset, description: Columns by name}"
        "\n  - {name: factor, type: float, description: The factor, default: 2.0}",
        "outputs": "\n  - {name: scaled, type: dataset, description: The scaled columns}",
        "example": "scaled = scale_columns(data)",
        "last_verified": "2026-11-20",
    }
    fields.update(yaml_changes)
    text = "".join(f"{k}: {v}\n" for k, v in fields.items())
    return {
        "component.yaml": text,
        f"{name}.py": f"def {name}(data, factor=2.0):\n"
        "    return {k: [x * factor for x in v] for k, v in data.items()}\n",
        "README.md": f"# {name}\n\nMultiply columns.\n",
        "tests/test_it.py": f"from ..{name} import {name}\n",
    }


# --- the rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "../escape.py",
        "/etc/passwd",
        "a\\b.py",
        ".hidden",
        "tests/.git/config",
        "a//b.py",
        "tests/../x.py",
        "a/b/c/d.py",
        "c:x.py",
        "%2e%2e/x.py",
        "tests/%2F.py",
        "na me.py",
        "",
        "__pycache__/x.py",
        "x.pyc",
    ],
)
def test_unsafe_file_names_are_refused(bad):
    files = {**component_files(), bad: "x"}
    with pytest.raises(SubmissionError) as e:
        check_files(files)
    assert e.value.status == 400 and e.value.field == "files"


def test_limits_on_count_size_and_shape():
    check_files(component_files())  # the example is fine
    many = {**component_files(), **{f"tests/t{i}.py": "" for i in range(MAX_FILES)}}
    with pytest.raises(SubmissionError) as e:
        check_files(many)
    assert e.value.status == 413 and str(MAX_FILES) in e.value.message
    big = {**component_files(), "data.csv": "é" * (MAX_BYTES // 2)}  # 2 bytes each in UTF-8
    with pytest.raises(SubmissionError) as e:
        check_files(big)
    assert e.value.status == 413
    for files, says in (
        ({**component_files(), "readme.md": "x"}, "clash"),
        ({**component_files(), "tests": "x"}, "both a file and a folder"),
        ({"README.md": "x"}, "component.yaml is missing"),
        ({**component_files(), "x.py": 3}, "must be text"),
        ({**component_files(), "x.py": "a\x00b"}, "binary"),
        ({}, "object of file name"),
        (["component.yaml"], "object of file name"),
    ):
        with pytest.raises(SubmissionError) as e:
            check_files(files)
        assert says in e.value.message, files


def test_user_folders_are_single_safe_names():
    assert user_folder("alice") == "alice"
    assert user_folder("..") == "%2E%2E"
    assert user_folder("a/b") == "a%2Fb"
    assert user_folder("x@example.com") == "x%40example%2Ecom"
    assert user_folder("") == "%00"


def _submit(
    existing: Submission | None = None, published: bool = False, now: float = T0, waiting: int = 0
):
    return submit(
        existing,
        new_id="a" * 16,
        owner="alice",
        name="scale_columns",
        version="0.1.0",
        summary="s",
        files=["component.yaml", "README.md"],
        now=now,
        published=published,
        waiting=waiting,
    )


def _review(sub: Submission, decision: str = "approve", **kw: Any) -> Submission:
    args = {"note": "", "reviewer": "mia", "reviewer_is_admin": False, "now": T0 + 60}
    args["seen"] = revision(sub)  # the reviewer read this upload
    args.update(kw)
    return review(sub, decision=decision, published=args.pop("published", False), **args)


def test_state_machine():
    sub = _submit()
    assert (sub.status, sub.files, sub.reviewer) == (
        "pending",
        ("README.md", "component.yaml"),
        None,
    )
    again = _submit(sub, now=T0 + 10)  # a pending one is replaced in place
    assert (again.id, again.status, again.submitted_at) == (sub.id, "pending", T0 + 10)

    rejected = _review(sub, "reject", note=" Add a test. ")
    assert (rejected.status, rejected.reviewer, rejected.note) == ("rejected", "mia", "Add a test.")
    reopened = _submit(rejected, now=T0 + 120)
    assert reopened.status == "pending" and reopened.note == "" and reopened.reviewer is None
    assert [(h.decision, h.reviewer, h.note) for h in reopened.history] == [
        ("reject", "mia", "Add a test.")
    ]

    approved = _review(reopened, note="thanks")
    assert (approved.status, approved.reviewer, approved.reviewed_at) == (
        "approved",
        "mia",
        T0 + 60,
    )
    for bad in (
        lambda: _submit(approved),  # immutable once approved
        lambda: _submit(None, published=True),  # someone else's is published
        lambda: _review(approved),  # reviewed once
        lambda: _review(rejected, "reject", note="x"),
        lambda: _review(sub, published=True),
    ):
        with pytest.raises(SubmissionError) as e:
            bad()
        assert e.value.status == 409


def test_waiting_submissions_are_capped_per_user():
    with pytest.raises(SubmissionError, match="waiting for review") as e:
        _submit(None, waiting=MAX_PENDING)
    assert e.value.status == 409
    pending = _submit()
    # uploading again over a pending one adds nothing to the queue
    assert _submit(pending, now=T0 + 5, waiting=MAX_PENDING).status == "pending"
    assert _submit(None, waiting=MAX_PENDING - 1).status == "pending"


def test_an_approval_covers_the_upload_the_reviewer_read():
    sub = _submit()
    read = revision(sub)
    swapped = _submit(sub, now=T0 + 30)  # the author uploads again after the review began
    with pytest.raises(SubmissionError) as e:
        _review(swapped, seen=read)
    assert (e.value.status, e.value.field) == (409, "revision")
    with pytest.raises(SubmissionError) as e:
        _review(swapped, seen=None)
    assert (e.value.status, e.value.field) == (400, "revision")
    assert _review(swapped, seen=revision(swapped)).status == "approved"
    assert _review(swapped, "reject", note="no", seen=None).status == "rejected"


def test_review_rules():
    sub = _submit()
    with pytest.raises(SubmissionError) as e:
        _review(sub, reviewer="alice")
    assert e.value.status == 403 and "your own" in e.value.message
    # an admin may, and is recorded as the reviewer
    assert _review(sub, reviewer="alice", reviewer_is_admin=True).reviewer == "alice"
    # a maintainer may withdraw their own, with a note
    assert _review(sub, "reject", reviewer="alice", note="withdrawn").status == "rejected"
    for decision, note, field in (
        ("reject", "", "note"),
        ("reject", "   ", "note"),
        ("maybe", "x", "decision"),
        (None, "", "decision"),
        ("approve", 5, "note"),
        ("approve", "x" * 2001, "note"),
    ):
        with pytest.raises(SubmissionError) as e:
            _review(sub, decision, note=note)
        assert (e.value.status, e.value.field) == (400, field)


# --- the REST API -----------------------------------------------------------------------


@pytest.fixture
def data_dir(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "hub" / "components"


@pytest.fixture
async def svc(service, data_dir):
    return await service()


class Caller:
    """Calls one route and holds every answer to the OpenAPI document."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc

    async def __call__(
        self, method: str, template: str, token: str, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        url = template.format(**params) if params else template
        query = params.pop("_query", "")
        code, answer, headers = await self.svc.call(method, url + query, token=token, body=body)
        check_response(method, template.replace("{sub_id}", "{id}"), code, headers, answer)
        return code, answer


SUBS = f"{API}/submissions"
ONE = f"{API}/submissions/{{sub_id}}"
REV = f"{API}/submissions/{{sub_id}}/review"
PUB = f"{API}/published"


async def test_publish_list_review_and_published(svc, hub_state, data_dir):
    call = Caller(svc)
    alice = hub_state.add_user("alice", groups=("data-science",))
    bob = hub_state.add_user("bob", groups=("ml-engineering",))
    mia = hub_state.add_user("mia", scopes=(REVIEW,))

    # the owner is the token's, whatever the body says
    code, body = await call("POST", SUBS, alice, {"files": component_files(), "owner": "bob"})
    assert code == 201, body
    sub = body["submission"]
    assert (sub["owner"], sub["name"], sub["version"], sub["status"]) == (
        "alice", "scale_columns", "0.1.0", "pending"
    )  # fmt: skip
    assert sub["submitted_at"] == "2026-11-10T12:00:00Z" and sub["reviewer"] is None
    stored = data_dir / "users" / "alice" / "scale_columns" / "0.1.0"
    assert (
        stored / "tests" / "test_it.py"
    ).read_text() == "from ..scale_columns import scale_columns\n"
    assert not list((data_dir / "staging").iterdir())
    code, body = await call("POST", SUBS, bob, {"files": component_files("bob_step")})
    assert code == 201
    bobs = body["submission"]["id"]

    # each sees their own; a reviewer sees everyone's
    code, body = await call("GET", SUBS, alice)
    assert [s["name"] for s in body["submissions"]] == ["scale_columns"]
    assert body["can_review"] is False
    code, body = await call("GET", SUBS, mia, _query="?status=pending")
    assert sorted(s["owner"] for s in body["submissions"]) == ["alice", "bob"]
    assert body["can_review"] is True
    code, body = await call("GET", SUBS, mia, _query="?status=approved")
    assert body["submissions"] == []
    code, body = await call("GET", SUBS, mia, _query="?status=maybe")
    assert code == 400 and body["field"] == "status"

    # someone else's submission is as absent as one that does not exist
    code, missing = await call("GET", ONE, alice, sub_id="0" * 16)
    code2, hidden = await call("GET", ONE, alice, sub_id=bobs)
    assert (code, code2) == (404, 404) and missing == hidden
    code, body = await call("GET", ONE, mia, sub_id=sub["id"])
    assert code == 200 and body["submission"]["contents"]["README.md"].startswith("# scale")

    # reviewing needs the scope; without it the answer names the scope and leaks nothing
    for token in (alice, bob):
        code, body = await call("POST", REV, token, {"decision": "approve"}, sub_id=sub["id"])
        assert code == 403 and REVIEW in body["error"]
    code, body = await call(
        "POST", REV, mia, {"decision": "approve", "note": "ok"}, sub_id="f" * 16
    )
    assert code == 404

    code, body = await call(
        "POST", REV, mia, {"decision": "approve", "note": "Nice."}, sub_id=sub["id"]
    )
    assert code == 400 and body["field"] == "revision"  # which upload was read?
    code, body = await call(
        "POST",
        REV,
        mia,
        {"decision": "approve", "note": "Nice.", "revision": sub["revision"]},
        sub_id=sub["id"],
    )
    assert code == 200, body
    approved = body["submission"]
    assert (approved["status"], approved["reviewer"], approved["note"]) == (
        "approved",
        "mia",
        "Nice.",
    )
    shared = data_dir / "shared" / "scale_columns" / "0.1.0"
    assert sorted(p.relative_to(shared).as_posix() for p in shared.rglob("*") if p.is_file()) == [
        "README.md", "component.yaml", "scale_columns.py", "tests/test_it.py"
    ]  # fmt: skip

    # everyone gets the shared namespace, and their own pending submissions
    code, body = await call("GET", PUB, bob)
    assert [(c["name"], c["version"], c["owner"]) for c in body["shared"]] == [
        ("scale_columns", "0.1.0", "alice")
    ]
    assert body["shared"][0]["files"]["scale_columns.py"].startswith("def scale_columns")
    assert [c["name"] for c in body["mine"]] == ["bob_step"]
    code, body = await call("GET", PUB, alice)
    assert body["mine"] == []  # hers is published now
    etag = body["etag"]
    code, body = await call("GET", PUB, alice, _query=f"?since={etag}")
    assert body == {"etag": etag, "unchanged": True}

    # a published version is immutable, for its author and for everyone else
    code, body = await call("POST", SUBS, alice, {"files": component_files()})
    assert code == 409 and "raise the version" in body["error"]
    code, body = await call("POST", SUBS, bob, {"files": component_files()})
    assert code == 409
    code, body = await call("POST", REV, mia, {"decision": "reject", "note": "x"}, sub_id=sub["id"])
    assert code == 409
    code, body = await call("POST", SUBS, alice, {"files": component_files(version="0.2.0")})
    assert code == 201
    code, body = await call("GET", PUB, alice, _query=f"?since={etag}")
    assert body["unchanged"] is False and [c["version"] for c in body["mine"]] == ["0.2.0"]


async def test_reject_with_a_note_and_resubmit(svc, hub_state):
    call = Caller(svc)
    alice = hub_state.add_user("alice")
    admin = hub_state.add_user("root", admin=True)
    code, body = await call("POST", SUBS, alice, {"files": component_files()})
    sid = body["submission"]["id"]
    code, body = await call("POST", REV, admin, {"decision": "reject"}, sub_id=sid)
    assert code == 400 and body["field"] == "note"
    svc.accountant.clock.advance(60)
    code, body = await call(
        "POST", REV, admin, {"decision": "reject", "note": "Describe the inputs."}, sub_id=sid
    )
    assert code == 200
    assert body["submission"]["status"] == "rejected"
    assert body["submission"]["note"] == "Describe the inputs."
    assert body["submission"]["reviewed_at"] == "2026-11-10T12:01:00Z"
    code, body = await call("GET", SUBS, alice, _query="?status=rejected")
    assert [s["note"] for s in body["submissions"]] == ["Describe the inputs."]
    # fixed and published again: the same slot, pending, the rejection kept
    code, body = await call("POST", SUBS, alice, {"files": component_files()})
    assert code == 201
    again = body["submission"]
    assert (again["id"], again["status"], again["note"]) == (sid, "pending", "")
    assert [(h["reviewer"], h["note"]) for h in again["history"]] == [
        ("root", "Describe the inputs.")
    ]


async def test_self_approval_needs_an_admin(svc, hub_state):
    call = Caller(svc)
    mia = hub_state.add_user("mia", scopes=(REVIEW,))
    admin = hub_state.add_user("root", admin=True)
    code, body = await call("POST", SUBS, mia, {"files": component_files()})
    code, body = await call(
        "POST", REV, mia, {"decision": "approve"}, sub_id=body["submission"]["id"]
    )
    assert code == 403 and "your own" in body["error"]
    code, body = await call("POST", SUBS, admin, {"files": component_files("admin_step")})
    sid, rev = body["submission"]["id"], body["submission"]["revision"]
    code, body = await call(
        "POST", REV, admin, {"decision": "approve", "revision": rev}, sub_id=sid
    )
    assert code == 200 and body["submission"]["reviewer"] == "root"


async def test_group_filtered_reviewer_sees_only_the_group(svc, hub_state):
    call = Caller(svc)
    alice = hub_state.add_user("alice", groups=("data-science",))
    bob = hub_state.add_user("bob", groups=("ml-engineering",))
    lead = hub_state.add_user("lead", scopes=(f"{REVIEW}!group=data-science",))
    ids, revs = {}, {}
    for name, token in (("alice_step", alice), ("bob_step", bob)):
        code, body = await call("POST", SUBS, token, {"files": component_files(name)})
        ids[name], revs[name] = body["submission"]["id"], body["submission"]["revision"]
    code, body = await call("GET", SUBS, lead)
    assert [s["owner"] for s in body["submissions"]] == ["alice"] and body["can_review"]
    code, body = await call("POST", REV, lead, {"decision": "approve"}, sub_id=ids["bob_step"])
    assert code == 404
    approve = {"decision": "approve", "revision": revs["alice_step"]}
    code, body = await call("POST", REV, lead, approve, sub_id=ids["alice_step"])
    assert code == 200


async def test_invalid_folders_are_400_with_file_and_key(svc, hub_state, data_dir):
    call = Caller(svc)
    alice = hub_state.add_user("alice")
    bad_input = component_files(
        inputs="\n  - {name: rows, type: dataset, description: Not a parameter}"
    )
    code, body = await call("POST", SUBS, alice, {"files": bad_input})
    assert code == 400 and body["field"] == "files"
    assert {"file": "component.yaml", "key": "inputs.0.name",
            "message": "'rows' is not a parameter of scale_columns"} in body["errors"]  # fmt: skip
    assert "component.yaml: inputs.0.name: 'rows' is not a parameter" in body["error"]
    assert str(data_dir) not in body["error"]

    no_readme = {k: v for k, v in component_files().items() if k != "README.md"}
    code, body = await call("POST", SUBS, alice, {"files": no_readme})
    assert code == 400 and body["errors"][0]["key"] == "doc"

    outside = component_files(doc="../../users/bob/x/README.md")
    code, body = await call("POST", SUBS, alice, {"files": outside})
    assert code == 400 and [(e["file"], e["key"]) for e in body["errors"]] == [
        ("component.yaml", "doc")
    ]
    assert "the component folder" in body["errors"][0]["message"] or body["errors"][0][
        "message"
    ].startswith("must name a file of the component")
    code, body = await call("POST", SUBS, alice, {"files": no_readme})
    assert body["errors"][0]["message"] == "README.md not found in the component folder"

    broken = {**component_files(), "scale_columns.py": "def scale_columns(:\n"}
    code, body = await call("POST", SUBS, alice, {"files": broken})
    assert code == 400 and body["errors"][0]["key"] == "source"

    code, body = await call("POST", SUBS, alice, {"files": component_files(version="1.0")})
    assert code == 400 and body["errors"][0]["key"] == "version"

    # the source is parsed, never run
    marker = data_dir.parent / "ran"
    runs = {**component_files(), "scale_columns.py": (
        f"open({str(marker)!r}, 'w').close()\n"
        "def scale_columns(data, factor=2.0):\n    return data\n"
    )}  # fmt: skip
    code, body = await call("POST", SUBS, alice, {"files": runs})
    assert code == 201 and not marker.exists()
    assert not (data_dir / "users" / "alice" / "scale_columns" / "1.0").exists()


async def test_limits_and_names_over_http(svc, hub_state, data_dir):
    call = Caller(svc)
    alice = hub_state.add_user("alice")
    many = {**component_files(), **{f"tests/t{i}.py": "" for i in range(MAX_FILES)}}
    code, body = await call("POST", SUBS, alice, {"files": many})
    assert code == 413
    big = {**component_files(), "data.csv": "x" * (MAX_BYTES + 1)}
    code, body = await call("POST", SUBS, alice, {"files": big})
    assert code == 413
    code, body, _ = await svc.call("POST", SUBS, token=alice, raw=b"x" * (4 * MAX_BYTES + 1))
    assert code == 413
    for name in ("../../../escape.py", "/abs.py", "tests/..%2F..%2Fx.py"):
        code, body = await call("POST", SUBS, alice, {"files": {**component_files(), name: ""}})
        assert code == 400 and body["field"] == "files", name
    code, body, _ = await svc.call("POST", SUBS, token=alice, raw=b"not json")
    assert code == 400
    code, body = await call("POST", SUBS, alice, {"files": "component.yaml"})
    assert code == 400
    assert not (data_dir / "users").exists()
    assert not any(data_dir.parent.parent.parent.rglob("escape.py"))


async def test_anonymous_callers_are_refused(svc):
    for method, path in (("GET", SUBS), ("POST", SUBS), ("GET", PUB)):
        code, body, _ = await svc.call(method, path, body={} if method == "POST" else None)
        assert code == 403, path


async def test_two_uploads_of_one_version_at_once(svc, hub_state, data_dir):
    alice = hub_state.add_user("alice")
    results = await asyncio.gather(
        *(
            svc.call("POST", SUBS, token=alice, body={"files": component_files(summary=f"v{i}")})
            for i in range(4)
        )
    )
    assert [r[0] for r in results] == [201] * 4
    assert len({r[1]["submission"]["id"] for r in results}) == 1
    stored = data_dir / "users" / "alice" / "scale_columns" / "0.1.0" / "component.yaml"
    assert any(f"summary: v{i}\n" in stored.read_text() for i in range(4))
    assert len(list((data_dir / "users" / "alice" / "scale_columns").iterdir())) == 1


# --- the hub's side ---------------------------------------------------------------------


def test_maintainers_get_the_review_role_and_servers_may_carry_it():
    platform = platform_with(
        component_review={"maintainers": {"users": ["mia"], "groups": ["ml-engineering"]}}
    )
    c = Config()
    apply_platform(c, platform, {})
    assert REVIEW in c.JupyterHub.custom_scopes
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    role = roles["mlfactory-component-maintainers"]
    assert role["scopes"] == [REVIEW]
    assert (role["users"], role["groups"]) == (["mia"], ["ml-engineering"])
    # the hub hands a server's token only the scopes its user holds
    assert REVIEW in c.Spawner.server_token_scopes
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "mlfactory"]
    assert REVIEW in service["oauth_client_allowed_scopes"]
    c2 = Config()
    apply_platform(c2, platform_with(), {})
    assert "mlfactory-component-maintainers" not in {r["name"] for r in c2.JupyterHub.load_roles}


# --- the command line -------------------------------------------------------------------


def test_cli_requests():
    def req(*argv: str) -> cli.ApiRequest:
        return cli.components_request(cli.build_parser().parse_args(["components", *argv]))

    assert req("submissions") == cli.ApiRequest("GET", f"{SUBS}?status=pending")
    assert req("submissions", "--status", "all") == cli.ApiRequest("GET", f"{SUBS}?status=all")
    assert req("show", "ab/../c") == cli.ApiRequest("GET", f"{SUBS}/ab%2F..%2Fc")
    assert req("approve", "a" * 16, "--revision", "12.5") == cli.ApiRequest(
        "POST",
        f"{SUBS}/{'a' * 16}/review",
        {"decision": "approve", "note": "", "revision": "12.5"},
    )
    assert req("reject", "a" * 16, "--note", "fix it").body == {
        "decision": "reject",
        "note": "fix it",
        "revision": None,
    }
    with pytest.raises(SystemExit):
        req("reject", "a" * 16)  # a rejection needs its note
    with pytest.raises(SystemExit):
        req("approve", "a" * 16)  # an approval names the upload it covers


async def test_cli_against_the_service(svc, hub_state, monkeypatch, capsys):
    alice = hub_state.add_user("alice")
    admin = hub_state.add_user("root", admin=True)
    code, body, _ = await svc.call("POST", SUBS, token=alice, body={"files": component_files()})
    sid = body["submission"]["id"]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", admin)

    async def run(*argv: str) -> int:
        return await asyncio.to_thread(cli.main, ["components", *argv, "--url", svc.url])

    assert await run("submissions") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "ID", "COMPONENT", "OWNER", "STATUS", "SUBMITTED", "REVIEWER", "NOTE"
    ]  # fmt: skip
    assert f"{sid}  scale_columns@0.1.0  alice" in out and "pending" in out
    assert await run("show", sid) == 0
    out = capsys.readouterr().out
    assert "--- README.md\n# scale_columns" in out
    assert await run("reject", sid, "--note", "Add tests.") == 0
    assert "rejected" in capsys.readouterr().out
    assert await run("approve", sid, "--revision", body["submission"]["revision"]) == 1
    assert "already rejected" in capsys.readouterr().err
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", alice)
    assert await run("approve", sid, "--revision", body["submission"]["revision"]) == 1
    assert REVIEW in capsys.readouterr().err
