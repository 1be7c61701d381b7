"""The platform service's database: tables, engine and migrations.

Times are UTC epoch seconds (floats): the same arithmetic works in SQLite and PostgreSQL,
and a month's report is sums of overlaps computed in SQL. The schema is created and
upgraded only by alembic (``migrations/``); ``upgrade`` runs at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MIGRATIONS = Path(__file__).with_name("migrations")
CONNECT_TIMEOUT_S = 10  # s: a PostgreSQL connection attempt, then the request fails (503)


class Base(DeclarativeBase):
    pass


class LedgerSession(Base):
    """One server session: who ran what, at which price, from when to when."""

    __tablename__ = "ledger_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    project: Mapped[str] = mapped_column(String(63), default="", index=True)
    profile: Mapped[str] = mapped_column(String(63), default="")
    resources: Mapped[dict] = mapped_column(JSON, default=dict)
    price_per_hour: Mapped[float] = mapped_column(Float)
    started: Mapped[float] = mapped_column(Float)
    ended: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_seen: Mapped[float] = mapped_column(Float)
    end_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        Index("ix_ledger_started_ended", "started", "ended"),
        # covering indexes: the gate's spend sums read only these (migration 0002)
        Index("ix_ledger_user_spend", "user", "started", "ended", "price_per_hour"),
        Index("ix_ledger_project_spend", "project", "started", "ended", "price_per_hour"),
    )


class LedgerOpen(Base):
    """The sessions still running (``ended IS NULL``): kept by triggers on ``ledger_sessions``
    (migration 0011), so no writer can forget it.

    The gate, the reconcile and the dashboard read the running sessions from here. An index
    on ``ledger_sessions.ended`` kept, on PostgreSQL, one entry per version of every session
    ended since the last VACUUM (autovacuum waits for a fifth of the table to be dead: 200,000
    sessions on a 1M-session ledger), and each gate read the heap page behind each: 3 x 310
    pages after 1,000 gates. This table is a few pages, vacuumed within a minute.
    """

    __tablename__ = "ledger_open"
    session_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_sessions.id", ondelete="CASCADE"), primary_key=True
    )


class SessionGroup(Base):
    """The groups a session's user was in when it started: group totals count it once each."""

    __tablename__ = "ledger_session_groups"
    session_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    group: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    __table_args__ = (Index("ix_ledger_group_sessions", "group", "session_id"),)


class SpendDaily(Base):
    """What closed sessions cost per scope and local day: the gate and the month's reports
    sum at most a month of these rows instead of re-reading every session (maintained as
    sessions close; rebuilt from the ledger when the time zone changes)."""

    __tablename__ = "spend_daily"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # user/group/project/profile
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[float] = mapped_column(Float, primary_key=True)  # local midnight, epoch
    cost: Mapped[float] = mapped_column(Float)
    hours: Mapped[float] = mapped_column(Float)
    __table_args__ = (Index("ix_spend_daily_kind_day", "kind", "day"),)


class ServiceMeta(Base):
    """Small facts about the database itself (e.g. the time zone ``spend_daily`` is in)."""

    __tablename__ = "service_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class BudgetRow(Base):
    """A budget set through the API; it overrides the config file's for the same scope."""

    __tablename__ = "budgets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    amount: Mapped[float] = mapped_column(Float)
    period: Mapped[str] = mapped_column(String(16))
    thresholds: Mapped[list] = mapped_column(JSON)
    enforcement: Mapped[str] = mapped_column(String(16))
    grace: Mapped[int] = mapped_column(Integer)
    notify: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(255))
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_budget_scope"),)


class AlertRow(Base):
    """A threshold that fired; the unique key makes it fire once per period per budget."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    period_start: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    spent: Mapped[float] = mapped_column(Float)
    amount: Mapped[float] = mapped_column(Float)
    enforcement: Mapped[str] = mapped_column(String(16))
    fired_at: Mapped[float] = mapped_column(Float, index=True)
    message: Mapped[str] = mapped_column(String(1000))
    delivery: Mapped[dict] = mapped_column(JSON, default=dict)  # channel → "sent" | error
    __table_args__ = (
        UniqueConstraint("kind", "name", "period_start", "threshold", name="uq_alert_once"),
    )


class StopRow(Base):
    """A ``stop`` budget's warning and, after the grace period, the stop it led to."""

    __tablename__ = "budget_stops"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    period_start: Mapped[float] = mapped_column(Float)
    warned_at: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    servers: Mapped[list] = mapped_column(JSON, default=list)
    __table_args__ = (UniqueConstraint("kind", "name", "period_start", name="uq_stop_once"),)


class ActivityReport(Base):
    """The latest activity a server's extension reported (one row per server)."""

    __tablename__ = "activity_reports"
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    server_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    report: Mapped[dict] = mapped_column(JSON)
    gpu_busy_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class CullingState(Base):
    """Where a running server stands with idle shutdown: its warning and keep-alives."""

    __tablename__ = "culling_state"
    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    server_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    started: Mapped[float] = mapped_column(Float)  # the server start this state belongs to
    action: Mapped[str] = mapped_column(String(8), default="keep")
    reason: Mapped[str] = mapped_column(String(255), default="")
    warned_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    deadline: Mapped[float | None] = mapped_column(Float, nullable=True)
    keepalives: Mapped[int] = mapped_column(Integer, default=0)
    keepalive_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    idle_timeout: Mapped[int] = mapped_column(Integer, default=0)


