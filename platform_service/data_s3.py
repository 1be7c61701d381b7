"""The ``s3`` data-store driver: STS ``AssumeRole`` with an inline session policy, so each
server's credentials reach only its grants' buckets and prefixes and expire within an hour.

What the admin sets up (see docs): an IAM user (or radosgw user) whose keys the service
reads from the file or variable the config names, allowed ``sts:AssumeRole`` on
``role_arn``; that role may read and write every granted prefix. The session policy built
here narrows each session to one user's grants; STS takes the intersection. STS sessions
cannot be revoked one by one: they end at their expiry (at most the store's ``ttl``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from mlfactory.hub.platform_config import DataStore

from .data_drivers import AdminUnavailable, Credentials, Usage
from .data_grants import Entitlement, role_name

STS_MIN_DURATION = 900  # s: AWS refuses shorter sessions


def session_policy(prefixes: tuple[str, ...], access: str) -> dict[str, Any]:
    """The IAM policy that narrows a session to ``prefixes`` ('bucket' or 'bucket/prefix',
    a prefix being a folder: 'bucket/a' means 'bucket/a/'); read: list and get; read-write:
    put and delete too (pure)."""
    objects, lists = [], []
    for p in prefixes:
        bucket, _, prefix = p.partition("/")
        # 'team-a' is a folder, not a string start: without the '/' the wildcard would
        # also reach the sibling 'team-a-finance/'. A trailing '*' is the admin's own.
        if prefix and not prefix.endswith(("/", "*")):
            prefix += "/"
        pattern = prefix if prefix.endswith("*") else f"{prefix}*"
        objects.append(f"arn:aws:s3:::{bucket}/{pattern}")
        lists.append((bucket, pattern if prefix else ""))
    actions = ["s3:GetObject"]
    if access == "read-write":
        actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    statements: list[dict[str, Any]] = [{"Effect": "Allow", "Action": actions, "Resource": objects}]
    for bucket, prefix in lists:
        stmt: dict[str, Any] = {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
        }
        if prefix:
            stmt["Condition"] = {"StringLike": {"s3:prefix": [prefix]}}
        statements.append(stmt)
    return {"Version": "2012-10-17", "Statement": statements}


def parse_keys(secret: str) -> tuple[str, str]:
    """The admin keys: JSON ``{"access_key_id", "secret_access_key"}`` or ``KEY:SECRET``."""
    if secret.startswith("{"):
        try:
            data = json.loads(secret)
            return str(data["access_key_id"]), str(data["secret_access_key"])
        except (ValueError, KeyError):
            raise AdminUnavailable(
                "the admin secret must hold access_key_id and secret_access_key"
            ) from None
    key, sep, value = secret.partition(":")
    if not sep or not key or not value:
        raise AdminUnavailable("the admin secret must be KEY:SECRET or a JSON object")
    return key, value


class S3Driver:
    def __init__(self, store: DataStore, admin_secret: str) -> None:
        self.store = store
        key, value = parse_keys(admin_secret)
        self.sts = boto3.client(
            "sts",
            endpoint_url=store.url,
            region_name=store.region,
            aws_access_key_id=key,
            aws_secret_access_key=value,
            config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2}),
        )

    def check_admin(self) -> None:
        if not self.store.role_arn:
            raise AdminUnavailable("set role_arn: the role each session assumes")
        try:
            self.sts.get_caller_identity()
        except (BotoCoreError, ClientError) as e:
            raise AdminUnavailable(f"STS refused the admin keys: {e}") from None

    def issue(
        self, user: str, server_name: str, grant: Entitlement, now: float, ttl: int
    ) -> Credentials:
        name = role_name(user, server_name, secrets.token_hex(8))[:64]
        try:
            out = self.sts.assume_role(
                RoleArn=self.store.role_arn,
                RoleSessionName=name,
                DurationSeconds=max(STS_MIN_DURATION, ttl),
                Policy=json.dumps(session_policy(grant.prefixes, grant.access)),
            )
        except (BotoCoreError, ClientError) as e:
            raise AdminUnavailable(f"STS AssumeRole failed: {e}") from None
        c = out["Credentials"]
        return Credentials(
            principal=name,
            expires_at=c["Expiration"].timestamp(),
            secret={
                "endpoint_url": self.store.url,
                "region": self.store.region,
                "access_key_id": c["AccessKeyId"],
                "secret_access_key": c["SecretAccessKey"],
                "session_token": c["SessionToken"],
                "prefixes": list(grant.prefixes),
            },
        )

    def renew(self, principal: str, expires_at: float) -> bool:
        return False  # STS sessions cannot be extended: the client asks again in time

    def revoke(self, principal: str) -> None:
        pass  # an STS session ends at its expiry; see the module's note

    def usage(self, refs: dict[str, int | None]) -> dict[str, Usage]:
        return {}  # S3 keeps no per-session statistics the service could read

    def close(self) -> None:
        pass
