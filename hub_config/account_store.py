"""Persistent local accounts in mlfactory's own database (never the hub's).

One table, ``accounts``; SQLAlchemy 2, SQLite by default. Methods are synchronous and short:
async callers run them (and all hashing) in a worker thread.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    String,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from . import accounts

_log = logging.getLogger(__name__)


class AccountExists(ValueError):
    """An account with this username is already stored."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class _UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite drops the offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("account timestamps must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


class _Base(DeclarativeBase):
    pass


class _AccountRow(_Base):
    __tablename__ = "accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_authorized: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(_UTCDateTime, nullable=False)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(_UTCDateTime, nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)


@dataclass(frozen=True)
class Account:
    """A snapshot of one stored account (detached from any database session).

    Lockout is not stored: it is derived from ``failed_logins`` and ``last_failed_at`` with
    :func:`mlfactory.hub.accounts.lockout_verdict`, so changing the lockout settings applies
    to existing records at once.
    """

    username: str
    password_hash: str
    is_authorized: bool
    created_at: datetime
    failed_logins: int
    last_failed_at: datetime | None
    email: str | None

    @classmethod
    def _from_row(cls, row: _AccountRow) -> Account:
        return cls(
            username=row.username,
            password_hash=row.password_hash,
            is_authorized=row.is_authorized,
            created_at=row.created_at,
            failed_logins=row.failed_logins,
            last_failed_at=row.last_failed_at,
            email=row.email,
        )


