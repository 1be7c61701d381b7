"""Publishing and reviewing components from a notebook server, against the real platform
service app (in-process, with the stand-in hub of ``tests/fakehub.py``), and the published
copy the server lays out for its component library."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mlfactory.components.catalog import Catalog, Source
from mlfactory.server import component_publish
from tornado.httpclient import HTTPClientError

from tests.service.test_component_submissions import REVIEW, component_files

from .conftest import CALLER

TOKEN = "hub-api-token"  # what conftest's hub fixtures put in JUPYTERHUB_API_TOKEN
PUBLISH = ("mlfactory", "components", "publish")
SUBMISSIONS = ("mlfactory", "components", "submissions")


class Library:
    """The part of server_ext/components.py's ComponentLibrary this module uses, building a
    real catalog from the sources it is given."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.extra: dict[str, list[Source]] = {}
        self.catalog = Catalog()
        self.refreshes = 0

    def set_extra_sources(self, key: str, sources: list[Source]) -> None:
        self.extra[key] = list(sources)

    async def refresh(self, fetch: bool = True) -> None:
        assert fetch is False  # a publish rescans; it does not fetch the git sources
        self.catalog = Catalog.from_sources(s for ss in self.extra.values() for s in ss)
        self.refreshes += 1


@pytest.fixture
async def svc(service, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    return await service()


@pytest.fixture
def configured(monkeypatch, svc, hub_server_of_caller):
    """The hub spawned this server for alice and pointed it at the platform service."""
    monkeypatch.setenv(component_publish.service_client.SERVICE_URL_ENV, svc.url)
    return svc


@pytest.fixture
def library(jp_serverapp, tmp_path) -> Library:
    lib = Library(tmp_path / "cache")
    jp_serverapp.web_app.settings[component_publish.LIBRARY_KEY] = lib
    jp_serverapp.web_app.settings[component_publish.STATE_KEY] = component_publish.SyncState()
    return lib


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


async def post(jp_fetch, *parts: str, body: Any) -> tuple[int, dict[str, Any]]:
    try:
        r = await jp_fetch(*parts, method="POST", body=json.dumps(body))
    except HTTPClientError as e:
        text = e.response.body.decode()
        assert "Traceback" not in text
        return e.code, json.loads(text)
    return r.code, json.loads(r.body)


async def get(jp_fetch, *parts: str, **params: str) -> tuple[int, dict[str, Any]]:
    try:
        r = await jp_fetch(*parts, params=params)
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body)
    return r.code, json.loads(r.body)


async def own_submissions(svc, token: str = TOKEN) -> list[dict[str, Any]]:
    code, body, _ = await svc.call("GET", "/api/components/submissions", token=token)
    assert code == 200
    return body["submissions"]


async def test_publish_a_folder(configured, hub_state, library, jp_root_dir, jp_fetch):
    hub_state.add_user(CALLER, token=TOKEN)
    write_folder(jp_root_dir / "work" / "scale", component_files())
    (jp_root_dir / "work" / "scale" / "__pycache__").mkdir()
    (jp_root_dir / "work" / "scale" / "__pycache__" / "x.pyc").write_bytes(b"\x00\x01")
    (jp_root_dir / "work" / "scale" / ".ipynb_checkpoints").mkdir()

    code, body = await post(jp_fetch, *PUBLISH, body={"path": "work/scale/"})
    assert code == 201, body
    sub = body["submission"]
    assert (sub["owner"], sub["name"], sub["version"], sub["status"]) == (
        CALLER, "scale_columns", "0.1.0", "pending"
    )  # fmt: skip
    assert sub["files"] == ["README.md", "component.yaml", "scale_columns.py", "tests/test_it.py"]
    # the library now offers it from the caller's own source
    (comp,) = library.catalog.versions("scale_columns")
    assert comp.source == "mine" and str(comp.version) == "0.1.0"
    assert {s.name: s.kind for s in library.extra["published"]} == {
        "shared": "published",
        "mine": "user",
    }
    root = library.cache_dir / "published"
    assert (root / "mine" / "scale_columns" / "0.1.0" / "README.md").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["mine", "shared"]  # no staging left

    code, body = await get(jp_fetch, *SUBMISSIONS, status="pending")
    assert code == 200 and body["can_review"] is False
    assert [s["id"] for s in body["submissions"]] == [sub["id"]]
    code, body = await get(jp_fetch, *SUBMISSIONS, status="maybe")
    assert code == 400 and "status" in body["message"]


