from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

FRAME = pd.DataFrame({"sku": ["a", "b", "c"], "units": [3, 5, 8]})


@pytest.fixture
def lake(tmp_path) -> dict[str, str]:
    """A filesystem store with a CSV, a Parquet file, a secret next to it and a link out."""
    root = tmp_path / "lake"
    (root / "sales").mkdir(parents=True)
    FRAME.to_csv(root / "sales" / "october.csv", index=False)
    FRAME.to_parquet(root / "sales" / "october.parquet", index=False)
    (root / "sales" / "october.jsonl").write_text(FRAME.to_json(orient="records", lines=True))
    evil = tmp_path / "lake-evil"  # a sibling whose name starts with the root's name
    evil.mkdir()
    FRAME.to_csv(evil / "secret.csv", index=False)
    (root / "escape.csv").symlink_to(evil / "secret.csv")
    (root / "inside.csv").symlink_to(root / "sales" / "october.csv")
    return {"name": "lake", "kind": "filesystem", "url": str(root), "description": "files"}


def test_filesystem_csv_parquet_json_and_columns(component, lake):
    load = component("load_from_datastore")
    csv = load("lake", path="sales/october.csv", stores=[lake])
    assert csv.equals(FRAME)
    parquet = load("lake", path="sales/october.parquet", columns=["units"], stores=[lake])
    assert parquet["units"].tolist() == [3, 5, 8] and list(parquet.columns) == ["units"]
    assert load("lake", path="sales/october.jsonl", stores=[lake])["sku"].tolist() == [
        "a",
        "b",
        "c",
    ]
    assert load("lake", path="./sales//october.csv", stores=[lake]).equals(FRAME)
    assert load("lake", path="inside.csv", stores=[lake]).equals(FRAME)  # a link that stays in


def test_filesystem_paths_cannot_leave_the_root(component, lake, tmp_path):
    load = component("load_from_datastore")
    with pytest.raises(ValueError, match="may not contain '..'"):
        load("lake", path="sales/../../lake-evil/secret.csv", stores=[lake])
    with pytest.raises(ValueError, match="must be relative"):
        load("lake", path=str(tmp_path / "lake-evil" / "secret.csv"), stores=[lake])
    with pytest.raises(PermissionError, match="outside data store 'lake'"):
        load("lake", path="escape.csv", stores=[lake])
    with pytest.raises(FileNotFoundError, match="no file 'sales/none.csv'"):
        load("lake", path="sales/none.csv", stores=[lake])
    with pytest.raises(ValueError, match="max_bytes=10"):
        load("lake", path="sales/october.csv", max_bytes=10, stores=[lake])


def test_sibling_prefix_root_is_refused(component, lake, tmp_path):
    # Root /x/lake; a link to /x/lake-evil shares the string prefix but not the folder.
    (tmp_path / "lake" / "sales" / "prefix.csv").symlink_to(tmp_path / "lake-evil" / "secret.csv")
    with pytest.raises(PermissionError, match="outside"):
        component("load_from_datastore")("lake", path="sales/prefix.csv", stores=[lake])