def _sqlite_file(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return database


_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _prepare_private_sqlite_file(path: str, log: logging.Logger) -> None:
    """Make sure the SQLite file at ``path`` and its side files are readable by the owner only.

    Runs before the first connection, so no file is ever group/other readable, whatever the
    umask. The file is created with mode 0600 by ``os.open`` (not by SQLite, which would use
    0644 minus the umask). SQLite's unix VFS gives the ``-wal``, ``-shm`` and ``-journal`` files
    it creates later the permissions of the database file, so they are born 0600 too; that is
    more robust than pre-creating them (SQLite deletes or truncates side files it did not
    expect) or changing the process-wide umask in a connect hook (other threads create files
    too). Side files left by an older version or a crash are tightened here as well.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(directory):
        # a folder the admin made: theirs to decide, but say so if others can get in
        mode = stat.S_IMODE(os.stat(directory).st_mode)
        if mode & 0o077:
            log.warning(
                "The account database folder %s is accessible to other users (mode %o); "
                "consider chmod 700.",
                directory,
                mode,
            )
    else:
        # password hashes live here: keep the folder private to the hub's OS user
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file may predate this rule
    finally:
        os.close(fd)
    for suffix in _SQLITE_SIDE_FILES:
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


def _make_engine(url: str, log: logging.Logger) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    path = _sqlite_file(url)
    kwargs: dict = {"connect_args": {"check_same_thread": False}}
    if path is None:
        # one shared in-memory database for every connection (handy in tests)
        kwargs["poolclass"] = StaticPool
    else:
        _prepare_private_sqlite_file(path, log)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        if path is not None:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    return engine


class AccountStore:
    """Local accounts in the database at ``url`` (an SQLAlchemy URL).

    Creates the ``accounts`` table if missing. For an SQLite file, creates its folder (mode
    0700) if missing, warns if an existing folder is open to others, and keeps the file and
    its side files readable by the owner only. Usernames are stored as given: normalise and
    validate them before calling (the authenticator and :meth:`ensure_admin` do).
    """

    def __init__(self, url: str, log: logging.Logger | None = None) -> None:
        self.url = url
        self.engine = _make_engine(url, log or _log)
        _Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def get(self, username: str) -> Account | None:
        with self._sessions() as session:
            row = session.get(_AccountRow, username)
            return None if row is None else Account._from_row(row)

    def create_account(
        self,
        username: str,
        password_hash: str,
        *,
        authorized: bool = False,
        email: str | None = None,
        now: datetime | None = None,
    ) -> Account:
        """Store a new account; raises :class:`AccountExists` if the name is taken."""
        row = _AccountRow(
            username=username,
            password_hash=password_hash,
            is_authorized=authorized,
            created_at=now or utcnow(),
            failed_logins=0,
            last_failed_at=None,
            email=email or None,
        )
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as e:
            raise AccountExists(f"An account named {username!r} already exists.") from e
        return Account._from_row(row)

    def record_failure(
        self, username: str, *, now: datetime, lockout_seconds: int
    ) -> Account | None:
        """Count one failed login at ``now``; None if there is no such account."""
        with self._sessions.begin() as session:
            row = session.get(_AccountRow, username, with_for_update=True)
            if row is None:
                return None
            row.failed_logins = accounts.next_failed_count(
                row.failed_logins, row.last_failed_at, now, lockout_seconds
            )
            row.last_failed_at = now
        return Account._from_row(row)

    def record_success(self, username: str) -> None:
        """Forget past failures after a successful login."""
        with self._sessions.begin() as session:
            row = session.get(_AccountRow, username, with_for_update=True)
            if row is not None:
                row.failed_logins = 0
                row.last_failed_at = None

    def set_password(self, username: str, password_hash: str) -> bool:
        """Replace the password hash and clear failures; False if there is no such account."""
        with self._sessions.begin() as session:
            row = session.get(_AccountRow, username, with_for_update=True)
            if row is None:
                return False
            row.password_hash = password_hash
            row.failed_logins = 0
            row.last_failed_at = None
            return True

    def authorize(self, username: str) -> bool:
        """Approve an account; False if there is no such account."""
        with self._sessions.begin() as session:
            row = session.get(_AccountRow, username, with_for_update=True)
            if row is None:
                return False
            row.is_authorized = True
            return True

    def deny(self, username: str) -> bool:
        """Discard a *pending* account; False if missing or already authorized."""
        with self._sessions.begin() as session:
            row = session.get(_AccountRow, username, with_for_update=True)
            if row is None or row.is_authorized:
                return False
            session.delete(row)
            return True

    def delete(self, username: str) -> bool:
        """Remove an account whatever its state; False if there is no such account."""
        with self._sessions.begin() as session:
            row = session.get(_AccountRow, username)
            if row is None:
                return False
            session.delete(row)
            return True

    def list_pending(self) -> list[Account]:
        """Accounts waiting for approval, oldest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(_AccountRow)
                .where(_AccountRow.is_authorized.is_(False))
                .order_by(_AccountRow.created_at, _AccountRow.username)
            )
            return [Account._from_row(row) for row in rows]

    def count_pending(self) -> int:
        """How many accounts are waiting for approval."""
        with self._sessions() as session:
            return session.scalar(
                select(func.count())
                .select_from(_AccountRow)
                .where(_AccountRow.is_authorized.is_(False))
            )

    def ensure_admin(
        self,
        username: str,
        password: str,
        *,
        minimum_password_length: int = accounts.MINIMUM_PASSWORD_LENGTH,
        params: accounts.ScryptParams = accounts.DEFAULT_SCRYPT,
        now: datetime | None = None,
    ) -> bool:
        """Create an authorized account for a bootstrap admin; True if it was created.

        Never touches an existing account: its password is not overwritten and a *pending*
        account with this name is not approved (it might be someone else's signup); check
        ``get(username).is_authorized`` to warn about that case. Raises ValueError for an
        invalid username or a password that fails the policy. Hashes synchronously (CLI use).
        Admin rights themselves come from hub config (``c.Authenticator.admin_users``).
        """
        problem = accounts.username_problem(username)
        if problem:
            raise ValueError(f"{username!r}: {problem}")
        problems = accounts.check_password(password, username, minimum_password_length)
        if problems:
            raise ValueError(" ".join(problems))
        if self.get(username) is not None:
            return False
        try:
            self.create_account(
                username, accounts.hash_password(password, params), authorized=True, now=now
            )
        except AccountExists:
            return False
        return True
