"""The component catalog at 1,000 components: build time, search latency, the panel's first list.

Generates 1,000 valid synthetic components (about 800 names, some in two or three versions)
in a temporary folder, then measures in one run:

* catalog build: scanning and validating every folder plus building the search index;
* search: p50/p99 of the search endpoint's body (ranked search, facets, a page of 50) over
  a query mix with as-you-type prefixes and filters, against the anchor, a naive linear
  substring scan over the same components giving the same page;
* the panel's first list: ``GET /mlfactory/components/search?limit=50`` against a real
  ``jupyter server`` subprocess with the extension (first call, then warm p50/p99), asked
  the moment the server answers: on first starts (each on a fresh cache folder), after a
  restart, and after JupyterLab's load time.

    .venv/bin/python benchmarks/components.py --components 1000 --requests 300
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform as pyplatform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import yaml
from mlfactory.components import shape
from mlfactory.components.catalog import BUILTIN, Catalog, Source, default_catalog, scan

VERBS = ["load", "clean", "rank", "cluster", "dedupe", "normalise", "tokenise", "merge",
         "encode", "impute", "scale", "split", "train", "tune", "evaluate",
         "detect", "score", "explain", "plot", "profile", "sample", "join", "validate",
         "export", "select", "aggregate"]  # fmt: skip
OBJECTS = ["csv", "parquet", "features", "labels", "outliers", "drift", "churn", "fraud",
           "sessions", "events", "text", "images", "timeseries", "embeddings", "forecast",
           "anomalies", "cohorts", "clicks", "prices", "sensors", "claims", "loans",
           "tickets", "reviews", "inventory", "weather", "ratings", "transactions",
           "devices", "audio", "graphs", "geodata", "surveys", "logs", "orders",
           "policies", "invoices", "shipments", "patients", "trips"]  # fmt: skip
CATEGORIES = ["data-loading", "data-cleaning", "feature-engineering", "data-splitting",
              "training", "evaluation", "monitoring", "visualisation", "explainability",
              "export"]  # fmt: skip
TAGS = ["pandas", "numpy", "sklearn", "xgboost", "pytorch", "time-series", "nlp", "vision",
        "tabular", "streaming", "gpu", "leakage", "fairness", "calibration", "sql", "s3",
        "parquet", "classification", "regression", "clustering"]  # fmt: skip
TYPES = ["dataset", "array", "str", "int", "float", "bool", "dict", "model"]
STABILITY = ["stable"] * 6 + ["beta"] * 2 + ["experimental", "deprecated"]
SENTENCES = [
    "Handles missing values without dropping rows.",
    "Keeps the column order of the input.",
    "Works on pandas DataFrames and dicts of numpy arrays.",
    "Refuses inputs that would leak the target into the features.",
    "Deterministic for a fixed random_state.",
    "Reports what it changed so a reviewer can check it.",
    "Streams large files in chunks to bound memory.",
    "Follows the team's naming conventions for outputs.",
]

# What people type: whole words, two-word queries, as-you-type prefixes, browse with filters.
QUERIES: list[dict[str, str]] = [
    *({"q": "churn"[:n]} for n in range(1, 6)),
    *({"q": "evaluate"[:n]} for n in range(2, 9)),
    *({"q": "fraud features"[:n]} for n in (3, 5, 7, 9, 12, 14)),
    {"q": "split"}, {"q": "time series"}, {"q": "load csv"}, {"q": "drift"},
    {"q": "missing values"}, {"q": "sklearn"}, {"q": "gpu"}, {"q": "xyzzy"},
    {"q": ""}, {"q": "", "category": "training"}, {"q": "", "stability": "stable"},
    {"q": "train", "category": "training", "stability": "beta"},
    {"q": "s", "source": "bench"}, {"q": "detect anomalies"},
]  # fmt: skip


def generate(root: Path, count: int, rng: random.Random) -> int:
    """Write `count` valid component versions under `root`; return how many names."""
    taken = set(Catalog.from_sources([BUILTIN]).names())
    pairs = [(v, o) for v in VERBS for o in OBJECTS if f"{v}_{o}" not in taken]
    rng.shuffle(pairs)
    written, names = 0, 0
    for verb, obj in pairs:
        if written >= count:
            break
        name = f"{verb}_{obj}"
        names += 1
        versions = rng.choices([1, 2, 3], weights=[80, 15, 5])[0]
        for minor in range(min(versions, count - written)):
            inputs = [
                {"name": f"{obj}_data" if i == 0 else f"option_{i}", "type": rng.choice(TYPES),
                 "description": rng.choice(SENTENCES), **({"default": i} if i else {})}
                for i in range(rng.randint(1, 5))
            ]  # fmt: skip
            folder = root / name / f"1.{minor}.0"
            folder.mkdir(parents=True)
            doc = {
                "name": name,
                "version": f"1.{minor}.0",
                "summary": f"{verb.capitalize()} {obj} the way the platform team reviewed.",
                "description": " ".join(rng.sample(SENTENCES, 3)),
                "categories": rng.sample(CATEGORIES, rng.randint(1, 2)),
                "tags": rng.sample(TAGS, rng.randint(1, 4)),
                "stability": rng.choice(STABILITY),
                "owners": [rng.choice(["platform-ml", "risk-ds", "growth-ds", "ops-ml"])],
                "source": f"{name}.py",
                "entry_point": name,
                "inputs": inputs,
                "outputs": [{"name": "result", "type": "any", "description": "The result."}],
                "example": f"result = {name}(data)",
                "last_verified": "2026-11-01",
            }
            (folder / "component.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
            params = ", ".join(p["name"] + ("=None" if "default" in p else "") for p in inputs)
            (folder / f"{name}.py").write_text(
                f'"""{doc["summary"]}"""\n\n\ndef {name}({params}):\n    return None\n'
            )
            (folder / "README.md").write_text(f"# {name}\n\n{doc['description']}\n")
            written += 1
    return names


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def naive_page(components: list, params: dict[str, str], limit: int = 50) -> list[str]:
    """The anchor: every component's text, lower-cased, searched for each word; one hit per
    name (newest version), sorted by name; the same page size."""
    words = params.get("q", "").lower().split()
    seen: dict[str, object] = {}
    for c in components:
        if params.get("category") and params["category"] not in c.categories:
            continue
        if params.get("stability") and c.stability != params["stability"]:
            continue
        if params.get("source") and c.source != params["source"]:
            continue
        text = " ".join([c.name, c.summary, c.description, *c.tags, *c.categories]).lower()
        if all(w in text for w in words):
            prev = seen.get(c.name)
            if prev is None or c.version > prev.version:
                seen[c.name] = c
    return sorted(seen)[:limit]


def time_calls(fn, queries: list[dict[str, str]], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        for q in queries:
            t = time.perf_counter()
            fn(q)
            out.append((time.perf_counter() - t) * 1000)
    return out


def slowest_median(xs: list[float], n_queries: int) -> float:
    """The slowest query's median over the rounds: robust to a busy machine's pauses."""
    per_query = [xs[i::n_queries] for i in range(n_queries)]
    return max(statistics.median(q) for q in per_query)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_bench(
    root: Path,
    tmp: Path,
    requests: int,
    names: int,
    run: str,
    delay: float = 0.0,
    cache: str = "cache",
    early_build: str = "auto",
) -> tuple[float, list[float], float]:
    """Start a real jupyter server with the extension; time the panel's first list, then
    warm requests over the query mix. Returns (first ms, warm ms list, start-up s). Runs
    sharing `cache` (checkouts, scan cache) are restarts of one user's server. `delay`:
    seconds between the server answering and the first list (JupyterLab loading first)."""
    port, token = free_port(), "bench-token"
    config_dir = tmp / f"jupyter-config-{run}"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"mlfactory.server": True}}})
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "MLFACTORY_COMPONENT_SOURCES": json.dumps([{"name": "bench", "path": str(root)}]),
        "MLFACTORY_COMPONENT_CACHE": str(tmp / cache),
        "JUPYTER_TOKEN": token,
    }
    cmd = [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.open_browser=False",
           f"--ServerApp.root_dir={tmp}", "--ComponentLibrary.refresh_interval=0",
           f"--ComponentLibrary.early_build={early_build}",
           *(["--allow-root"] if os.geteuid() == 0 else [])]  # fmt: skip
    log = (tmp / f"server-{run}.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    headers = {"Authorization": f"token {token}"}
    try:
        conn = None
        while True:  # ready when /api/status answers
            if proc.poll() is not None:
                raise SystemExit(
                    "jupyter server exited:\n" + (tmp / f"server-{run}.log").read_text()
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/api/status", headers=headers)
                if conn.getresponse().read() and True:
                    break
            except OSError:
                time.sleep(0.05)
        startup = time.perf_counter() - t0

        def get(params: dict[str, str]) -> dict:
            conn.request(
                "GET", f"/mlfactory/components/search?{urlencode(params)}", headers=headers
            )
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, body
            return json.loads(body)

        time.sleep(delay)  # JupyterLab loading before its panel asks (the catalog builds meanwhile)
        t = time.perf_counter()
        body = get({"limit": "50"})
        first = (time.perf_counter() - t) * 1000
        assert len(body["results"]) == min(50, names) and body["total"] >= names, body["total"]
        mix = [{**q, "limit": "50"} for q in QUERIES]
        warm = time_calls(get, mix, requests // len(mix)) if requests else []
        return first, warm, startup
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--components", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20, help="passes over the query mix")
    ap.add_argument("--requests", type=int, default=300, help="warm HTTP requests")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument(
        "--first-rounds",
        type=int,
        default=3,
        help="first starts, each on a fresh cache folder (min / median / max)",
    )
    ap.add_argument(
        "--lab-load",
        type=float,
        default=1.5,
        help="seconds JupyterLab takes to show its side bar, before anyone can open the panel "
        "(1.6-1.9 s measured here with Chromium on a running server)",
    )
    ap.add_argument(
        "--early-build",
        choices=["auto", "process", "thread"],
        default="auto",
        help="the servers' c.ComponentLibrary.early_build (thread: the build before the worker)",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlf-components-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "bench"
        n_names = generate(root, args.components, random.Random(args.seed))
        source = Source("bench", root, "directory")

        builds, scans, cached = [], [], []
        for _ in range(3):
            t = time.perf_counter()
            cat = default_catalog([source])
            builds.append(time.perf_counter() - t)
        default_catalog([source], cache_dir=tmp / "scan-cache")
        for _ in range(3):
            t = time.perf_counter()
            default_catalog([source], cache_dir=tmp / "scan-cache")
            cached.append(time.perf_counter() - t)
        assert not [e for e in cat.errors if "bench" in e.file], cat.errors[:3]
        found, _ = scan(source)
        for _ in range(3):
            t = time.perf_counter()
            Catalog(found, (), [BUILTIN, source])
            scans.append(time.perf_counter() - t)
        everything = list(cat)

        ours = time_calls(
            lambda q: shape.search_body(cat, shape.search_params({**q, "limit": "50"})),
            QUERIES,
            args.rounds,
        )
        bare = time_calls(lambda q: cat.search(q.get("q", ""), limit=50), QUERIES, args.rounds)
        naive = time_calls(lambda q: naive_page(everything, q), QUERIES, args.rounds)
        first, warm, startup = http_bench(
            root, tmp, args.requests, n_names, "cold", early_build=args.early_build
        )
        restart, _, _ = http_bench(root, tmp, 0, n_names, "restart", early_build=args.early_build)
        # more first starts, each on a fresh cache folder (one user's first server each)
        firsts, startups = [first], [startup]
        for i in range(1, args.first_rounds):
            ms, _, up = http_bench(
                root, tmp, 0, n_names, f"first-{i}", cache=f"cache-first-{i}",
                early_build=args.early_build,
            )  # fmt: skip
            firsts.append(ms)
            startups.append(up)
        # what a user waits for: the server's start-up and then the first list
        whole = [up * 1000 + ms for up, ms in zip(startups, firsts, strict=True)]
        in_lab, _, _ = http_bench(
            root, tmp, 0, n_names, "lab", delay=args.lab_load, cache="cache-lab",
            early_build=args.early_build,
        )  # fmt: skip
        # the servers whose first build ran in a worker (their log says so)
        logs = [p.read_text() for p in tmp.glob("server-*.log")]
        forked = sum("(in a worker process)" in text for text in logs)

    rows = [
        ("catalog build (scan + validate + index), median of 3", statistics.median(builds) * 1000),
        ("  of which the index alone", statistics.median(scans) * 1000),
        ("catalog build from the scan cache (files unchanged)", statistics.median(cached) * 1000),
        ("search endpoint body p50 (search + facets + page)", pct(ours, 50)),
        ("search endpoint body p99", pct(ours, 99)),
        ("  slowest query's median (noise-robust)", slowest_median(ours, len(QUERIES))),
        ("ranked search alone p99", pct(bare, 99)),
        ("anchor: naive substring scan p50", pct(naive, 50)),
        ("anchor: naive substring scan p99", pct(naive, 99)),
        ("  slowest query's median (noise-robust)", slowest_median(naive, len(QUERIES))),
        ("HTTP first list, first start (validates every folder)", first),
        (
            f"  min / median / max of {len(firsts)} first starts",
            f"{min(firsts):.0f} / {statistics.median(firsts):.0f} / {max(firsts):.0f}",
        ),
        (
            "  server start-up of those first starts (until it answers)",
            f"{min(startups) * 1000:.0f} / {statistics.median(startups) * 1000:.0f} / "
            f"{max(startups) * 1000:.0f}",
        ),
        (
            "  start-up + first list of those first starts",
            f"{min(whole):.0f} / {statistics.median(whole):.0f} / {max(whole):.0f}",
        ),
        ("HTTP first list, restarted server (scan cache)", restart),
        (f"HTTP first list, first start, asked {args.lab_load:g} s after start-up", in_lab),
        ("HTTP warm p50 (query mix, limit=50)", pct(warm, 50)),
        ("HTTP warm p99", pct(warm, 99)),
    ]
    print(f"{len(everything)} component versions ({n_names} names + built-ins); "
          f"{len(QUERIES)} queries x {args.rounds} rounds; "
          f"jupyter server up in {startup:.1f} s")  # fmt: skip
    print(f"python {pyplatform.python_version()} on {pyplatform.machine()}, {os.cpu_count()} CPUs,"
          f" load average {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print(f"first builds in a worker process (ComponentLibrary.early_build): {forked} of "
          f"{len(logs)} servers")  # fmt: skip
    print(f"{'measure':58} {'ms':>9}")
    for label, ms in rows:
        print(f"{label:58} {ms:9.2f}" if isinstance(ms, float) else f"{label:58} {ms:>17}")
    print(f"search p99 vs naive p99: {pct(ours, 99) / pct(naive, 99):.2f}x "
          f"(ranked search alone: {pct(bare, 99) / pct(naive, 99):.2f}x)")  # fmt: skip
    print(f"targets: search p99 <= 10 ms: {'met' if pct(ours, 99) <= 10 else 'MISSED'}; "
          f"first list <= 300 ms: first start {'met' if max(firsts) <= 300 else 'MISSED'} "
          f"({'met' if in_lab < 300 else 'MISSED'} when asked after Lab's load), "
          f"restart {'met' if restart < 300 else 'MISSED'}; "
          f"warm p99 < 300 ms: {'met' if pct(warm, 99) < 300 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
