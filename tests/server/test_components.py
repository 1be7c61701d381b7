"""/mlfactory/components/*: search, items, snippets and sources through a real jupyter server,
with a real git source (a local bare repository), a directory source holding a broken
component, and the owner-only refresh."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from mlfactory.components.catalog import Source
from mlfactory.components.sources import CACHE_ENV, read_manifest
from mlfactory.server import components
from mlfactory.server.components import SETTINGS_KEY, ComponentLibrary, build_catalog
from tornado.httpclient import HTTPClientError

from ..components.test_catalog import make
from ..components.test_sources import Remote, git


@pytest.fixture(autouse=True)
def cache_env_restored(monkeypatch):
    # setup() exports the cache folder for kernels; undo it after each test
    monkeypatch.setenv(CACHE_ENV, "unset")
    monkeypatch.delenv(CACHE_ENV)


@pytest.fixture
def git_env(tmp_path):
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


@pytest.fixture
def remote(tmp_path, git_env) -> Remote:
    (tmp_path / "git").mkdir()
    r = Remote(tmp_path / "git", git_env)
    make(r.work, "fraud_features", "1.0.0", summary="Fraud features.", tags=["fraud"],
         categories=["feature-engineering"])  # fmt: skip
    make(r.work, "fraud_features", "1.1.0", summary="Fraud features.", stability="beta",
         categories=["feature-engineering"])  # fmt: skip
    r.push("components")
    return r


@pytest.fixture
def sources(tmp_path, remote, jp_server_config):
    """A git source, a directory with one good and one broken component, a bad entry."""
    folder = tmp_path / "shared"
    make(folder, "churn_labels", "0.3.0", stability="experimental", folder="churn_labels")
    broken = make(folder, "broken", folder="broken")
    (broken / "README.md").unlink()
    jp_server_config["ComponentLibrary"] |= {
        "cache_dir": str(tmp_path / "cache"),
        "refresh_interval": 0,
        "sources": [
            {"name": "team", "url": remote.url, "ref": "main"},
            {"name": "shared", "path": str(folder)},
            {"name": "evil", "url": "ext::sh%20-c%20id"},
        ],
    }
    return jp_server_config


def library(serverapp) -> ComponentLibrary:
    return serverapp.web_app.settings[SETTINGS_KEY]


async def get(jp_fetch, *path: str, **params: str) -> dict:
    r = await jp_fetch("mlfactory", "components", *path, params=params)
    assert r.headers["Content-Type"].startswith("application/json")
    return json.loads(r.body)


async def refused(jp_fetch, *path: str, method: str = "GET", **params: str) -> HTTPClientError:
    kwargs = {"body": b""} if method == "POST" else {}
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("mlfactory", "components", *path, method=method, params=params, **kwargs)
    body = json.loads(info.value.response.body)
    assert set(body) == {"message"}
    info.value.message_text = body["message"]
    return info.value


SUMMARY_KEYS = {"name", "version", "ref", "summary", "categories", "tags", "stability", "source",
                "source_kind", "owners", "versions", "last_verified"}  # fmt: skip


async def test_search_builtins(jp_fetch):
    body = await get(jp_fetch, "search", q="split", limit="2")
    assert body["total"] >= 2 and len(body["results"]) == 2
    first = body["results"][0]
    assert set(first) == SUMMARY_KEYS
    assert first["ref"] == f"{first['name']}@{first['version']}"
    assert first["source"] == "builtin" and first["source_kind"] == "builtin"
    facets = body["facets"]
    assert {"name": "data-splitting", "count": 2} in facets["categories"] or any(
        f["name"] == "data-splitting" for f in facets["categories"]
    )
    assert facets["sources"] == [{"name": "builtin", "kind": "builtin", "count": body["total"]}]
    page2 = await get(jp_fetch, "search", q="split", limit="2", offset="2")
    assert page2["total"] == body["total"]
    assert not {r["name"] for r in page2["results"]} & {r["name"] for r in body["results"]}
    everything = await get(jp_fetch, "search")
    assert everything["total"] == len(everything["results"]) >= 7  # default limit 50


async def test_search_filters_and_facets_ignore_their_own_filter(jp_fetch):
    body = await get(jp_fetch, "search", stability="beta")
    assert {r["stability"] for r in body["results"]} == {"beta"}
    stabilities = {f["name"]: f["count"] for f in body["facets"]["stabilities"]}
    assert stabilities["stable"] > 0  # counted without the stability filter


@pytest.mark.parametrize(
    "params, parameter",
    [({"stability": "gold"}, "stability"), ({"limit": "x"}, "limit"), ({"limit": "0"}, "limit"),
     ({"limit": "1000"}, "limit"), ({"offset": "-1"}, "offset")],
)  # fmt: skip
async def test_bad_search_parameters_are_400_naming_them(jp_fetch, params, parameter):
    err = await refused(jp_fetch, "search", **params)
    assert err.code == 400 and err.message_text.startswith(f"{parameter}: ")


async def test_item_detail(jp_fetch):
    body = await get(jp_fetch, "items", "time_split")
    assert SUMMARY_KEYS | {"description", "inputs", "outputs", "requirements", "example", "readme",
                           "entry_point", "history"} == set(body)  # fmt: skip
    assert body["ref"] == "time_split@1.0.0" and body["readme"].startswith("# time_split")
    assert body["inputs"][0] == {
        "name": "timestamps",
        "type": "array",
        "description": "One timestamp per row (numbers or datetime64)",
        "default": None,
        "required": True,
    }
    assert body["inputs"][1]["default"] == 0.2 and body["inputs"][1]["required"] is False
    assert body["outputs"][0]["name"] == "train_index"
    assert body["history"] == [
        {"version": "1.0.0", "stability": "beta", "last_verified": body["last_verified"],
         "source": "builtin"}
    ]  # fmt: skip
    same = await get(jp_fetch, "items", "time_split", version="1.0.0")
    assert same == body


async def test_unknown_item_or_version_is_404_saying_what_exists(jp_fetch):
    err = await refused(jp_fetch, "items", "time_split", version="9.0.0")
    assert (
        err.code == 404 and err.message_text == "time_split has no version '9.0.0'. Versions: 1.0.0"
    )
    err = await refused(jp_fetch, "items", "time_spilt")
    assert err.code == 404 and "time_split" in err.message_text
    err = await refused(jp_fetch, "items", "<script>")
    assert err.code == 404 and "No component named '<script>'" in err.message_text


async def test_snippet(jp_fetch):
    body = await get(jp_fetch, "snippet", ref="time_split@1.0.0")
    assert body["ref"] == "time_split@1.0.0"
    assert 'time_split = use("time_split@1.0.0")' in body["code"]
    for ref, code in (("time_split", 400), ("time_split@1.0", 400), ("", 400),
                      ("nope@1.0.0", 404), ("time_split@2.0.0", 404)):  # fmt: skip
        assert (await refused(jp_fetch, "snippet", ref=ref)).code == code, ref


async def test_nothing_is_loaded_until_the_first_request(sources, jp_serverapp, jp_fetch):
    lib = library(jp_serverapp)
    assert lib._catalog is None and lib.initial_fetch is None
    assert os.environ[CACHE_ENV] == sources["ComponentLibrary"]["cache_dir"]
    await get(jp_fetch, "search")
    assert lib.initial_fetch is not None  # started, not awaited by the request
    await lib.initial_fetch


async def test_sources_git_directory_errors(sources, jp_serverapp, jp_fetch, tmp_path, remote):
    first = await get(jp_fetch, "sources")
    team = next(s for s in first["sources"] if s["name"] == "team")
    assert team["status"] in ("fetching", "not-fetched", "ok")
    await library(jp_serverapp).initial_fetch
    body = await get(jp_fetch, "sources")
    assert body["sources"] == [
        {"name": "builtin", "kind": "builtin", "url": "", "ref": "", "status": "ok",
         "fetched_at": None, "error": None, "count": body["sources"][0]["count"]},
        {"name": "team", "kind": "git", "url": remote.url, "ref": "main", "status": "ok",
         "fetched_at": body["sources"][1]["fetched_at"], "error": None, "count": 2},
        {"name": "shared", "kind": "directory", "url": str(tmp_path / "shared"), "ref": "",
         "status": "ok", "fetched_at": None, "error": None, "count": 1},
    ]  # fmt: skip
    assert body["sources"][1]["fetched_at"].endswith("+00:00")
    assert body["errors"][0]["key"] == "sources" and "remote helper" in body["errors"][0]["message"]
    assert body["errors"][1:] == [
        {"source": "shared", "file": "broken/component.yaml", "key": "doc",
         "message": "README.md not found in broken/"}
    ]  # fmt: skip
    # the git components are searchable, with their kind, and counted in the facets
    found = await get(jp_fetch, "search", q="fraud")
    assert [(r["ref"], r["source_kind"]) for r in found["results"]] == [
        ("fraud_features@1.0.0", "git")
    ]
    assert found["results"][0]["versions"] == ["1.1.0", "1.0.0"]
    assert {"name": "team", "kind": "git", "count": 1} in found["facets"]["sources"]
    item = await get(jp_fetch, "items", "fraud_features", version="1.1.0")
    assert item["stability"] == "beta" and [h["version"] for h in item["history"]] == [
        "1.1.0", "1.0.0"]  # fmt: skip
    # kernels find the same sources through the manifest
    manifest = read_manifest(Path(sources["ComponentLibrary"]["cache_dir"]))
    assert [s.name for s in manifest] == ["team", "shared"]


async def test_get_does_not_fetch_refresh_does(sources, jp_serverapp, jp_fetch, remote):
    await get(jp_fetch, "search")
    await library(jp_serverapp).initial_fetch
    make(remote.work, "fraud_features", "2.0.0", summary="Fraud features v2.")
    remote.push("v2")
    for path in ("search", "sources"):
        await get(jp_fetch, path)
    assert (await get(jp_fetch, "items", "fraud_features"))["versions"][0] == "1.1.0"
    r = await jp_fetch("mlfactory", "components", "sources", "refresh", method="POST", body=b"")
    body = json.loads(r.body)
    assert next(s for s in body["sources"] if s["name"] == "team")["count"] == 3
    assert (await get(jp_fetch, "items", "fraud_features"))["versions"][0] == "2.0.0"


async def test_a_failed_fetch_is_reported_and_the_last_checkout_kept(
    sources, jp_serverapp, jp_fetch, remote, tmp_path
):
    await get(jp_fetch, "search")
    await library(jp_serverapp).initial_fetch
    remote.bare.rename(tmp_path / "moved.git")
    r = await jp_fetch("mlfactory", "components", "sources", "refresh", method="POST", body=b"")
    team = next(s for s in json.loads(r.body)["sources"] if s["name"] == "team")
    assert team["status"] == "error" and team["error"].startswith("git fetch failed")
    assert str(tmp_path) not in team["error"].replace(remote.url, "")  # only its own URL
    assert team["count"] == 2 and team["fetched_at"]
    assert (await get(jp_fetch, "search", q="fraud"))["total"] == 1


async def test_refresh_is_for_the_owner_only(
    hub_server_shared_with_caller, sources, jp_serverapp, jp_fetch
):
    err = await refused(jp_fetch, "sources", "refresh", method="POST")
    assert err.code == 403 and "Only the owner" in err.message_text
    assert library(jp_serverapp).initial_fetch is None  # refused before any work
    # reading stays open to those the server is shared with
    assert (await get(jp_fetch, "search", q="split"))["total"] > 0


async def test_refresh_on_a_server_of_ones_own(hub_server_of_caller, jp_fetch):
    r = await jp_fetch("mlfactory", "components", "sources", "refresh", method="POST", body=b"")
    assert json.loads(r.body)["sources"][0]["name"] == "builtin"


async def test_extra_sources_from_another_module(sources, jp_serverapp, jp_fetch, tmp_path):
    lib = library(jp_serverapp)
    await get(jp_fetch, "search")
    await lib.initial_fetch
    make(tmp_path / "published", "shared_metric", "0.1.0", folder="shared_metric")
    lib.set_extra_sources("published", [Source("published", tmp_path / "published", "published")])
    assert (await get(jp_fetch, "search", q="shared_metric"))["total"] == 0  # until refresh
    assert (await get(jp_fetch, "sources"))["sources"][-1]["status"] == "not-fetched"
    await lib.refresh(fetch=False)
    hit = (await get(jp_fetch, "search", q="shared_metric"))["results"][0]
    assert (hit["source"], hit["source_kind"]) == ("published", "published")
    body = await get(jp_fetch, "sources")
    assert body["sources"][-1]["name"] == "published" and body["sources"][-1]["count"] == 1
    manifest = read_manifest(Path(sources["ComponentLibrary"]["cache_dir"]))
    assert [s.name for s in manifest] == ["team", "shared", "published"]
    lib.set_extra_sources("published", [])
    await lib.refresh(fetch=False)
    assert (await get(jp_fetch, "search", q="shared_metric"))["total"] == 0


async def test_nothing_in_the_sources_body_names_a_server_path(
    sources, jp_serverapp, jp_fetch, tmp_path
):
    await get(jp_fetch, "search")
    await library(jp_serverapp).initial_fetch
    body = await get(jp_fetch, "sources")
    for s in body["sources"]:
        s.pop("url")  # the configured location itself is shown on purpose
    assert str(tmp_path) not in json.dumps(body)


def test_settings_are_validated():
    with pytest.raises(Exception, match="fetch_timeout must be a positive"):
        ComponentLibrary(fetch_timeout=0)
    with pytest.raises(Exception, match="refresh_interval must be 0"):
        ComponentLibrary(refresh_interval=-1)


def test_sources_default_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLFACTORY_COMPONENT_SOURCES", '[{"name": "d", "path": "/srv/d"}]')
    assert ComponentLibrary().sources == [{"name": "d", "path": "/srv/d"}]
    monkeypatch.setenv("MLFACTORY_COMPONENT_SOURCES", "{not json")
    assert ComponentLibrary().sources == []


async def test_git_runs_only_through_the_library_settings(sources, jp_serverapp, remote):
    lib = library(jp_serverapp)
    assert lib.git == "git" and lib.fetch_timeout == 60
    assert git(remote.env, remote.work, "rev-parse", "--abbrev-ref", "HEAD") == "main"


@pytest.fixture
def org_source(tmp_path, jp_server_config) -> Path:
    """A directory source with one component, configured before the server starts."""
    folder = tmp_path / "org"
    make(folder, "comp_a", folder="comp_a")
    jp_server_config["ComponentLibrary"] |= {
        "sources": [{"name": "org", "path": str(folder)}],
        "cache_dir": str(tmp_path / "cache"),
    }
    return folder


async def test_the_scan_cache_is_written_after_the_first_list(
    tmp_path, org_source, jp_serverapp, jp_fetch
):
    body = await get(jp_fetch, "search", source="org")
    assert [r["name"] for r in body["results"]] == ["comp_a"]
    await library(jp_serverapp)._saving  # in the background, after the swap
    assert (tmp_path / "cache" / ".scan" / "org.json").is_file()


@pytest.fixture
def early_build(request, jp_server_config) -> str:
    """Where the first build runs (`ComponentLibrary.early_build`), set before the server starts."""
    jp_server_config["ComponentLibrary"]["early_build"] = request.param
    return request.param


@pytest.fixture
def dying_worker(monkeypatch) -> None:
    """The forked worker's build raises; the server's own builds do not."""
    server = os.getpid()

    def dies_in_the_worker(*args: object) -> object:
        if os.getpid() != server:
            raise RuntimeError("the worker died")
        return build_catalog(*args)

    monkeypatch.setattr(components, "build_catalog", dies_in_the_worker)


@pytest.mark.parametrize("early_build", ["process", "thread"], indirect=True)
async def test_the_first_build_starts_with_the_server_and_serves_the_first_list(
    tmp_path, org_source, early_build, jp_serverapp, jp_fetch
):
    """The catalog is built while the server still loads (``start_early``), in a forked
    worker or on a thread: the first list is what the server found then, the first scan's
    cache is written once the catalog is in use, and a change on disk comes in at the next
    refresh."""
    lib = library(jp_serverapp)
    assert lib._early is not None  # started by the extension's setup, before any request
    assert (lib._early_saving is not None) == (early_build == "process")
    await asyncio.wrap_future(lib._early)
    make(org_source, "comp_b", folder="comp_b")  # after the server's build
    body = await get(jp_fetch, "search", source="org")
    assert [r["name"] for r in body["results"]] == ["comp_a"]
    await lib._saving  # by the worker, or by the server after the swap
    assert (tmp_path / "cache" / ".scan" / "org.json").is_file()
    await lib.refresh(fetch=False)
    body = await get(jp_fetch, "search", source="org")
    assert [r["name"] for r in body["results"]] == ["comp_a", "comp_b"]


@pytest.mark.parametrize("early_build", ["process"], indirect=True)
async def test_a_worker_that_fails_leaves_the_first_list_to_a_thread(
    tmp_path, org_source, early_build, dying_worker, jp_serverapp, jp_fetch
):
    """A forked first build that dies costs only time: the first request builds again."""
    lib = library(jp_serverapp)
    with pytest.raises(RuntimeError, match="the worker died"):
        await asyncio.wrap_future(lib._early)
    body = await get(jp_fetch, "search", source="org")
    assert [r["name"] for r in body["results"]] == ["comp_a"]
    await lib._saving
    assert (tmp_path / "cache" / ".scan" / "org.json").is_file()
