"""The audit of data credentials: one row per issued credential (who, which store and
server, the group roles and prefixes it was issued with, until when, dropped when and why,
what the store counted) and one row per issue, renewal and drop. Tables on the service's
``Base``; created by migrations 0009 and 0010. Old rows go in batches
(``delete_audit_batch``) after ``data.audit.keep_days`` (``data_retention``).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column

from .db import Base


class DataCredential(Base):
    __tablename__ = "data_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(128), unique=True)
    store: Mapped[str] = mapped_column(String(63))
    user: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    groups: Mapped[list] = mapped_column(JSON, default=list)
    access: Mapped[str] = mapped_column(String(16))
    # what the store was asked to grant (0010): the tick drops a credential whose grant no
    # longer names them, e.g. a grant's role renamed in the config; NULL: issued before 0010
    roles: Mapped[list | None] = mapped_column(JSON, nullable=True)
    prefixes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    ref: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ttl: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    dropped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    drop_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    queries: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rows_read: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("ix_data_credentials_live", "dropped_at", "store"),
        Index("ix_data_credentials_user", "user", "store", "issued_at"),
    )


class DataCredentialEvent(Base):
    __tablename__ = "data_credential_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    event: Mapped[str] = mapped_column(String(16))  # issue | renew | drop | refuse
    store: Mapped[str] = mapped_column(String(63))
    user: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    principal: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)


# the time each audit table's rows are kept from: a credential's drop (a live one has none and
# is never deleted), an event's own time; both columns are indexed
AUDIT_TIMES: tuple[InstrumentedAttribute, ...] = (
    DataCredential.dropped_at,
    DataCredentialEvent.at,
)


def delete_audit_batch(
    engine: Engine, column: InstrumentedAttribute, bound: float, limit: int
) -> int:
    """Delete at most ``limit`` rows of ``column``'s table whose ``column`` is at or before
    ``bound``, oldest first, in one short transaction; returns how many went. Callers loop
    until fewer than ``limit`` go, so that no single DELETE holds the writer lock long."""
    table = column.class_
    oldest = select(table.id).where(column <= bound).order_by(column, table.id).limit(limit)
    with engine.begin() as conn:
        # a subquery, not DELETE ... LIMIT: PostgreSQL has no such clause, and SQLite only
        # when built with it
        return conn.execute(delete(table).where(table.id.in_(oldest))).rowcount
