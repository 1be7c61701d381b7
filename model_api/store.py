"""The model store: which models, numbered versions and aliases this server serves, and
which ones failed to load and why.

``load_repository`` reads a ``ModelRepository`` into a ``Loaded``; ``ModelStore`` answers
the handlers' lookups (a version, an alias, or the default: ``production`` else the newest)
and refuses what failed to load with its reason, never with another version.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from .auth import ACCESS_FILE, Access, parse_access
from .errors import ModelAPIError, ModelUnavailable, NotFound, NotReady
from .package import ModelRepository
from .wrapper import Model

log = logging.getLogger("mlfactory.model_api")


@dataclass
class _Entry:
    versions: dict[str, Model] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    # version numbers and aliases that failed to load -> why; a request for one is refused,
    # never answered by another version
    unavailable: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # why none of the model is served (unreadable aliases, ...)
    withdrawn: set[str] = field(default_factory=set)  # taken out of service on purpose

    def default_ref(self) -> str | None:
        """The ``production`` alias when the model has one, else its newest version (one that
        was withdrawn on purpose does not count; one that failed to load does)."""
        if "production" in self.aliases or "production" in self.unavailable:
            return "production"
        published = [
            *self.versions,
            *(r for r in self.unavailable if r.isdigit() and r not in self.withdrawn),
        ]
        return max(published, key=version_key) if published else None


def _unavailable(name: str, ref: str | None, reason: str) -> ModelUnavailable:
    what = f"model {name!r}" if ref is None else f"{ref!r} of model {name!r}"
    return ModelUnavailable(
        f"{what} is not served: it failed to load ({reason}); fix "
        "the package and publish it again (a running server picks up new versions)",
        {"model": name, "version": ref, "ready": False, "reason": reason},
    )


class ModelStore:
    """The models this server serves: name -> numbered versions and aliases, plus the
    models, versions and aliases that failed to load and why."""

    def __init__(self) -> None:
        self._models: dict[str, _Entry] = {}
        # who may call each model besides its scopes' holders (the registry's access.yaml)
        self._access: dict[str, Access] = {}
        self.ready = False
        self.loading_error: str | None = None

    def add(self, model: Model, aliases: Iterable[str] = ()) -> None:
        version = model.version or "1"
        model.version = version
        entry = self._models.setdefault(model.name, _Entry())
        entry.versions[version] = model
        for alias in aliases:
            entry.aliases[alias] = version

    def replace(self, loaded: Loaded) -> None:
        """Serve exactly ``loaded`` from now on, swapped in with one assignment: a request
        that already looked up a model keeps that object until it finishes."""
        fresh = ModelStore()
        for model, aliases in loaded.models:
            fresh.add(model, aliases)
        for (name, ref), reason in loaded.unavailable.items():
            fresh.add_unavailable(name, ref, reason)
        for name, version in loaded.withdrawn:
            fresh.mark_withdrawn(name, version)
        # one assignment each; a request reads the access first and the model after, so at
        # worst it sees the new rule with the previous model, never a rule of no model
        self._access = dict(loaded.access)
        self._models = fresh._models

    def set_access(self, access: dict[str, Access]) -> None:
        self._access = dict(access)

    def access(self, name: str) -> Access | None:
        """The model's owner and granted groups, or None (only its scopes let callers in)."""
        return self._access.get(name)

    def mark_withdrawn(self, name: str, version: str) -> None:
        self._models.setdefault(name, _Entry()).withdrawn.add(version)

    def loaded_models(self) -> dict[tuple[str, str], Model]:
        """(name, version) -> the model object served now (a reload reuses them)."""
        return {(n, v): m for n, e in self._models.items() for v, m in e.versions.items()}

    def add_unavailable(self, name: str, ref: str | None, reason: str) -> None:
        """Record that ``ref`` (a version or an alias; None: the whole model) is not served."""
        entry = self._models.setdefault(name, _Entry())
        if ref is None:
            entry.reason = reason
        else:
            entry.unavailable[ref] = reason

    def names(self) -> list[str]:
        return sorted(self._models)

    def problem(self, name: str) -> str | None:
        """Why the model's default version is not served, or None when it is."""
        e = self.entry(name)
        if e.reason is not None:
            return e.reason
        ref = e.default_ref()
        return "no version loaded" if ref is None else e.unavailable.get(ref)

    def entry(self, name: str) -> _Entry:
        e = self._models.get(name)
        if e is None:
            if not self.ready:
                raise NotReady("models are still loading", retry_after=1)
            raise NotFound(
                f"no model named {name!r}; served: {', '.join(self.names()) or 'none'}",
                {"model": name},
            )
        return e

    def get(self, name: str, ref: str | None) -> tuple[Model, str | None]:
        """(model, alias used) for a version number, an alias, or None (production / newest)."""
        e = self.entry(name)
        if e.reason is not None:
            raise _unavailable(name, None, e.reason)
        ref = ref if ref is not None else e.default_ref()
        if ref is None:
            raise _unavailable(name, None, "no version loaded")
        if ref in e.unavailable:
            raise _unavailable(name, ref, e.unavailable[ref])
        m = e.versions.get(ref)
        if m is not None:
            return m, None
        version = e.aliases.get(ref)
        if version is not None:
            return e.versions[version], ref
        raise NotFound(
            f"model {name!r} has no version or alias {ref!r}; versions: "
            f"{', '.join(sorted(e.versions, key=version_key))}; "
            f"aliases: {', '.join(sorted(e.aliases)) or 'none'}",
            {"model": name, "version": ref},
        )


