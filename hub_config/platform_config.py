"""The platform configuration file (``mlfactory.yaml``): the one module every part imports
for it. The ground floor: it imports no other mlfactory part.

Three jobs, three modules, all re-exported here: the schema and its quantities
(``platform_schema``), reading the file and error messages (this module), and where the
platform runs, i.e. the config file's path and the data folders (``platform_runtime``).
Errors name the file, the key path and what was expected, so an admin can fix the file
without reading code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .platform_runtime import (
    DEFAULT_PORT,
    PACKAGED_CONFIG,
    accounts_db_url,
    admin_username,
    choose_backend,
    config_path,
    data_dir,
    engine_dir,
    hub_address,
    hub_state_dir,
    journal_dir,
    logs_dir,
    models_repository,
    platform_db_url,
    prepare_data_dir,
    server_logs_dir,
    volumes_dir,
    workspaces_dir,
)
from .platform_schema import (
    Accounting,
    Adjustable,
    Alerts,
    Budget,
    ComponentReview,
    ComponentSource,
    Containers,
    Culling,
    DataStore,
    Duration,
    EmailAlerts,
    Group,
    IdleLimits,
    Image,
    Models,
    Platform,
    PlatformConfig,
    Pricing,
    Profile,
    Project,
    Range,
    Registry,
    ReviewMaintainers,
    Size,
    SizeRange,
    Slug,
    format_size,
    parse_duration,
    parse_size,
)

__all__ = [
    "DEFAULT_PORT",
    "PACKAGED_CONFIG",
    "Accounting",
    "Adjustable",
    "Alerts",
    "Budget",
    "ComponentReview",
    "ComponentSource",
    "ConfigError",
    "Containers",
    "Culling",
    "DataStore",
    "Duration",
    "EmailAlerts",
    "Group",
    "IdleLimits",
    "Image",
    "Models",
    "Platform",
    "PlatformConfig",
    "Pricing",
    "Profile",
    "Project",
    "Range",
    "Registry",
    "ReviewMaintainers",
    "Size",
    "SizeRange",
    "Slug",
    "accounts_db_url",
    "admin_username",
    "choose_backend",
    "config_path",
    "data_dir",
    "engine_dir",
    "format_size",
    "format_validation_error",
    "hub_address",
    "hub_state_dir",
    "models_repository",
    "journal_dir",
    "load_platform_config",
    "logs_dir",
    "parse_duration",
    "parse_platform_config",
    "parse_size",
    "platform_db_url",
    "prepare_data_dir",
    "server_logs_dir",
    "volumes_dir",
    "workspaces_dir",
]


class ConfigError(ValueError):
    """The platform config is unusable; ``str(err)`` is a message for the admin."""


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):
            out += f".{part}" if out else str(part)
    return out


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line per problem: ``file: key.path: what is wrong``."""
    lines = []
    for e in err.errors(include_url=False):
        where = _loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the example mlfactory.yaml)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        for line in msg.splitlines():  # cross-reference checks report one problem a line
            lines.append(f"{source}: {where}: {line}" if where else f"{source}: {line}")
    return "\n".join(lines)


def parse_platform_config(data: Any, source: str = "mlfactory.yaml") -> PlatformConfig:
    """Validate already-parsed YAML; raise ConfigError naming ``source`` and key paths."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must hold a mapping of keys (profiles:, images:…)")
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(source, e)) from None


def load_platform_config(path: str | os.PathLike[str] | None = None) -> PlatformConfig:
    """Read and validate the config file (default: ``config_path()``, i.e.
    ``$MLFACTORY_CONFIG`` or the example)."""
    path = Path(path) if path else config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the platform config ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return parse_platform_config(data, str(path))
