"""``/mlfactory/components/*``: the component catalog for JupyterLab's components panel.

`ComponentLibrary` owns the catalog of this server: the built-ins, the organisation's
sources (directories, git repositories fetched into a cache) and extra sources other
modules add (published components). It loads lazily on the first request, fetches and
scans off the event loop and swaps a new catalog in whole. The handlers stay thin: the
bodies are built by `mlfactory.components.shape`. The route table ends the module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import gc
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.reduction import ForkingPickler
from pathlib import Path, PosixPath
from typing import Any

from jupyter_server.auth.decorator import authorized
from mlfactory.components import shape
from mlfactory.components.catalog import BUILTIN, Catalog, Source, default_catalog
from mlfactory.components.scancache import ScanCache
from mlfactory.components.snippet import snippet
from mlfactory.components.sources import (
    CACHE_ENV,
    SOURCES_ENV,
    FetchError,
    SourceSpec,
    catalog_source,
    default_cache_dir,
    fetch_git,
    parse_sources,
    read_checkout,
    write_manifest,
)
from tornado import web
from tornado.ioloop import PeriodicCallback
from traitlets import Enum, Float, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import component_publish
from .handlers import MLFactoryAPIHandler
from .limits import usable_cpus

SETTINGS_KEY = "mlfactory_components"
README_MAX_BYTES = 256 * 1024


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ComponentLibrary(LoggingConfigurable):
    """This server's component catalog and the state of each of its sources."""

    sources = List(
        help="""The organisation's component sources, in priority order (a version two sources
        both provide comes from the first; the built-ins come before all of them). Each is
        {"name", "url", "ref"} for a git repository (https, ssh, git or file URL, or an
        absolute path; ref is a branch, tag or commit, default "main") or {"name", "path"} for
        a directory on this machine. Entries that are not usable are left out and shown by
        GET /mlfactory/components/sources.

        Default: the JSON list in MLFACTORY_COMPONENT_SOURCES, which the mlfactory spawner
        sets from the platform config's component_sources.
        Example: c.ComponentLibrary.sources = [{"name": "team", "url":
        "https://git.example.com/ml/components.git", "ref": "main"}]
        """,
    ).tag(config=True)

    @default("sources")
    def _default_sources(self) -> list[Any]:
        raw = os.environ.get(SOURCES_ENV, "").strip()
        if not raw:
            return []
        try:
            value = json.loads(raw)
        except ValueError as e:
            self.log.warning("Ignoring %s: not valid JSON (%s).", SOURCES_ENV, e)
            return []
        if not isinstance(value, list):
            self.log.warning("Ignoring %s: expected a JSON list.", SOURCES_ENV)
            return []
        return value

    cache_dir = Unicode(
        help="""Folder holding one checkout per git source (<cache_dir>/<name>), the scan cache
        (<cache_dir>/.scan/, validated components reused while their files are unchanged) and
        the manifest kernels read to find the same components as this server. Created if
        missing; a checkout of another url or ref is fetched again. Deleting it is safe.

        Default: $MLFACTORY_COMPONENT_CACHE, else ~/.cache/mlfactory/components/sources.
        Example: c.ComponentLibrary.cache_dir = "/srv/cache/components"
        """,
    ).tag(config=True)

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        return str(default_cache_dir())

    fetch_timeout = Float(
        60.0,
        help="""Seconds one git source's fetch and checkout may take; git is then killed and the
        source keeps its last good checkout, marked with the error. Must be positive.
        Example: c.ComponentLibrary.fetch_timeout = 120
        """,
    ).tag(config=True)

    refresh_interval = Float(
        3600.0,
        help="""Seconds between background re-fetches of the git sources, counted from the first
        request to the catalog; 0 turns them off (POST /mlfactory/components/sources/refresh
        still refreshes on demand).
        Example: c.ComponentLibrary.refresh_interval = 900
        """,
    ).tag(config=True)

    early_build = Enum(
        ["auto", "process", "thread"],
        "auto",
        help="""Where the first build of the catalog runs while the server starts. "process": in a
        worker forked from the server, on another CPU, so that it does not share the Python
        interpreter with the extensions loading (at 1,000 components, on 2 CPUs, a first
        start's first list took a median of 150-250 ms instead of 345-550 ms, measured by
        benchmarks/components.py); "thread": on a thread;
        "auto": a process when this server may use two CPUs or more (its affinity and its
        cgroup's CPU limit) and runs no other thread yet, else a thread.
        Example: c.ComponentLibrary.early_build = "thread"
        """,
    ).tag(config=True)

    git = Unicode(
        "git",
        help="""The git executable that fetches git sources (a name on PATH or a full path). It
        always runs with hooks, filters, submodules, symlinks and other transports off.
        Example: c.ComponentLibrary.git = "/usr/bin/git"
        """,
    ).tag(config=True)

    @validate("fetch_timeout")
    def _check_timeout(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] <= 0:
            raise TraitError("fetch_timeout must be a positive number of seconds")
        return float(proposal["value"])

    @validate("refresh_interval")
    def _check_interval(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] < 0:
            raise TraitError("refresh_interval must be 0 (off) or a number of seconds")
        return float(proposal["value"])

    def __init__(self, clock: Callable[[], dt.datetime] = _utcnow, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self._extra: dict[str, list[Source]] = {}
        self._catalog: Catalog | None = None
        self._seen: dict[str, Any] = {}  # per source, at the last build: checkout or is_dir
        self._first: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._fetching: set[str] = set()
        self._fetch_errors: dict[str, str] = {}
        self._periodic: PeriodicCallback | None = None
        self.initial_fetch: asyncio.Task[None] | None = None  # the first git fetch, once started
        self._saving: asyncio.Future[None] | None = None  # the last build's scan caches
        self._early: concurrent.futures.Future | None = None  # the first build, if started
        self._early_saving: concurrent.futures.Future | None = None  # its scan caches, forked
        self._early_started = 0.0

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()

    def specs(self) -> tuple[list[SourceSpec], list[str]]:
        return parse_sources(self.sources)

    # -- the catalog ------------------------------------------------------------------------

    async def catalog(self) -> Catalog:
        """The current catalog; the first call builds it from what is on disk and starts the
        first git fetch in the background (a source not fetched yet shows up once it is)."""
        if self._catalog is None:
            if self._first is None:
                self._first = asyncio.ensure_future(self._start())
            try:
                await asyncio.shield(self._first)
            except Exception:
                self._first = None  # let the next request try again
                raise
        assert self._catalog is not None
        return self._catalog

    async def _start(self) -> None:
        async with self._lock:
            await self._rebuild()
        specs, problems = self.specs()
        for problem in problems:
            self.log.warning("Component source left out: %s", problem)
        if any(s.kind == "git" for s in specs):
            self.initial_fetch = asyncio.ensure_future(self.refresh())
        if self.refresh_interval > 0:
            self._periodic = PeriodicCallback(self._tick, self.refresh_interval * 1000)
            self._periodic.start()

    def start_early(self) -> None:
        """Start the first build now, while the server still loads its extensions (no event
        loop yet), rather than once the loop runs: the build overlaps the rest of the start.

        With a CPU to spare (`early_build`), the build runs in a worker forked from the
        server (which has all it needs imported), so it no longer shares the interpreter
        with the extensions loading; otherwise on a thread. If extra sources were registered
        by the first request (`set_extra_sources`), that build is dropped and the first
        request builds with them."""
        self._early_started = time.perf_counter()
        specs, _ = self.specs()
        if self._fork_early_build():
            pool = ProcessPoolExecutor(1, multiprocessing.get_context("fork"), _init_worker)
            self._early = pool.submit(_build_in_worker, specs, self.cache_path)
            self._early_saving = pool.submit(_save_in_worker, self.log.name)
            pool.shutdown(wait=False)  # the worker exits once both are done
            return
        early: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                early.set_result(build_catalog(specs, self.cache_path, {}))
            except BaseException as e:  # the first request builds again and reports it
                early.set_exception(e)

        threading.Thread(target=run, name="mlfactory-components", daemon=True).start()
        self._early = early

    def _fork_early_build(self) -> bool:
        if self.early_build == "auto":
            # forking while another thread runs could copy a lock it holds
            return usable_cpus() >= 2 and threading.active_count() == 1
        return self.early_build == "process"

    def warm_up(self) -> None:
        """Build the catalog in the background (at server start, while JupyterLab loads), so
        the panel's first list does not wait on a cold scan of every source."""

        async def run() -> None:
            try:
                await self.catalog()
            except Exception:  # the first request will try again and report it
                self.log.exception("Building the component catalog failed")

        asyncio.ensure_future(run())

    def stop(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None

    def background(self) -> list[asyncio.Future]:
        """The library's unfinished background work (the first build and git fetch), for
        the extension to cancel when the server stops."""
        tasks = (self._first, self.initial_fetch, self._saving)
        return [t for t in tasks if t is not None and not t.done()]

    def _tick(self) -> None:
        if not self._lock.locked():
            asyncio.ensure_future(self.refresh())

    async def _rebuild(self) -> None:
        loop = asyncio.get_running_loop()
        extra = {key: list(sources) for key, sources in self._extra.items()}  # a snapshot
        if self._saving is not None:  # the last build's caches, before they are read again
            await asyncio.wait([self._saving])
        early, self._early = self._early, None
        early_saving, self._early_saving = self._early_saving, None
        built, started, where = None, self._early_started, ""
        if early is not None and not any(extra.values()):  # it scanned no extra source
            try:
                built = await asyncio.wrap_future(early)
                where = " (in a worker process)" if early_saving else ""
            except Exception:
                self.log.exception("The early build of the component catalog failed; again")
        if built is None:
            early_saving = None
            started = time.perf_counter()
            specs, _ = self.specs()
            built = await loop.run_in_executor(None, build_catalog, specs, self.cache_path, extra)
        catalog, seen, unsaved, unlisted = built
        if unlisted:
            self.log.warning("Kernels will not see this server's component sources: %s", unlisted)
        self.log.info(
            "Component catalog built: %d components from %d sources in %.0f ms%s",
            len(catalog),
            len(catalog.sources),
            (time.perf_counter() - started) * 1000,
            where,
        )
        # one assignment each: a request sees the old catalog or the new one, never half
        self._seen = seen
        self._catalog = catalog
        # written after the swap (or by the worker, once it has answered): the first list
        # does not wait for the scan cache
        if early_saving is not None:
            self._saving = asyncio.wrap_future(early_saving)
        else:
            self._saving = loop.run_in_executor(None, _save_all, unsaved, self.log)

    def set_extra_sources(self, key: str, sources: Iterable[Source]) -> None:
        """Replace the sources registered under `key` (e.g. "published"); they come after
        the configured ones. Takes effect at the next `refresh()`."""
        self._extra[key] = list(sources)

    async def refresh(self, fetch: bool = True) -> None:
        """Re-fetch the git sources (unless `fetch` is False), rebuild the catalog off the
        event loop and swap it in. Calls run one after another."""
        async with self._lock:
            if fetch:
                specs, _ = self.specs()
                await asyncio.gather(*(self._fetch(s) for s in specs if s.kind == "git"))
            await self._rebuild()

    async def _fetch(self, spec: SourceSpec) -> None:
        self._fetching.add(spec.name)
        try:
            await fetch_git(
                spec,
                self.cache_path,
                git=self.git,
                timeout_s=self.fetch_timeout,
                now=self.clock,
            )
            self._fetch_errors.pop(spec.name, None)
        except FetchError as e:
            self.log.warning("Component source %s: %s", spec.name, e)
            self._fetch_errors[spec.name] = str(e)
        except Exception:
            self.log.exception("Fetching component source %s failed", spec.name)
            self._fetch_errors[spec.name] = "unexpected error; the server log has details"
        finally:
            self._fetching.discard(spec.name)

    # -- where each source stands -----------------------------------------------------------

    def states(self) -> list[shape.SourceState]:
        specs, _ = self.specs()
        out = [shape.SourceState(BUILTIN.name, BUILTIN.kind)]
        for spec in specs:
            if spec.kind == "directory":
                ok = bool(self._seen.get(spec.name))
                out.append(
                    shape.SourceState(
                        spec.name,
                        "directory",
                        url=spec.path,
                        status="ok" if ok else "error",
                        error=None if ok else "directory not found",
                    )
                )
                continue
            checkout = self._seen.get(spec.name)
            error = self._fetch_errors.get(spec.name)
            if spec.name in self._fetching:
                status = "fetching"
            elif error:
                status = "error"
            else:
                status = "ok" if checkout else "not-fetched"
            out.append(
                shape.SourceState(
                    spec.name,
                    "git",
                    url=spec.url,
                    ref=spec.ref,
                    status=status,
                    fetched_at=checkout.fetched_at if checkout else None,
                    error=error,
                )
            )
        for key in sorted(self._extra):
            for s in self._extra[key]:
                if s.name not in self._seen:  # registered since the last build
                    out.append(shape.SourceState(s.name, s.kind, status="not-fetched"))
                    continue
                ok = bool(self._seen[s.name])
                out.append(
                    shape.SourceState(
                        s.name,
                        s.kind,
                        status="ok" if ok else "error",
                        error=None if ok else "folder not found",
                    )
                )
        return out

    async def sources_body(self) -> dict[str, Any]:
        catalog = await self.catalog()
        return shape.sources_body(catalog, self.states(), self.specs()[1])


def build_catalog(
    specs: list[SourceSpec], cache_path: Path, extra: dict[str, list[Source]]
) -> tuple[Catalog, dict[str, Any], list[ScanCache], str | None]:
    """The catalog of `specs` and `extra` (scanned off the event loop: a thread or a forked
    worker, so everything it returns pickles), what each source looked like (so that
    answering about the sources reads nothing from disk), the scan caches to write once
    the catalog is in use, and why the kernels' manifest could not be written, if so."""
    seen: dict[str, Any] = {}
    sources: list[Source] = []
    for spec in specs:
        if spec.kind == "directory":
            seen[spec.name] = Path(spec.path).is_dir()
        else:
            seen[spec.name] = read_checkout(cache_path, spec)
        source = catalog_source(spec, cache_path)
        if source is not None:
            sources.append(source)
    for key in sorted(extra):
        for source in extra[key]:
            seen[source.name] = source.root.is_dir()
            sources.append(source)
    unsaved: list[ScanCache] = []
    catalog = default_catalog(sources, cache_path, unsaved)
    try:
        write_manifest(cache_path, sources)
    except OSError as e:
        return catalog, seen, unsaved, str(e)
    return catalog, seen, unsaved, None


def _save_all(caches: list[ScanCache], log: Any) -> None:
    for cache in caches:
        try:
            cache.save()
        except Exception:  # a cache that cannot be written only costs time at the next start
            log.exception("Writing the component scan cache %s failed", cache.path)


# -- the forked worker of the first build ------------------------------------------------------

_worker_unsaved: list[ScanCache] = []  # its scan caches, between its two calls


def _init_worker() -> None:
    # What the worker shares with the server stays out of its collections (walking it would
    # copy every page), and paths travel as text: rebuilt from their parts, they took a
    # third of the result's unpickling, which the server's interpreter pays.
    gc.freeze()
    ForkingPickler.register(PosixPath, lambda p: (PosixPath, (str(p),)))


def _build_in_worker(
    specs: list[SourceSpec], cache_path: Path
) -> tuple[Catalog, dict[str, Any], list[ScanCache], str | None]:
    catalog, seen, unsaved, unlisted = build_catalog(specs, cache_path, {})
    _worker_unsaved[:] = unsaved  # written by the next call, after the server has the catalog
    return catalog, seen, [], unlisted


def _save_in_worker(log_name: str) -> None:
    _save_all(_worker_unsaved, logging.getLogger(log_name))


def start_early(app: Any) -> None:
    """At link time, before the server loads its extensions: create the library (configured
    by ``c.ComponentLibrary``) and start its first build (`ComponentLibrary.start_early`)."""
    app._component_library = ComponentLibrary(parent=app)
    app._component_library.start_early()


def setup(app: Any) -> None:
    """The library (configured by ``c.ComponentLibrary``) for ``app``'s handlers."""
    library = getattr(app, "_component_library", None) or ComponentLibrary(parent=app)
    app.settings[SETTINGS_KEY] = library
    # kernels this server starts inherit it: use() reads the manifest kept there
    os.environ[CACHE_ENV] = str(library.cache_path)


# -- REST -------------------------------------------------------------------------------------


def _read_readme(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            data = f.read(README_MAX_BYTES + 1)
    except OSError:
        return ""
    text = data[:README_MAX_BYTES].decode("utf-8", "replace")
    return text + ("\n\n…" if len(data) > README_MAX_BYTES else "")


class ComponentsHandler(MLFactoryAPIHandler):
    auth_resource = "mlfactory:components"

    @property
    def library(self) -> ComponentLibrary:
        return self.settings[SETTINGS_KEY]

    def reply(self, body: dict[str, Any]) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def fail(self, status: int, error: Exception) -> web.HTTPError:
        return web.HTTPError(status, "%s", str(error))


class SearchHandler(ComponentsHandler):
    """Ranked, filtered, paged search with facet counts."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        keys = ("q", "category", "stability", "source", "limit", "offset")
        try:
            params = shape.search_params({k: self.get_query_argument(k, None) for k in keys})
        except shape.BadRequest as e:
            raise self.fail(400, e) from None
        # components approved since the last look reach this server's catalog (throttled)
        component_publish.sync_soon(self.settings)
        self.reply(shape.search_body(await self.library.catalog(), params))


class ItemHandler(ComponentsHandler):
    """One component version in full, with its README and version history."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        catalog = await self.library.catalog()
        try:
            component = shape.pick(catalog, name, self.get_query_argument("version", None))
        except shape.NotFound as e:
            raise self.fail(404, e) from None
        loop = asyncio.get_running_loop()
        readme = await loop.run_in_executor(None, _read_readme, component.doc_file)
        self.reply(shape.detail(catalog, component, readme))


class SnippetHandler(ComponentsHandler):
    """The code of the cell that uses one exact component version."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        ref = self.get_query_argument("ref", None)
        catalog = await self.library.catalog()
        try:
            component = shape.exact_ref(catalog, ref)
        except shape.BadRequest as e:
            raise self.fail(400, e) from None
        except shape.NotFound as e:
            raise self.fail(404, e) from None
        self.reply({"ref": component.ref, "code": snippet(component)})


class SourcesHandler(ComponentsHandler):
    """Each source's state and the components it could not offer."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.library.sources_body())


class RefreshHandler(ComponentsHandler):
    """Re-fetch the git sources now and rebuild the catalog (the server's owner only)."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.require_owner()
        await self.library.catalog()  # the first load, if this is the first request
        await self.library.refresh()
        self.reply(await self.library.sources_body())


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [
    (r"/mlfactory/components/search", SearchHandler),
    (r"/mlfactory/components/items/(?P<name>[^/]+)", ItemHandler),
    (r"/mlfactory/components/snippet", SnippetHandler),
    (r"/mlfactory/components/sources", SourcesHandler),
    (r"/mlfactory/components/sources/refresh", RefreshHandler),
]