async def test_the_servers_own_library_offers_what_was_published(
    configured, hub_state, jp_serverapp, jp_root_dir, jp_fetch, tmp_path
):
    """With server_ext/components.py's ComponentLibrary (not the stand-in above)."""
    hub_state.add_user(CALLER, token=TOKEN)
    real = jp_serverapp.web_app.settings[component_publish.LIBRARY_KEY]
    real.cache_dir = str(tmp_path / "real-cache")
    write_folder(jp_root_dir / "scale", component_files())
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "scale"})
    assert code == 201
    catalog = await real.catalog()
    (comp,) = catalog.versions("scale_columns")
    assert comp.source == "mine"
    assert comp.folder.is_relative_to(tmp_path / "real-cache" / "published" / "mine")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../outside", 400),
        ("/etc", 400),
        ("C:/Windows", 400),
        ("work/../../outside", 400),
        ("work/./scale", 400),
        ("work//scale", 400),
        ("work\\scale", 400),
        ("work%2F..%2F..%2Foutside", 400),
        ("work/%2e%2e/scale", 400),
        ("", 400),
        ("/", 400),
        (None, 400),
        (["work"], 400),
        (".hidden", 400),
        ("link_out", 403),
        ("link_sibling", 403),
        ("work/missing", 404),
        ("work/file.txt", 400),
    ],
)
async def test_paths_that_are_refused(
    configured, hub_state, library, jp_root_dir, jp_fetch, tmp_path, path, code
):
    hub_state.add_user(CALLER, token=TOKEN)
    write_folder(jp_root_dir / "work" / "scale", component_files())
    (jp_root_dir / "work" / "file.txt").write_text("x")
    write_folder(jp_root_dir / ".hidden", component_files())
    outside = write_folder(tmp_path / "outside" / "comp", component_files())
    # a folder whose path starts with the root's: /root-evil next to /root
    sibling = write_folder(Path(f"{jp_root_dir}-evil") / "comp", component_files())
    os.symlink(outside, jp_root_dir / "link_out")
    os.symlink(sibling, jp_root_dir / "link_sibling")

    got, body = await post(jp_fetch, *PUBLISH, body={"path": path})
    assert got == code, body
    assert set(body) == {"message"}
    assert str(tmp_path) not in body["message"]
    assert await own_submissions(configured) == []


async def test_symlinks_inside_the_folder_are_not_followed(
    configured, hub_state, library, jp_root_dir, jp_fetch, tmp_path
):
    hub_state.add_user(CALLER, token=TOKEN)
    folder = write_folder(jp_root_dir / "scale", component_files())
    secret = tmp_path / "secret.txt"
    secret.write_text("hub-api-token")
    os.symlink(secret, folder / "notes.txt")
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "scale"})
    assert code == 400 and body["message"] == "notes.txt: symlinks are not published"
    os.remove(folder / "notes.txt")
    os.symlink(tmp_path, folder / "data")
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "scale"})
    assert code == 400 and "symlinks" in body["message"]
    assert await own_submissions(configured) == []


