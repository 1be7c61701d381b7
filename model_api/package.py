"""Model packages on disk and the repository of numbered versions and aliases.

Layout under a repository root::

    <root>/<name>/<version>/model.yaml       the card: task, labels, schema, framework, ...
    <root>/<name>/<version>/model.joblib     the serialized model (or model.pkl)
    <root>/<name>/aliases.yaml               {production: 3, staging: 4}
    <root>/<name>/withdrawn.yaml             {2: "why"}: versions kept but not served

Versions are immutable: a number is reserved with an atomic ``mkdir``, files are written once
and made read-only, and ``model.yaml`` is written last, so a version without a card is
incomplete and ignored. Aliases move; they are replaced atomically.

``<root>/.generation`` changes whenever a version is added or an alias moves: a models
service polls it (one ``stat``) instead of walking the tree to notice a new version.

Security: the serialized model is a pickle, and loading a pickle runs code. Packages are
trusted artefacts, as trusted as the code of the person who published them. The repository
only reads packages inside its configured root (names are checked, symlinks resolved), and the
card records the artefact's SHA-256, checked before unpickling, so a swapped file is refused.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import pickle
import re
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import NotFound, PackageError, PackageVersionError
from .specs import NAME_PATTERN, TensorSpec
from .tasks import OUTPUT_SCHEMA_VERSION, DecisionRule, Task

if TYPE_CHECKING:
    from .wrapper import Model

#: the package layout this code writes; it reads this one and the ones listed in _MIGRATIONS
PACKAGE_FORMAT = 1
# older format -> function upgrading its card dict to the next format
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
CARD = "model.yaml"
ALIASES = "aliases.yaml"
GENERATION = ".generation"
WITHDRAWN = "withdrawn.yaml"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


def mlfactory_version() -> str:
    try:
        return metadata.version("mlfactory")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


class Framework(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    adapter: str
    python: str
    returns: str | None = None


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=r"^model\.(joblib|pkl)$")
    serializer: str = Field(pattern=r"^(joblib|pickle|torch)$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Card(BaseModel):
    """``model.yaml``. Unknown keys are refused so a typo does not pass silently."""

    model_config = ConfigDict(extra="forbid")
    format_version: int
    mlfactory_version: str
    output_schema_version: str
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    task: Task
    labels: list[str] = []
    classes: list[Any] = []
    decision_rule: DecisionRule
    threshold: float | None = None
    thresholds: list[float] | None = None
    interval: float = 0.95
    inputs: list[TensorSpec]
    metrics: dict[str, float] = {}
    framework: Framework
    artifact: Artifact
    created_by: str
    created_at: datetime
    source_notebook: str | None = None
    description: str = ""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dump_model(model: Model, folder: Path) -> tuple[str, str]:
    from . import adapters as ad  # numpy and the frameworks: only when a model is at hand

    obj = model.model
    if model.adapter.name == ad.TorchAdapter.name:
        import torch

        path = folder / "model.pkl"
        torch.save(obj, path)
        return path.name, "torch"
    if model.adapter.name == ad.EstimatorAdapter.name:
        try:
            import joblib
        except ImportError:
            joblib = None
        if joblib is not None:
            path = folder / "model.joblib"
            joblib.dump(obj, path)
            return path.name, "joblib"
    path = folder / "model.pkl"
    with path.open("wb") as f:
        # callables are pickled by reference: their module must be importable where served
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path.name, "pickle"


def _load_artifact(path: Path, serializer: str) -> Any:
    if serializer == "joblib":
        import joblib

        return joblib.load(path)
    if serializer == "torch":
        import torch

        return torch.load(path, weights_only=False)
    with path.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - packages are trusted artefacts (module docstring)


class ModelRepository:
    """Numbered versions and movable aliases of models under one root folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    # --- paths ------------------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
            raise NotFound(f"no model named {name!r}", {"model": str(name)})
        return self._inside(self.root / name)

    def _inside(self, path: Path) -> Path:
        real = path.resolve()
        if not real.is_relative_to(self.root):
            raise PackageError(
                f"{path} resolves to {real}, outside the model repository {self.root}; "
                "packages are only loaded from inside it"
            )
        return real

    # --- reading ----------------------------------------------------------------------------

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if re.fullmatch(NAME_PATTERN, p.name) and p.is_dir()
        )

    def versions(self, name: str) -> list[int]:
        folder = self._model_dir(name)
        if not folder.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in folder.iterdir()
            if p.name.isdigit() and not p.name.startswith("0") and (p / CARD).is_file()
        )

    def aliases(self, name: str) -> dict[str, int]:
        path = self._model_dir(name) / ALIASES
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise PackageError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise PackageError(f"{path} must map aliases to version numbers")
        out: dict[str, int] = {}
        for k, v in data.items():
            if type(v) is not int:  # YAML gives int for 3; "3", 3.0, true are mistakes
                raise PackageError(f"{path}: alias {k!r} must name a version number, not {v!r}")
            out[str(k)] = v
        return out

    def withdrawn(self, name: str) -> dict[int, str]:
        """Versions kept in the repository but not served, with why."""
        path = self._model_dir(name) / WITHDRAWN
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise PackageError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(data, dict) or not all(type(k) is int for k in data):
            raise PackageError(f"{path} must map version numbers to reasons")
        return {k: str(v) for k, v in data.items()}

    def set_serving(self, name: str, version: int, serving: bool, reason: str = "") -> None:
        """Withdraw a version from serving (it stays in the repository) or serve it again."""
        if int(version) not in self.versions(name):
            raise NotFound(f"model {name!r} has no version {version}", {"model": name})
        withdrawn = self.withdrawn(name)
        if serving:
            withdrawn.pop(int(version), None)
        else:
            withdrawn[int(version)] = reason or "withdrawn"
        write_atomic(self._model_dir(name) / WITHDRAWN, yaml.safe_dump(withdrawn))
        self._bump()

    def resolve(self, name: str, ref: str | int | None = None) -> tuple[int, str | None]:
        """(version number, alias used) for a version number, an alias, or ``None``: the
        ``production`` alias when set, else the newest version."""
        versions = self.versions(name)
        if not versions:
            raise NotFound(f"no model named {name!r} in the repository", {"model": name})
        aliases = self.aliases(name)
        if ref is None:
            if "production" in aliases:
                return aliases["production"], "production"
            return versions[-1], None
        ref = str(ref)
        if ref.isdigit() and int(ref) in versions:
            return int(ref), None
        if ref in aliases:
            return aliases[ref], ref
        raise NotFound(
            f"model {name!r} has no version or alias {ref!r}; versions: "
            f"{', '.join(map(str, versions))}; aliases: {', '.join(aliases) or 'none'}",
            {"model": name, "version": ref},
        )

    def card(self, name: str, version: int) -> Card:
        folder = self._inside(self._model_dir(name) / str(int(version)))
        path = folder / CARD
        if not path.is_file():
            raise NotFound(f"model {name!r} has no version {version}", {"model": name})
        return read_card(path)

    def generation(self) -> str:
        """A cheap fingerprint of the repository's index: it changes whenever a version is
        added or an alias moves (by this class's writers), so a server polls it."""
        try:
            st = (self.root / GENERATION).stat()
        except FileNotFoundError:
            return ""
        return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"

    def _bump(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # a new inode each time (temp file + rename): the fingerprint changes even when two
        # writes fall in the same mtime tick
        write_atomic(self.root / GENERATION, f"{os.getpid()} {datetime.now(UTC).isoformat()}\n")

    def load(self, name: str, ref: str | int | None = None) -> Model:
        version, _alias = self.resolve(name, ref)
        card = self.card(name, version)
        folder = self._model_dir(name) / str(version)
        return load_package(folder, root=self.root, card=card)

    # --- writing ----------------------------------------------------------------------------

    def publish(
        self,
        model: Model,
        *,
        created_by: str | None = None,
        source_notebook: str | None = None,
        now: datetime | None = None,
        alias: str | None = None,
    ) -> int:
        """Write ``model`` as the next version of its name; returns the version number."""
        folder = self._model_dir(model.name)
        folder.mkdir(parents=True, exist_ok=True)
        version = self._reserve(folder)
        target = folder / str(version)
        file, serializer = _dump_model(model, target)
        fw_name, fw_version = model.adapter.framework()
        card = Card(
            format_version=PACKAGE_FORMAT,
            mlfactory_version=mlfactory_version(),
            output_schema_version=OUTPUT_SCHEMA_VERSION,
            name=model.name,
            version=version,
            task=model.task,
            labels=list(model.labels),
            classes=_plain(model.classes),
            decision_rule=model.decision_rule,
            threshold=model.threshold,
            thresholds=None if model.thresholds is None else list(model.thresholds),
            interval=model.interval,
            inputs=list(model.schema.inputs),
            metrics=model.metrics,
            framework=Framework(
                name=fw_name,
                version=fw_version,
                adapter=model.adapter.name,
                python="{}.{}.{}".format(*sys.version_info[:3]),
                returns=getattr(model.adapter, "returns", None),
            ),
            artifact=Artifact(file=file, serializer=serializer, sha256=_sha256(target / file)),
            created_by=created_by or _whoami(),
            created_at=now or datetime.now(UTC),
            source_notebook=source_notebook,
            description=model.description,
        )
        write_atomic(target / CARD, yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False))
        for p in target.iterdir():
            p.chmod(0o444)
        model.version = str(version)
        self._bump()
        if alias:
            self.set_alias(model.name, alias, version)
        return version

    def import_package(
        self,
        name: str,
        staged: str | os.PathLike[str],
        *,
        created_by: str,
        source_notebook: str | None = None,
        now: datetime | None = None,
    ) -> tuple[int, Card]:
        """Add the package in folder ``staged`` (``model.yaml`` + its artefact, already checked
        for safe names) as the next version of ``name``; returns (version, card written).

        Nothing is unpickled. The card must be valid for this mlfactory (an unknown package
        format is refused naming both versions), name ``name``, and match its artefact's
        SHA-256. The version number, author, time and notebook are set here, not taken from
        the upload. ``staged`` is emptied (its files are moved in).
        """
        staged = Path(staged)
        card = read_card(staged / CARD)
        if card.name != name:
            raise PackageError(
                f"model.yaml names the model {card.name!r}, but it is published as {name!r}; "
                "publish it under the name in its card"
            )
        artifact = staged / card.artifact.file
        if not artifact.is_file() or artifact.is_symlink():
            raise PackageError(
                f"the package has no {card.artifact.file}, which its model.yaml names as the "
                "serialized model"
            )
        if _sha256(artifact) != card.artifact.sha256:
            raise PackageError(
                f"{card.artifact.file} does not match the SHA-256 in model.yaml "
                "(artifact.sha256); the upload is corrupt or was changed after packaging"
            )
        folder = self._model_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        version = self._reserve(folder)
        target = folder / str(version)
        os.replace(artifact, target / card.artifact.file)
        card = card.model_copy(
            update={
                "version": version,
                "created_by": created_by,
                "created_at": now or datetime.now(UTC),
                "source_notebook": source_notebook,
            }
        )
        write_atomic(target / CARD, yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False))
        for p in target.iterdir():
            p.chmod(0o444)
        self._bump()
        return version, card

    @staticmethod
    def _reserve(folder: Path) -> int:
        existing = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
        version = max(existing, default=0) + 1
        while True:
            try:
                (folder / str(version)).mkdir()  # atomic: two publishers never share a number
                return version
            except FileExistsError:
                version += 1

    def set_alias(self, name: str, alias: str, version: int) -> None:
        if not re.fullmatch(ALIAS_PATTERN, alias):
            raise ValueError(f"alias {alias!r}: use a lowercase word (a number is a version)")
        if int(version) not in self.versions(name):
            raise NotFound(f"model {name!r} has no version {version}", {"model": name})
        aliases = self.aliases(name)
        aliases[alias] = int(version)
        write_atomic(self._model_dir(name) / ALIASES, yaml.safe_dump(aliases))
        self._bump()


