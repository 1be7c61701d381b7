"""The platform config file: sizes, durations, the shipped example and admin-facing errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlfactory.hub import platform_config as pc
from mlfactory.hub.platform_config import (
    ConfigError,
    data_dir,
    format_size,
    load_platform_config,
    parse_duration,
    parse_platform_config,
    parse_size,
)

EXAMPLE = Path(pc.__file__).with_name("mlfactory.yaml")


@pytest.fixture
def example() -> dict:
    """A fresh, mutable copy of the shipped example."""
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def errors_of(data, source: str = "mlfactory.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_platform_config(data, source)
    return str(info.value).splitlines()


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16Gi", 17179869184),
        ("512Mi", 536870912),
        ("1.5Gi", 1610612736),
        ("2G", 2_000_000_000),
        ("4Ki", 4096),
        ("1Ti", 2**40),
        ("3M", 3_000_000),
        ("1024", 1024),
        (" 2Gi ", 2 * 2**30),
        (0, 0),
        (123456, 123456),
    ],
)
def test_parse_size_accepts_quantities(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad", ["16 GB", "16gb", "16GB", "", "1e9", "Gi", "-1", "16gi", None, True]
)
def test_parse_size_rejects_with_advice(bad):
    with pytest.raises(ValueError, match=r"is not a size; use e\.g\. '16Gi'"):
        parse_size(bad)


@pytest.mark.parametrize("bad", [-1, 1.5])
def test_parse_size_rejects_negative_and_float_numbers(bad):
    with pytest.raises(ValueError, match=r"use e\.g\. '16Gi'"):
        parse_size(bad)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (2 * 2**30, "2Gi"),
        (512 * 2**20, "512Mi"),
        (1536 * 2**20, "1536Mi"),
        (3 * 2**40, "3Ti"),
        (2**50, "1Pi"),
        (4096, "4Ki"),
        (1000, "1000"),
        (0, "0"),
    ],
)
def test_format_size_shortest_exact_binary_unit(n, expected):
    assert format_size(n) == expected


@pytest.mark.parametrize("text", ["16Gi", "512Mi", "10Gi", "1Ki", "7"])
def test_format_size_round_trips(text):
    assert format_size(parse_size(text)) == text


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("45s", 45), ("90", 90), (3600, 3600), (0, 0)],
)
def test_parse_duration(value, expected):
    assert parse_duration(value) == expected


@pytest.mark.parametrize("bad", ["1 hour", "1.5h", "h", "", "-5", -5, True, None, 2.5])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError, match="is not a duration; use seconds or e.g. '30m'"):
        parse_duration(bad)


# --- the shipped example -----------------------------------------------------------------------


def test_example_loads_with_expected_shape():
    cfg = load_platform_config(EXAMPLE)
    cpu = [p for p in cfg.profiles if p.gpu == 0]
    gpu = [p for p in cfg.profiles if p.gpu > 0]
    assert len(cpu) >= 3
    assert len(gpu) >= 1
    assert all(p.gpu_type for p in gpu)
    assert len(cfg.groups) >= 2
    # every profile has a price: fixed, or per unit from the pricing section
    assert all(p.price_per_hour or cfg.pricing for p in cfg.profiles)
    assert cfg.pricing.cpu_hour > 0 and cfg.pricing.memory_gib_hour > 0
    assert cfg.default_budget.amount > 0
    assert cfg.default_budget.thresholds == (0.5, 0.8, 1.0)
    assert cfg.accounting.when_unreachable == "refuse-paid"
    assert cfg.culling.idle_timeout == 3600
    assert cfg.culling.warn_before == 600


def test_example_defaults_and_lookup():
    cfg = load_platform_config(EXAMPLE)
    assert cfg.default_profile.slug == "cpu-small"
    assert cfg.default_profile.memory == 2 * 2**30
    assert cfg.default_image.slug == "python-ds"
    assert cfg.profile("gpu-t4").gpu == 1
    assert cfg.profile("nope") is None


def test_default_falls_back_to_first(example):
    for p in example["profiles"]:
        p.pop("default", None)
    for i in example["images"]:
        i.pop("default", None)
    cfg = parse_platform_config(example)
    assert cfg.default_profile.slug == example["profiles"][0]["slug"]
    assert cfg.default_image.slug == example["images"][0]["slug"]


def test_explicit_default_wins_over_first(example):
    example["profiles"][0]["default"] = False
    example["profiles"][2]["default"] = True
    assert parse_platform_config(example).default_profile.slug == example["profiles"][2]["slug"]


# --- error formatting --------------------------------------------------------------------------


def test_bad_size_names_file_key_path_and_advice(example):
    example["profiles"][2]["memory"] = "16 GB"
    assert errors_of(example) == [
        "mlfactory.yaml: profiles[2].memory: '16 GB' is not a size; use e.g. '16Gi'"
    ]


def test_source_name_is_used(example):
    example["profiles"][0]["disk"] = "lots"
    (line,) = errors_of(example, source="/etc/mlfactory/site.yaml")
    assert line.startswith("/etc/mlfactory/site.yaml: profiles[0].disk: 'lots' is not a size")


def test_bad_duration_key_path(example):
    example["culling"]["idle_timeout"] = "1 hour"
    (line,) = errors_of(example)
    assert line.startswith("mlfactory.yaml: culling.idle_timeout: '1 hour' is not a duration")


def test_unknown_key(example):
    example["profiles"][0]["memroy"] = "2Gi"
    (line,) = errors_of(example)
    assert line.startswith("mlfactory.yaml: profiles[0].memroy: unknown key")


def test_unknown_top_level_key(example):
    example["profile"] = []
    (line,) = errors_of(example)
    assert line.startswith("mlfactory.yaml: profile: unknown key")


def test_missing_required_keys(example):
    del example["profiles"][1]["memory"]
    del example["default_budget"]["amount"]
    lines = errors_of(example)
    assert "mlfactory.yaml: profiles[1].memory: required key is missing" in lines
    assert "mlfactory.yaml: default_budget.amount: required key is missing" in lines
    assert len(lines) == 2


def test_every_problem_reported_at_once(example):
    example["profiles"][0]["memory"] = "16gb"
    example["profiles"][3]["cpu"] = 0
    example["images"][1]["imagee"] = "x"
    lines = errors_of(example)
    assert len(lines) == 3
    assert lines[0].startswith("mlfactory.yaml: profiles[0].memory: '16gb' is not a size")
    assert lines[1].startswith("mlfactory.yaml: profiles[3].cpu: ")
    assert lines[2].startswith("mlfactory.yaml: images[1].imagee: unknown key")


def test_group_naming_unknown_profile(example):
    example["groups"][0]["profiles"] = ["cpu-small", "x"]
    line = errors_of(example)[0]  # knock-on problems follow, a line each
    assert line.startswith(
        "mlfactory.yaml: groups[0].profiles[1]: 'x' is not a defined profile; "
        "defined: cpu-small, cpu-medium, cpu-large, gpu-t4"
    )


def test_group_naming_unknown_image(example):
    example["groups"][1]["images"] = ["tensorflow"]
    (line,) = errors_of(example)
    assert "groups[1].images[0]: 'tensorflow' is not a defined image; defined: python-ds" in line


def test_data_store_naming_unknown_group(example):
    example["data_stores"] = [
        {"name": "lake", "kind": "s3", "url": "s3://lake", "groups": ["data-science", "ops"]}
    ]
    (line,) = errors_of(example)
    assert "data_stores[0].groups[1]: 'ops' is not a defined group" in line


def test_duplicate_profile_slug(example):
    example["profiles"][2]["slug"] = "cpu-small"
    line = errors_of(example)[0]  # knock-on problems follow, a line each
    assert "profiles[2]: 'cpu-small' is defined twice" in line


def test_duplicate_group_name(example):
    example["groups"][1]["name"] = example["groups"][0]["name"]
    line = errors_of(example)[0]  # knock-on problems follow, a line each
    assert "groups[1]: 'data-science' is defined twice" in line


def test_two_default_profiles(example):
    example["profiles"][1]["default"] = True
    (line,) = errors_of(example)
    assert "profiles: more than one default (cpu-small, cpu-medium)" in line


def test_two_default_images(example):
    example["images"][1]["default"] = True
    (line,) = errors_of(example)
    assert "images: more than one default (python-ds, minimal)" in line


@pytest.mark.parametrize("slug", ["CPU-small", "cpu-", "-cpu", "a\n", "", "a b", "a_b", "x" * 64])
def test_bad_profile_slug(example, slug):
    example["profiles"][0]["slug"] = slug
    example["groups"] = []  # keep the error about the slug alone
    (line,) = errors_of(example)
    assert line.startswith(f"mlfactory.yaml: profiles[0].slug: {slug!r} is not a valid slug")


def test_bad_group_member_slug(example):
    example["groups"][0]["profiles"] = ["Cpu-Small"]
    lines = errors_of(example)
    assert lines[0].startswith("mlfactory.yaml: groups[0].profiles[0]: 'Cpu-Small' is not a valid")


def test_gpu_type_without_gpu(example):
    example["profiles"][0]["gpu_type"] = "nvidia-tesla-t4"
    (line,) = errors_of(example)
    assert line.startswith("mlfactory.yaml: profiles[0]: gpu_type is set but gpu is 0")


def test_bad_alert_threshold(example):
    example["default_budget"]["thresholds"] = [0.5, 80]
    (line,) = errors_of(example)
    assert "default_budget.thresholds: 80" in line
    assert "use e.g. 0.8 for 80%" in line


@pytest.mark.parametrize("data", [None, [], "profiles", 3])
def test_non_mapping(data):
    (line,) = errors_of(data)
    assert line == "mlfactory.yaml: the file must hold a mapping of keys (profiles:, images:…)"


# --- loading files -----------------------------------------------------------------------------


def write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_load_bad_file_names_path(tmp_path, example):
    example["profiles"][2]["memory"] = "16 GB"
    path = write(tmp_path / "site.yaml", example)
    with pytest.raises(ConfigError) as info:
        load_platform_config(path)
    assert str(info.value) == f"{path}: profiles[2].memory: '16 GB' is not a size; use e.g. '16Gi'"


def test_load_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("profiles: [a, b\nimages: {", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_platform_config(path)
    assert str(info.value).startswith(f"{path}: not valid YAML")


def test_load_empty_file_is_not_a_mapping(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="must hold a mapping") as info:
        load_platform_config(path)
    assert str(info.value).startswith(str(path))


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_platform_config(path)
    assert str(info.value).startswith(f"{path}: cannot read the platform config")


def test_load_uses_env_var_when_no_path(tmp_path, example, monkeypatch):
    example["profiles"][0]["default"] = False
    example["profiles"][3]["default"] = True
    path = write(tmp_path / "env.yaml", example)
    monkeypatch.setenv("MLFACTORY_CONFIG", str(path))
    assert load_platform_config().default_profile.slug == "gpu-t4"


def test_load_env_var_errors_name_that_file(tmp_path, monkeypatch):
    path = tmp_path / "env-missing.yaml"
    monkeypatch.setenv("MLFACTORY_CONFIG", str(path))
    with pytest.raises(ConfigError, match=str(path)):
        load_platform_config()


def test_explicit_path_beats_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFACTORY_CONFIG", str(tmp_path / "missing.yaml"))
    assert load_platform_config(EXAMPLE).default_profile.slug == "cpu-small"


def test_load_without_env_uses_packaged_example(monkeypatch):
    monkeypatch.delenv("MLFACTORY_CONFIG", raising=False)
    cfg = load_platform_config()
    assert cfg == load_platform_config(EXAMPLE)


# --- data folder -------------------------------------------------------------------------------


def test_data_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "state"))
    assert data_dir() == (tmp_path / "state").resolve()


def test_data_dir_default_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFACTORY_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_dir() == tmp_path.resolve() / ".mlfactory"


def test_culling_limits_name_defined_profiles_and_groups(example):
    example["culling"]["profiles"] = {"gpu-a100": {"idle_timeout": "30m"}}
    example["culling"]["groups"] = {"nobody": {"max_age": "1d"}}
    lines = errors_of(example)
    assert any(line.startswith("mlfactory.yaml: culling.profiles.gpu-a100: not a defined profile")
               for line in lines)  # fmt: skip
    assert any(line.startswith("mlfactory.yaml: culling.groups.nobody: not a defined group")
               for line in lines)  # fmt: skip


def test_culling_limits_parse_durations(example):
    cfg = parse_platform_config(example)
    assert cfg.culling.profiles["gpu-t4"].idle_timeout == 1800
    assert cfg.culling.profiles["gpu-t4"].max_age == 12 * 3600
    assert cfg.culling.warn_before == 600