@pytest.mark.timeout(60)  # without the fix the publish blocks for ever on the FIFO
@pytest.mark.parametrize("fifo", ["notes.txt", "data/rows.csv", "component.yaml"])
async def test_a_fifo_in_the_folder_is_refused_at_once(
    configured, hub_state, library, jp_root_dir, jp_fetch, fifo
):
    """A named pipe blocks whoever opens it for reading until a writer comes: it is refused
    by name, never opened, and the server keeps answering."""
    hub_state.add_user(CALLER, token=TOKEN)
    folder = write_folder(jp_root_dir / "scale", component_files())
    (folder / fifo).parent.mkdir(exist_ok=True)
    (folder / fifo).unlink(missing_ok=True)
    os.mkfifo(folder / fifo)
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "scale"})
    assert code == 400, body
    assert body == {
        "message": f"{fifo} is a named pipe (FIFO): only regular files and folders are "
        "published; remove it"
    }
    assert await own_submissions(configured) == []
    # the server is not stuck: the same folder without the pipe is published
    os.remove(folder / fifo)
    write_folder(folder, {k: v for k, v in component_files().items() if k == fifo})
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "scale"})
    assert code == 201, body


@pytest.mark.timeout(60)
def test_reading_never_blocks_nor_follows_what_was_swapped_in(tmp_path):
    """What lstat saw can change before the open: the open itself must refuse a FIFO
    (without waiting for a writer) and a symlink."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(component_publish.FolderError) as e:
        component_publish._read_bounded(tmp_path / "pipe", "pipe", 10, float("inf"), 10)
    assert (e.value.status, e.value.message) == (
        400, "pipe is a named pipe (FIFO): only regular files and folders are published; remove it"
    )  # fmt: skip
    (tmp_path / "secret").write_text("s3cret")
    os.symlink(tmp_path / "secret", tmp_path / "link")
    with pytest.raises(component_publish.FolderError) as e:
        component_publish._read_bounded(tmp_path / "link", "link", 10, float("inf"), 10)
    assert e.value.message == "link: symlinks are not published"
    # and a read stops one byte past what may still be uploaded, however big the file
    (tmp_path / "big").write_bytes(b"x" * 100_000)
    got = component_publish._read_bounded(tmp_path / "big", "big", 10, float("inf"), 10)
    assert got == b"x" * 11


def test_reading_the_folder_is_bounded_in_time(monkeypatch, tmp_path):
    """The walk and the reads share one deadline (the time is injected: each look at the
    clock moves it one second)."""
    folder = write_folder(tmp_path / "scale", component_files())
    ticks = iter(range(10_000))
    monkeypatch.setattr(component_publish, "clock", lambda: float(next(ticks)))
    with pytest.raises(component_publish.FolderError) as e:
        component_publish.collect_files(folder, timeout_s=2)
    assert e.value.status == 503
    assert e.value.message.startswith("Reading the folder took more than 2 s")
    ticks = iter(range(10_000))
    assert set(component_publish.collect_files(folder, timeout_s=1000)) == set(component_files())


async def test_invalid_components_and_limits_are_refused_before_upload(
    configured, hub_state, library, jp_root_dir, jp_fetch
):
    hub_state.add_user(CALLER, token=TOKEN)
    bad = component_files(inputs="\n  - {name: rows, type: dataset, description: No such}")
    write_folder(jp_root_dir / "bad", bad)
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "bad"})
    assert code == 400
    assert body["errors"] == [
        {"file": "component.yaml", "key": "inputs.0.name",
         "message": "'rows' is not a parameter of scale_columns"}
    ]  # fmt: skip
    assert str(jp_root_dir) not in body["message"]

    many = write_folder(jp_root_dir / "many", component_files())
    for i in range(component_publish.MAX_FILES):
        (many / "tests" / f"t{i}.py").write_text("")
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "many"})
    assert code == 413

    big = write_folder(jp_root_dir / "big", component_files())
    (big / "data.csv").write_text("x" * (component_publish.MAX_BYTES + 1))
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "big"})
    assert code == 413

    binary = write_folder(jp_root_dir / "binary", component_files())
    (binary / "model.pkl").write_bytes(b"\x80\x04\x95\xff")
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "binary"})
    assert code == 400 and "only text files" in body["message"]

    spaced = write_folder(jp_root_dir / "spaced", component_files())
    (spaced / "my notes.md").write_text("x")
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "spaced"})
    assert code == 400 and "my notes.md" in body["message"]
    assert await own_submissions(configured) == []


async def test_the_service_refusal_is_passed_on(
    configured, hub_state, library, jp_root_dir, jp_fetch
):
    hub_state.add_user(CALLER, token=TOKEN)
    admin = hub_state.add_user("root", admin=True)
    write_folder(jp_root_dir / "scale", component_files())
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "scale"})
    code, _, _ = await configured.call(
        "POST",
        f"/api/components/submissions/{body['submission']['id']}/review",
        token=admin,
        body={"decision": "approve", "revision": body["submission"]["revision"]},
    )
    assert code == 200
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "scale"})
    assert code == 409 and "raise the version" in body["message"]


async def test_review_from_a_maintainers_server(
    configured, hub_state, library, jp_root_dir, jp_fetch
):
    hub_state.add_user(CALLER, token=TOKEN, scopes=(REVIEW,))
    bob = hub_state.add_user("bob")
    code, body, _ = await configured.call(
        "POST",
        "/api/components/submissions",
        token=bob,
        body={"files": component_files("bob_step")},
    )
    sid = body["submission"]["id"]
    code, body = await get(jp_fetch, *SUBMISSIONS, status="pending")
    assert body["can_review"] is True and [s["owner"] for s in body["submissions"]] == ["bob"]
    # the reviewer reads the files; the approval then covers that upload
    code, detail = await get(jp_fetch, *SUBMISSIONS, sid)
    assert code == 200 and "component.yaml" in detail["submission"]["contents"]
    read = detail["submission"]["revision"]
    code, body = await get(jp_fetch, *SUBMISSIONS, "0" * 16)
    assert code == 404

    code, body = await post(jp_fetch, *SUBMISSIONS, sid, "review", body={"decision": "reject"})
    assert code == 400 and "note" in body["message"]
    code, body = await post(
        jp_fetch,
        *SUBMISSIONS,
        sid,
        "review",
        body={"decision": "approve", "note": "Good.", "revision": read},
    )
    assert code == 200, body
    assert (body["submission"]["status"], body["submission"]["reviewer"]) == ("approved", CALLER)
    (comp,) = library.catalog.versions("bob_step")
    assert comp.source == "shared"
    again = {"decision": "approve", "revision": read}
    code, body = await post(jp_fetch, *SUBMISSIONS, sid, "review", body=again)
    assert code == 409
    for bad in ("sample", "A" * 16, "a" * 17):
        code, body = await post(jp_fetch, *SUBMISSIONS, bad, "review", body={"decision": "approve"})
        assert code == 404, bad


async def test_review_without_the_scope_is_403_with_the_services_words(
    configured, hub_state, library, jp_fetch
):
    hub_state.add_user(CALLER, token=TOKEN)
    bob = hub_state.add_user("bob")
    code, body, _ = await configured.call(
        "POST", "/api/components/submissions", token=bob, body={"files": component_files()}
    )
    sid = body["submission"]["id"]
    code, body = await post(jp_fetch, *SUBMISSIONS, sid, "review", body={"decision": "approve"})
    assert code == 403 and REVIEW in body["message"]
    assert library.refreshes == 0


async def test_listing_refreshes_the_published_copy_lazily(
    configured, hub_state, library, jp_fetch, jp_serverapp, monkeypatch
):
    hub_state.add_user(CALLER, token=TOKEN)
    admin = hub_state.add_user("root", admin=True)
    code, body, _ = await configured.call(
        "POST", "/api/components/submissions", token=admin, body={"files": component_files()}
    )
    await configured.call(
        "POST",
        f"/api/components/submissions/{body['submission']['id']}/review",
        token=admin,
        body={"decision": "approve", "revision": body["submission"]["revision"]},
    )
    now = [1000.0]
    monkeypatch.setattr(component_publish, "clock", lambda: now[0])
    state = jp_serverapp.web_app.settings[component_publish.STATE_KEY]

    await get(jp_fetch, *SUBMISSIONS)
    assert state.task is not None
    await state.task
    assert library.refreshes == 1 and library.catalog.versions("scale_columns")
    first = state.task
    now[0] += component_publish.SYNC_EVERY_S - 1
    await get(jp_fetch, *SUBMISSIONS)
    assert state.task is first  # fresh enough: no new request
    now[0] += 2
    await get(jp_fetch, *SUBMISSIONS)
    assert state.task is not first
    await state.task
    assert library.refreshes == 1  # asked, but nothing changed (the etag matched)


async def test_no_service_is_503_and_nothing_breaks(hub_server_of_caller, library, jp_fetch):
    for call in (
        post(jp_fetch, *PUBLISH, body={"path": "x"}),
        get(jp_fetch, *SUBMISSIONS),
        post(jp_fetch, *SUBMISSIONS, "a" * 16, "review", body={"decision": "approve"}),
    ):
        code, body = await call
        assert code == 503
        assert body["reason"] == "not-configured"
        assert "MLFACTORY_SERVICE_URL is unset" in body["message"]
    assert await component_publish.sync_published({component_publish.LIBRARY_KEY: library}) is False
    assert library.refreshes == 0


async def test_service_down_is_503(monkeypatch, hub_server_of_caller, library, jp_fetch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv(component_publish.service_client.SERVICE_URL_ENV, f"http://127.0.0.1:{dead}")
    code, body = await get(jp_fetch, *SUBMISSIONS)
    assert (code, body["reason"]) == (503, "unreachable")


async def test_only_the_owner_may_publish_list_or_review(
    monkeypatch, svc, hub_server_shared_with_caller, library, jp_root_dir, jp_fetch
):
    monkeypatch.setenv(component_publish.service_client.SERVICE_URL_ENV, svc.url)
    write_folder(jp_root_dir / "scale", component_files())
    for call in (
        post(jp_fetch, *PUBLISH, body={"path": "scale"}),
        get(jp_fetch, *SUBMISSIONS),
        post(jp_fetch, *SUBMISSIONS, "a" * 16, "review", body={"decision": "approve"}),
    ):
        code, body = await call
        assert code == 403 and body["message"].startswith("Only the owner of this server (bob)")


async def test_authorizer_is_consulted(deny_all, configured, library, jp_fetch):
    code, body = await post(jp_fetch, *PUBLISH, body={"path": "x"})
    assert code == 403
    assert deny_all.asked == [("write", "mlfactory:components")]


# --- the published copy (no server) -------------------------------------------------------


def test_materialise_swaps_whole_folders_and_skips_unsafe_entries(tmp_path):
    root = tmp_path / "published"
    good = component_files()
    first = {"shared": [{"name": "scale_columns", "version": "0.1.0", "files": good}], "mine": []}
    component_publish.materialise(root, first)
    assert (root / "shared" / "scale_columns" / "0.1.0" / "component.yaml").is_file()
    hostile = {
        "shared": [
            {"name": "../escape", "version": "0.1.0", "files": good},
            {"name": "ok_step", "version": "../../x", "files": good},
            {"name": "bad_files", "version": "1.0.0", "files": {**good, "../../evil.py": "x"}},
            {"name": "not_a_dict"},
            "nonsense",
        ],
        "mine": [{"name": "mine_step", "version": "0.2.0", "files": component_files("mine_step")}],
    }
    component_publish.materialise(root, hostile)
    assert not (root / "shared" / "scale_columns").exists()  # replaced whole
    assert list((root / "shared").iterdir()) == []
    assert (root / "mine" / "mine_step" / "0.2.0" / "mine_step.py").is_file()
    assert sorted(p.name for p in tmp_path.rglob("*evil*")) == []
    assert sorted(p.name for p in tmp_path.rglob("escape*")) == []
    assert sorted(p.name for p in root.iterdir()) == ["mine", "shared"]
