"""The tornado model server: ``ModelServer`` ties the model store, the runner and the
handlers together and builds the application.

``store.py`` holds what is served (versions, aliases, what failed to load), ``runner.py``
where model work runs (thread pool, timeouts, the inline fast path), ``handlers.py`` the
Open Inference Protocol routes plus ``/predict``. ``serve.py`` is the command line.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tornado import web

from .auth import Authorizer
from .handlers import NotFoundHandler, default_handlers
from .package import ModelRepository
from .runner import Runner
from .store import Loaded, ModelStore, load_repository
from .wrapper import Model

log = logging.getLogger("mlfactory.model_api")

_access = logging.getLogger("tornado.access")


def _log_request(handler: web.RequestHandler) -> None:
    # successful predictions are logged at DEBUG: at thousands per second an INFO line each
    # costs more than the prediction; errors are always logged
    status = handler.get_status()
    if status < 400 and not _access.isEnabledFor(logging.DEBUG):
        return
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    ms = 1000.0 * handler.request.request_time()
    _access.log(level, "%d %s %.2fms", status, handler._request_summary(), ms)


class ModelServer:
    """Serves models from an in-process store. Build with models or a loader, then ``app()``."""

    def __init__(
        self,
        *,
        authorizer: Authorizer,
        timeout: float = 30.0,
        workers: int = 4,
        max_pending: int | None = None,
        base_url: str = "/",
        execution: str = "auto",
        runner: Runner | None = None,
    ) -> None:
        self.store = ModelStore()
        self.authorizer = authorizer
        self.runner = runner or Runner(
            workers=workers, timeout=timeout, max_pending=max_pending, execution=execution
        )
        self.base_url = "/" + base_url.strip("/") if base_url.strip("/") else ""
        self.reloads = 0  # how many times watch() swapped in a changed repository

    def add(self, model: Model, aliases: Iterable[str] = ()) -> None:
        self.store.add(model, aliases)

    def mark_ready(self) -> None:
        # models live for the whole process: move them out of the collector's generations so
        # full collections do not walk them (MLflow's 121 ms p99 came from those pauses)
        gc.collect()
        gc.freeze()
        self.store.ready = True

    async def load(self, loader: Callable[[], Loaded | list[tuple[Model, list[str]]]]) -> None:
        """Load models in a thread while the server already answers (503 until ready).

        What failed to load is logged and refused with its reason; the rest is served.
        """
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, loader)
        except Exception as e:
            self.store.loading_error = f"loading models failed: {e}"
            log.exception("loading models failed")
            return
        if not isinstance(loaded, Loaded):
            loaded = Loaded(models=loaded)
        for model, aliases in loaded.models:
            self.add(model, aliases)
            log.info("serving %s version %s %s", model.name, model.version, aliases or "")
        for (name, ref), reason in loaded.unavailable.items():
            self.store.add_unavailable(name, ref, reason)
            what = name if ref is None else f"{name} version {ref}"
            log.error("not serving %s: %s", what, reason)
        for name, version in loaded.withdrawn:
            self.store.mark_withdrawn(name, version)
        self.store.set_access(loaded.access)
        self.mark_ready()

    async def reload(self, repo: ModelRepository, names: Iterable[str] | None = None) -> bool:
        """Serve what the repository holds now: new versions are loaded in a thread, the ones
        already served are reused, and the store is swapped at once. Returns False (and keeps
        serving what it had) when the repository cannot be read."""
        previous = self.store.loaded_models()
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(
                None, lambda: load_repository(repo, names, previous)
            )
        except Exception:
            log.exception("reloading models failed; still serving the models loaded before")
            return False
        self.store.replace(loaded)
        for model, aliases in loaded.models:
            if (model.name, str(model.version)) not in previous:
                log.info("serving %s version %s %s", model.name, model.version, aliases or "")
        gc.freeze()  # the new models join the frozen generation (see mark_ready)
        return True

    async def watch(
        self,
        repo: ModelRepository,
        names: Iterable[str] | None = None,
        *,
        interval: float = 2.0,
        since: str | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        """Poll the repository's generation every ``interval`` seconds and reload when it
        changed: a version published (or an alias moved) is served within one interval plus
        its load time, with no restart. ``since``: the generation read before the first load (so
        a publish during that load is not missed). Runs until cancelled."""
        names = list(names) if names else None
        seen = repo.generation() if since is None else since
        while True:
            await sleep(interval)
            try:
                now = repo.generation()
            except OSError as e:
                log.warning("cannot read the model repository's generation: %s", e)
                continue
            if now != seen and await self.reload(repo, names):
                seen = now
                self.reloads += 1

    def app(self, **settings: Any) -> web.Application:
        p = self.base_url
        kw = {"store": self.store, "authorizer": self.authorizer, "runner": self.runner}
        return web.Application(
            [(p + pattern, handler, kw) for pattern, handler in default_handlers],
            default_handler_class=NotFoundHandler,
            default_handler_args=kw,
            compress_response=False,
            log_function=_log_request,
            **settings,
        )