def read_card(path: Path) -> Card:
    """A package's ``model.yaml``, upgraded from an older format, validated; PackageError
    (PackageVersionError naming both mlfactory versions) when it cannot be read here."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PackageError("the package has no model.yaml") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise PackageError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise PackageError(f"{path} is not a mapping")
    raw = _upgrade(raw, path)
    try:
        return Card.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise PackageError(f"{path}: {where}: {first['msg']}") from None


def _plain(values: list[Any]) -> list[Any]:
    """numpy scalars -> Python scalars for YAML."""
    return [v.item() if hasattr(v, "item") else v for v in values]


def _whoami() -> str:
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step: readers see the old or the new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _upgrade(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """Bring a card of an older package format to this one, or say why that is impossible."""
    fmt = raw.get("format_version")
    theirs = raw.get("mlfactory_version", "unknown")
    ours = mlfactory_version()
    if not isinstance(fmt, int):
        raise PackageVersionError(
            f"{path} has no package format_version; it was not written by mlfactory "
            f"(this is mlfactory {ours}, package format {PACKAGE_FORMAT})"
        )
    if fmt > PACKAGE_FORMAT:
        raise PackageVersionError(
            f"{path} was written by mlfactory {theirs} in package format {fmt}; this is "
            f"mlfactory {ours}, which reads package formats up to {PACKAGE_FORMAT}. Upgrade "
            f"mlfactory to {theirs} or later where this model is served.",
            {"package_mlfactory_version": theirs, "mlfactory_version": ours},
        )
    while fmt < PACKAGE_FORMAT:
        step = _MIGRATIONS.get(fmt)
        if step is None:
            raise PackageVersionError(
                f"{path} was written by mlfactory {theirs} in package format {fmt}, which "
                f"mlfactory {ours} no longer reads; re-publish the model with mlfactory {ours}.",
                {"package_mlfactory_version": theirs, "mlfactory_version": ours},
            )
        raw = step(raw)
        fmt = raw["format_version"]
    return raw


def load_package(
    folder: str | os.PathLike[str], *, root: str | os.PathLike[str], card: Card | None = None
) -> Model:
    """Load one package folder; it must lie inside ``root`` (the configured repository)."""
    from . import adapters as ad
    from .wrapper import Model

    repo = ModelRepository(root)
    folder = repo._inside(Path(folder))
    if card is None:
        name, version = folder.parent.name, folder.name
        if not version.isdigit():
            raise PackageError(f"{folder} is not a <root>/<name>/<version> package folder")
        card = repo.card(name, int(version))
    artifact = repo._inside(folder / card.artifact.file)
    if not artifact.is_file():
        raise PackageError(
            f"{artifact} is missing: the package's model.yaml names it as the serialized "
            "model; re-publish the model"
        )
    if _sha256(artifact) != card.artifact.sha256:
        raise PackageError(
            f"{artifact} does not match the SHA-256 in its model.yaml; refusing to unpickle it"
        )
    try:
        obj = _load_artifact(artifact, card.artifact.serializer)
    except Exception as e:
        installed = _installed(card.framework.name)
        raise PackageError(
            f"cannot load {card.name} v{card.version}: {type(e).__name__}: {e}. It was saved "
            f"with mlfactory {card.mlfactory_version}, {card.framework.name} "
            f"{card.framework.version}, Python {card.framework.python}; this is mlfactory "
            f"{mlfactory_version()}, {card.framework.name} {installed}, Python "
            "{}.{}.{}".format(*sys.version_info[:3]),
            {"package_mlfactory_version": card.mlfactory_version},
        ) from e
    options = {"returns": card.framework.returns} if card.framework.returns else {}
    adapter = ad.ADAPTERS[card.framework.adapter](obj, card.task, **options)
    model = Model(
        obj,
        task=card.task,
        name=card.name,
        labels=card.labels or None,
        version=card.version,
        input_schema=card.inputs,
        decision_rule=card.decision_rule,
        threshold=card.threshold,
        thresholds=card.thresholds,
        interval=card.interval,
        adapter=adapter,
        description=card.description,
        metrics=card.metrics,
    )
    model.card = card  # type: ignore[attr-defined]
    return model


def _installed(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
