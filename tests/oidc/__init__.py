"""A real OpenID Connect provider for the tests: ``provider.mjs`` (npm ``oidc-provider``,
installed by ``make test`` into ``.venv/oidc``) run by node on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("provider.mjs")
MODULES = Path(sys.prefix) / "oidc" / "node_modules"
CLIENT_ID = "mlfactory-hub"
CLIENT_SECRET = "test-client-secret-0123456789"


def provider_problem() -> str | None:
    """Why the provider cannot run here, or None."""
    if not shutil.which("node"):
        return "node is missing"
    if not (MODULES / "oidc-provider").is_dir():
        return f"oidc-provider is not installed in {MODULES}: run `make test` (or `make oidc`)"
    return None


@dataclass
class OIDCProvider:
    port: int
    redirect_uris: list[str] = field(default_factory=list)
    # where the provider may send the browser after its logout (RP-initiated logout)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_path: Path, timeout: float = 60) -> OIDCProvider:
        """Start (or restart: accounts and keys are new) and return once it listens."""
        self.stop()
        self.log_path = log_path
        clients = [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": self.redirect_uris or [f"{self.issuer}/unused"],
                "post_logout_redirect_uris": self.post_logout_redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }
        ]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "OIDC_CLIENTS": json.dumps(clients)}
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    shutil.which("node") or "node",
                    str(SCRIPT),
                    "--port",
                    str(self.port),
                    "--modules",
                    str(MODULES),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited:\n{self.log()[-3000:]}")
            try:
                url = f"{self.issuer}/.well-known/openid-configuration"
                with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)  # waiting on a real process
        raise RuntimeError(f"the OIDC provider did not answer in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def set_account(
        self,
        account_id: str,
        *,
        email_verified: bool = True,
        groups: list[str] | None = None,
        fault: str | None = None,
        **claims,
    ) -> None:
        """Create or replace a test account (the login name at the provider is its id).
        ``fault``: wrong-audience, expired, wrong-issuer or foreign-key (the next ID tokens
        of this account carry that defect)."""
        body = {
            "claims": {
                "preferred_username": account_id,
                "email": f"{account_id}@example.org",
                "email_verified": email_verified,
                **({"groups": groups} if groups is not None else {}),
                **claims,
            },
            "fault": fault,
        }
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.issuer}/__test__/accounts/{account_id}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
            assert r.status == 204