def test_stores_come_from_the_environment(component, lake, monkeypatch):
    load = component("load_from_datastore")
    other = {"name": "api", "kind": "http", "url": "http://127.0.0.1:9/", "description": ""}
    monkeypatch.setenv("MLFACTORY_DATA_STORES", json.dumps([lake, other]))
    assert load("lake", path="sales/october.csv").equals(FRAME)
    with pytest.raises(
        KeyError, match="no data store named 'crm'; stores available to you: api, lake"
    ):
        load("crm", path="x.csv")
    with pytest.raises(ValueError, match="takes path=, not query="):
        load("lake", query="select 1")
    monkeypatch.setenv("MLFACTORY_DATA_STORES", "[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load("lake", path="sales/october.csv")
    monkeypatch.delenv("MLFACTORY_DATA_STORES")
    with pytest.raises(LookupError, match="MLFACTORY_DATA_STORES is not set"):
        load("lake", path="sales/october.csv")


@pytest.fixture
def http_store(tmp_path) -> Iterator[dict[str, str]]:
    site = tmp_path / "site"
    (site / "exports").mkdir(parents=True)
    FRAME.to_csv(site / "exports" / "units.csv", index=False)
    FRAME.to_parquet(site / "exports" / "units.parquet", index=False)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/exports"
        yield {"name": "exports", "kind": "http", "url": url, "description": "web exports"}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_store(component, http_store):
    load = component("load_from_datastore")
    assert load("exports", path="units.csv", stores=[http_store]).equals(FRAME)
    assert load("exports", path="units.parquet", stores=[http_store], timeout=5).equals(FRAME)
    as_https_kind = {**http_store, "kind": "https"}  # the admin may write either kind
    assert load("exports", path="units.csv", stores=[as_https_kind]).equals(FRAME)
    with pytest.raises(ConnectionError, match="GET missing.csv answered 404"):
        load("exports", path="missing.csv", stores=[http_store])
    with pytest.raises(ValueError, match="may not contain '..'"):
        load("exports", path="../exports/units.csv", stores=[http_store])
    with pytest.raises(ValueError, match="larger than max_bytes=5"):
        load("exports", path="units.csv", max_bytes=5, stores=[http_store])


def test_postgresql_query_with_bound_parameters(component, postgresql_cluster):
    import sqlalchemy as sa

    url = postgresql_cluster.create_database("components_datastore")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table orders (id int, customer text, amount numeric)"))
        conn.execute(
            sa.text("insert into orders values (1, 'ann', 10.5), (2, 'bob', 3), (3, 'ann', 7)")
        )
    store = {
        "name": "warehouse",
        "kind": "postgresql",
        # the platform writes plain postgresql://; the component picks the psycopg 3 driver
        "url": url.replace("postgresql+psycopg://", "postgresql://"),
        "description": "orders",
    }
    load = component("load_from_datastore")
    frame = load(
        "warehouse",
        query="select id, amount from orders where customer = :who order by id",
        params={"who": "ann"},
        stores=[store],
    )
    assert frame["id"].tolist() == [1, 3] and frame["amount"].astype(float).tolist() == [10.5, 7.0]
    injected = load(
        "warehouse",
        query="select id from orders where customer = :who",
        params={"who": "ann' or '1'='1"},
        stores=[store],
    )
    assert injected.empty  # bound, not spliced into the SQL
    with pytest.raises(RuntimeError, match="read-only transaction"):
        load("warehouse", query="delete from orders returning id", stores=[store])
    with pytest.raises(RuntimeError, match="query failed"):
        load("warehouse", query="select * from no_such_table", stores=[store])
    with pytest.raises(ValueError, match="query is required"):
        load("warehouse", stores=[store])
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from orders")).scalar() == 3
    engine.dispose()


@pytest.mark.parametrize(
    ("kind", "url", "package", "kwargs"),
    [
        ("s3", "s3://bucket/exports", "boto3", {"path": "units.csv"}),
        ("mysql", "mysql://reader:pw@db/shop", "pymysql", {"query": "select 1"}),
    ],
)
def test_missing_driver_is_named(component, monkeypatch, kind, url, package, kwargs):
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    store = {"name": "remote", "kind": kind, "url": url, "description": ""}
    with pytest.raises(ImportError, match=f"needs the '{package}' package: pip install {package}"):
        component("load_from_datastore")("remote", stores=[store], **kwargs)


def test_unsupported_kind_and_redacted_password(component):
    load = component("load_from_datastore")
    with pytest.raises(ValueError, match="kind 'ftp'; supported: filesystem, http"):
        load("old", path="a.csv", stores=[{"name": "old", "kind": "ftp", "url": "ftp://x"}])
    store = {"name": "pg", "kind": "postgresql", "url": "postgresql://u:hunter2@127.0.0.1:1/db"}
    with pytest.raises(RuntimeError) as info:
        load("pg", query="select 1", stores=[store], timeout=2)
    assert "hunter2" not in str(info.value) and "u:***@" in str(info.value)
