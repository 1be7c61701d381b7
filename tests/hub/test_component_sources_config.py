"""component_sources in the platform config: git repositories or directories, checked with
the same rules the servers apply before running git."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlfactory.components.sources import SourceError, SourceSpec
from mlfactory.hub import platform_config as pc
from mlfactory.hub.platform_config import ConfigError, parse_platform_config

EXAMPLE = Path(pc.__file__).with_name("mlfactory.yaml")


@pytest.fixture
def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def errors_of(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_platform_config(data)
    return str(info.value).splitlines()


GOOD = [
    {"name": "team", "url": "https://git.example.com/ml/components.git"},
    {"name": "ops", "url": "git@git.example.com:ops/components.git", "ref": "v1.2"},
    {"name": "nfs", "url": "/srv/git/components.git", "ref": "0123abcd"},
    {"name": "shared", "path": "/srv/components"},
]


def test_git_and_directory_sources(example):
    example["component_sources"] = GOOD
    config = parse_platform_config(example)
    assert [s.env_entry() for s in config.component_sources] == [
        {"name": "team", "url": "https://git.example.com/ml/components.git", "ref": "main"},
        {"name": "ops", "url": "git@git.example.com:ops/components.git", "ref": "v1.2"},
        {"name": "nfs", "url": "/srv/git/components.git", "ref": "0123abcd"},
        {"name": "shared", "path": "/srv/components"},
    ]
    # the server side accepts every entry the config accepts
    for entry in (s.env_entry() for s in config.component_sources):
        SourceSpec.parse(entry)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "url": "ext::sh -c id"}, "component_sources[0].url: 'ext::sh -c id' is not"),
        ({"name": "a", "url": "-upload-pack=x"}, "component_sources[0].url: "),
        ({"name": "a", "url": "http://example.com/c.git"}, "component_sources[0].url: "),
        ({"name": "a", "url": "https://x/c.git", "ref": "--force"}, "component_sources[0].ref: "),
        ({"name": "a", "url": "https://x/c.git", "ref": "a:b"}, "component_sources[0].ref: "),
        ({"name": "a", "path": "relative"}, "component_sources[0].path: 'relative' is not"),
        ({"name": "a"}, "component_sources[0]: give either url"),
        ({"name": "a", "url": "https://x/c.git", "path": "/srv"}, "component_sources[0]: give"),
        ({"name": "A b", "path": "/srv"}, "component_sources[0].name: 'A b' is not a valid slug"),
    ],
)
def test_bad_entries_name_the_key(example, entry, message):
    example["component_sources"] = [entry]
    lines = errors_of(example)
    assert any(line.startswith(f"mlfactory.yaml: {message}") for line in lines), lines


def test_names_are_unique(example):
    example["component_sources"] = [GOOD[0], {**GOOD[3], "name": "team"}]
    assert "component_sources[1]: 'team' is defined twice" in errors_of(example)[0]


@pytest.mark.parametrize("url", ["ext::sh", "-x", "http://x/c.git", "host:-x", "relative/p"])
def test_server_refuses_what_the_config_refuses(url):
    with pytest.raises(SourceError):
        SourceSpec.parse({"name": "a", "url": url})