class CullingStop(Base):
    """A server idle shutdown stopped, why, and what it cost per hour (for money saved)."""

    __tablename__ = "culling_stops"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255))
    started: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[float] = mapped_column(Float, index=True)
    reason: Mapped[str] = mapped_column(String(255))
    idle_seconds: Mapped[float] = mapped_column(Float)
    price_per_hour: Mapped[float] = mapped_column(Float)
    profile: Mapped[str] = mapped_column(String(63), default="")
    project: Mapped[str] = mapped_column(String(63), default="")
    groups: Mapped[list] = mapped_column(JSON, default=list)
    __table_args__ = (UniqueConstraint("user", "server_name", "started", name="uq_cull_once"),)


class ComponentSubmission(Base):
    """A component a user published from a notebook: one row per owner, name and version
    (the folder ``users/<owner>/<name>/<version>/`` under the service's components dir)."""

    __tablename__ = "component_submissions"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    submitted_at: Mapped[float] = mapped_column(Float)
    files: Mapped[list] = mapped_column(JSON, default=list)
    reviewer: Mapped[str | None] = mapped_column(String(255), nullable=True)
    note: Mapped[str] = mapped_column(String(2000), default="")
    reviewed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    history: Mapped[list] = mapped_column(JSON, default=list)
    __table_args__ = (UniqueConstraint("owner", "name", "version", name="uq_component_submission"),)


class PublishedComponent(Base):
    """A version in the shared namespace; the primary key makes it immutable."""

    __tablename__ = "published_components"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(255))
    published_at: Mapped[float] = mapped_column(Float, index=True)
    published_by: Mapped[str] = mapped_column(String(255))


class NotebookShare(Base):
    """A notebook an owner shared (``share_api.py``); its snapshots are files under the
    service's shares dir, one per version, never changed once written."""

    __tablename__ = "notebook_shares"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    mode: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(String(2000), default="")
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ShareVersion(Base):
    """One immutable snapshot of a share: its size and digest (the file is checked on read)."""

    __tablename__ = "notebook_share_versions"
    share_id: Mapped[str] = mapped_column(
        ForeignKey("notebook_shares.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))


class ShareRecipient(Base):
    """A user or group a share is for; "shared with me" looks them up by (kind, name)."""

    __tablename__ = "notebook_share_recipients"
    share_id: Mapped[str] = mapped_column(
        ForeignKey("notebook_shares.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # user | group
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    __table_args__ = (Index("ix_share_recipients_lookup", "kind", "name", "share_id"),)


class ShareEvent(Base):
    """The sharing audit: every share, update, revoke, open and copy, by whom and when."""

    __tablename__ = "notebook_share_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    share_id: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(8))
    at: Mapped[float] = mapped_column(Float, index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class RegisteredModel(Base):
    """A model name in the registry (``models_api.py``): its owner is the first publisher;
    its versions are packages in the model repository, written only by the service."""

    __tablename__ = "registered_models"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[float] = mapped_column(Float)


class ModelGrant(Base):
    """A group whose members may publish versions of a model and move its aliases."""

    __tablename__ = "model_grants"
    model: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    group: Mapped[str] = mapped_column(String(255), primary_key=True)


class ModelPredictGrant(Base):
    """A group whose members may call a model through the models service (migration 0008)."""

    __tablename__ = "model_predict_grants"
    model: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    group: Mapped[str] = mapped_column(String(255), primary_key=True)


class ModelVersion(Base):
    """One immutable published version, with its provenance (who, when, which notebook and
    History version) and the digest of its serialized model."""

    __tablename__ = "model_versions"
    model: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    published_by: Mapped[str] = mapped_column(String(255))
    published_at: Mapped[float] = mapped_column(Float)
    notebook_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    history_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    task: Mapped[str] = mapped_column(String(32))
    framework: Mapped[str] = mapped_column(String(128))
    mlfactory_version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    # a version taken out of service stays in the repository; who changed it and when
    serving: Mapped[bool] = mapped_column(Boolean, default=True)
    serving_changed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    serving_changed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ModelAliasMove(Base):
    """Every alias move, by whom and when; the newest row per (model, alias) is current."""

    __tablename__ = "model_alias_moves"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), index=True
    )
    alias: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    previous: Mapped[int | None] = mapped_column(Integer, nullable=True)
    moved_by: Mapped[str] = mapped_column(String(255))
    moved_at: Mapped[float] = mapped_column(Float)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    A server database (PostgreSQL) may restart or fail over under a running service: each
    pooled connection is tested before use (``pool_pre_ping``), so the first request after
    a restart gets a fresh connection instead of an error, and a connection attempt gives
    up after CONNECT_TIMEOUT_S (libpq waits for TCP's own timeout, minutes, otherwise)
    unless the URL says otherwise.
    """
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any]
    if is_sqlite:
        kwargs = {"connect_args": {"timeout": 30}}
    else:
        kwargs = {"pool_pre_ping": True}
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    engine = create_engine(url, **kwargs)
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # The service checkpoints the WAL itself every accounting interval, off the
            # gate's path (Store.checkpoint); SQLite's own checkpoint at 1,000 pages ran in
            # whichever commit crossed it and made the gate's p99 4x its median.
            cur.execute("PRAGMA wal_autocheckpoint=20000")
            cur.close()

    return engine


def unavailable(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database cannot be reached now (down, restarting, or a
    connection it dropped): worth a "try again" rather than a bug report."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (creating it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