def version_key(v: str) -> tuple[int, str]:
    """Sort key: numbered versions in numeric order, after any alias."""
    return (int(v), v) if v.isdigit() else (-1, v)


@dataclass
class Loaded:
    """What a loader gives the server: models with their aliases, and what failed to load."""

    models: list[tuple[Model, list[str]]] = field(default_factory=list)
    # (model name, version or alias; None: the whole model) -> why it is not served
    unavailable: dict[tuple[str, str | None], str] = field(default_factory=dict)
    # (model name, version) withdrawn from serving on purpose (also in ``unavailable``)
    withdrawn: set[tuple[str, str]] = field(default_factory=set)
    # model name -> its owner and predict groups, from ``<root>/<name>/access.yaml``
    access: dict[str, Access] = field(default_factory=dict)


def read_access(repo: ModelRepository, name: str) -> Access | None:
    """The registry's access facts for ``name``; None when it wrote none. A file that cannot
    be read grants nothing (logged): the model's scopes still let their holders in."""
    try:
        path = repo.root / name / ACCESS_FILE
        return parse_access(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, yaml.YAMLError) as e:
        log.error("ignoring %s/%s: %s", name, ACCESS_FILE, e)
        return None


def _reason(e: Exception, root: os.PathLike[str]) -> str:
    msg = e.message if isinstance(e, ModelAPIError) else f"{type(e).__name__}: {e}"
    # paths relative to the repository: the operator knows where it is, callers need not
    return msg.replace(f"{os.fspath(root)}{os.sep}", "")


def load_repository(
    repo: ModelRepository,
    names: Iterable[str] | None = None,
    previous: dict[tuple[str, str], Model] | None = None,
) -> Loaded:
    """Every version of the named models (all models by default) with their aliases.

    ``previous``: models already loaded, by (name, version); a version whose card still
    names the same artefact digest is reused instead of unpickled again (versions are
    immutable, so a reload costs only what is new).

    A package that cannot be loaded (missing or swapped artefact, newer package format,
    unreadable aliases, an alias naming a version that does not exist or did not load) is
    skipped and reported in ``Loaded.unavailable``; the rest is served.
    """
    out = Loaded()
    for name in names or repo.models():
        access = read_access(repo, name)
        if access is not None:
            out.access[name] = access
        try:
            aliases = repo.aliases(name)
            versions = repo.versions(name)
            withdrawn = repo.withdrawn(name)
            if not versions:
                raise NotFound(f"no model named {name!r} in the repository")
        except Exception as e:
            out.unavailable[(name, None)] = _reason(e, repo.root)
            continue
        loaded: dict[int, Model] = {}
        for v in versions:
            if v in withdrawn:
                out.unavailable[(name, str(v))] = f"version {v} was withdrawn: {withdrawn[v]}"
                out.withdrawn.add((name, str(v)))
                continue
            try:
                loaded[v] = _reuse(repo, name, v, previous) or repo.load(name, v)
            except Exception as e:
                out.unavailable[(name, str(v))] = _reason(e, repo.root)
        for alias, v in aliases.items():
            if v not in versions:
                out.unavailable[(name, alias)] = (
                    f"the alias {alias!r} names version {v}, which does not exist; "
                    f"versions: {', '.join(map(str, versions))}"
                )
            elif v not in loaded:
                out.unavailable[(name, alias)] = (
                    f"the alias {alias!r} names version {v}, which failed to load: "
                    f"{out.unavailable[(name, str(v))]}"
                )
        for v, model in loaded.items():
            out.models.append((model, [a for a, av in aliases.items() if av == v]))
    return out


def _reuse(
    repo: ModelRepository, name: str, version: int, previous: dict[tuple[str, str], Model] | None
) -> Model | None:
    old = (previous or {}).get((name, str(version)))
    card = getattr(old, "card", None)
    if old is None or card is None:
        return None
    return old if repo.card(name, version).artifact.sha256 == card.artifact.sha256 else None
