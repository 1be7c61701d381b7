"""The ``mlfactory`` command line: ``config check`` and the first-admin bootstrap."""

from __future__ import annotations

import pytest
import yaml
from mlfactory.hub import accounts
from mlfactory.hub.account_store import AccountStore
from mlfactory.hub.cli import bootstrap_admin, build_parser, main
from mlfactory.hub.cli import hub as cli
from mlfactory.hub.platform_config import PACKAGED_CONFIG

# --- config check ------------------------------------------------------------------------------


def test_config_check_ok(capsys):
    assert main(["config", "check", str(PACKAGED_CONFIG)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{PACKAGED_CONFIG}: OK")
    assert "4 profiles, 3 images, 2 groups; default profile 'cpu-small'" in out
    assert err == ""


def test_config_check_bad_file(capsys, tmp_path):
    raw = yaml.safe_load(PACKAGED_CONFIG.read_text(encoding="utf-8"))
    raw["profiles"][2]["memory"] = "16 GB"
    raw["profiles"][0]["memroy"] = "1Gi"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["config", "check", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "OK" not in err
    lines = err.splitlines()
    assert f"{bad}: profiles[0].memroy: unknown key" in lines[0]
    assert lines[1] == f"{bad}: profiles[2].memory: '16 GB' is not a size; use e.g. '16Gi'"


def _inverted_prices(tmp_path):
    """The example with the issue's prices: CPU medium fixed at 0.20/h, above CPU large's
    unit price (2 cores, 16 GiB, 50 GiB disk: 0.1655/h) though large has more of everything."""
    raw = yaml.safe_load(PACKAGED_CONFIG.read_text(encoding="utf-8"))
    (medium,) = [p for p in raw["profiles"] if p["slug"] == "cpu-medium"]
    medium["price_per_hour"] = 0.20
    path = tmp_path / "inverted.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_config_check_warns_when_a_bigger_profile_is_cheaper(capsys, tmp_path):
    path = _inverted_prices(tmp_path)
    assert main(["config", "check", str(path)]) == 0  # valid: a warning, not an error
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: OK") and out.rstrip().endswith("; 1 warning")
    (warning,) = err.splitlines()
    assert warning.startswith(f"{path}: warning: profile 'cpu-large' (2 cores, 16Gi memory, ")
    assert "costs 0.1655 USD/hour, less than 'cpu-medium'" in warning
    assert "at 0.2 USD/hour" in warning


def test_config_check_strict_fails_on_warnings(capsys, tmp_path):
    path = _inverted_prices(tmp_path)
    assert main(["config", "check", "--strict", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == f"{path}: 1 warning, failed because of --strict"
    assert main(["config", "check", "--strict", str(PACKAGED_CONFIG)]) == 0


def test_config_check_missing_file(capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    assert main(["config", "check", str(missing)]) == 1
    _, err = capsys.readouterr()
    assert err.startswith(f"{missing}: cannot read the platform config")


def test_config_check_ignores_env_var(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFACTORY_CONFIG", str(tmp_path / "missing.yaml"))
    assert main(["config", "check", str(PACKAGED_CONFIG)]) == 0


@pytest.mark.parametrize("argv", [[], ["config"], ["config", "check"], ["frobnicate"]])
def test_parser_requires_a_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    assert "usage: mlfactory" in capsys.readouterr().err


def test_extra_arguments_rejected_outside_hub(capsys):
    with pytest.raises(SystemExit) as info:
        main(["config", "check", str(PACKAGED_CONFIG), "--verbose"])
    assert info.value.code == 2
    assert "unrecognized arguments: --verbose" in capsys.readouterr().err


class Execed(Exception):
    pass


@pytest.fixture
def hub_run(tmp_path, monkeypatch):
    """Run ``main(["hub", ...])`` up to the exec; returns (rc or argv, stdout)."""
    monkeypatch.chdir(tmp_path)  # restored afterwards: _hub changes directory
    monkeypatch.setenv("PATH", cli.os.environ.get("PATH", ""))
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MLFACTORY_ADMIN_PASSWORD", "hub-secret-9")
    monkeypatch.delenv("MLFACTORY_CONFIG", raising=False)
    monkeypatch.delenv("MLFACTORY_ADMIN_USER", raising=False)

    def fake_execv(path, argv):
        raise Execed(argv)

    monkeypatch.setattr(cli.os, "execv", fake_execv)
    return monkeypatch


def test_hub_passes_remaining_args_to_jupyterhub(hub_run, tmp_path, capsys):
    with pytest.raises(Execed) as info:
        main(["hub", "--JupyterHub.hub_port=8082", "--debug"])
    argv = info.value.args[0]
    assert argv[1:5] == ["-m", "jupyterhub", "-f", str(cli.SHIPPED_HUB_CONFIG)]
    assert argv[5:] == ["--JupyterHub.hub_port=8082", "--debug"]
    assert "password from MLFACTORY_ADMIN_PASSWORD" in capsys.readouterr().out
    # the hub and the servers it starts never see the admin's password
    assert "MLFACTORY_ADMIN_PASSWORD" not in cli.os.environ
    account = stored(f"sqlite:///{tmp_path / 'data' / 'hub' / 'accounts.sqlite'}", "admin")
    assert accounts.verify_password("hub-secret-9", account.password_hash)


def test_hub_refuses_bad_platform_config(hub_run, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: []\n", encoding="utf-8")
    hub_run.setenv("MLFACTORY_CONFIG", str(bad))
    assert main(["hub"]) == 2
    err = capsys.readouterr().err
    assert "the platform config is invalid" in err
    assert f"{bad}: profiles:" in err
    assert not (tmp_path / "data").exists()


def test_hub_starts_with_a_warning_when_a_bigger_profile_is_cheaper(hub_run, tmp_path, capsys):
    hub_run.setenv("MLFACTORY_CONFIG", str(_inverted_prices(tmp_path)))
    with pytest.raises(Execed):
        main(["hub"])
    (warning,) = capsys.readouterr().err.splitlines()
    assert warning.startswith("mlfactory: warning: profile 'cpu-large' ")
    assert "less than 'cpu-medium'" in warning


def test_hub_refuses_a_port_that_is_not_a_number(hub_run, tmp_path, capsys):
    # the hub's config reads the same MLFACTORY_PORT (platform_runtime.hub_address): it would
    # fail there with a traceback after the banner had printed the bad address
    hub_run.setenv("MLFACTORY_PORT", "80a")
    assert main(["hub"]) == 2
    assert "MLFACTORY_PORT='80a' is not a port number" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# --- bootstrap_admin ---------------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'hub' / 'accounts.sqlite'}"


def stored(db_url: str, username: str):
    store = AccountStore(db_url)
    try:
        return store.get(username)
    finally:
        store.close()


def test_bootstrap_generates_password_only_for_new_account(db_url):
    generated = bootstrap_admin(db_url, "admin", None)
    assert isinstance(generated, str)
    assert len(generated) >= accounts.MINIMUM_PASSWORD_LENGTH
    account = stored(db_url, "admin")
    assert account.is_authorized
    assert accounts.verify_password(generated, account.password_hash)

    assert bootstrap_admin(db_url, "admin", None) is None
    # the second run left the first password in place
    assert stored(db_url, "admin").password_hash == account.password_hash


def test_bootstrap_explicit_password_creates_account(db_url):
    assert bootstrap_admin(db_url, "admin", "first-secret-1") is None
    account = stored(db_url, "admin")
    assert account.is_authorized
    assert accounts.verify_password("first-secret-1", account.password_hash)


def test_bootstrap_explicit_password_applied_every_time(db_url):
    assert bootstrap_admin(db_url, "admin", None) is not None
    assert bootstrap_admin(db_url, "admin", "second-secret-2") is None
    account = stored(db_url, "admin")
    assert accounts.verify_password("second-secret-2", account.password_hash)


def test_bootstrap_explicit_password_replaces_earlier_explicit_one(db_url):
    bootstrap_admin(db_url, "admin", "first-secret-1")
    bootstrap_admin(db_url, "admin", "second-secret-2")
    account = stored(db_url, "admin")
    assert accounts.verify_password("second-secret-2", account.password_hash)
    assert not accounts.verify_password("first-secret-1", account.password_hash)


@pytest.fixture
def pending_admin(db_url):
    store = AccountStore(db_url)
    try:
        store.create_account(
            "admin", accounts.hash_password("someone-elses", accounts.ScryptParams(n=16, r=1, p=1))
        )
    finally:
        store.close()


def test_bootstrap_without_password_refuses_a_pending_account(db_url, pending_admin):
    with pytest.raises(ValueError, match="waiting for approval"):
        bootstrap_admin(db_url, "admin", None)
    account = stored(db_url, "admin")
    assert not account.is_authorized
    assert accounts.verify_password("someone-elses", account.password_hash)


def test_bootstrap_explicit_password_takes_over_pending_account(db_url, pending_admin):
    assert bootstrap_admin(db_url, "admin", "admin-secret-3") is None
    account = stored(db_url, "admin")
    assert account.is_authorized
    assert accounts.verify_password("admin-secret-3", account.password_hash)


def test_bootstrap_rejects_weak_explicit_password(db_url):
    with pytest.raises(ValueError, match="at least"):
        bootstrap_admin(db_url, "admin", "short")
    assert stored(db_url, "admin") is None
